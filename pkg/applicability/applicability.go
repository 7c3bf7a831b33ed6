// Package applicability decides which advisories apply to a device: given the
// packages installed on it and the device's distribution release, it reports
// every advisory the device is exposed to and, per package, the installed
// version and the first version that carries the fix.
//
// The rules, in the words of the spec (issue 2, "Matching"). An installed
// package is exposed to an advisory when all of these hold:
//
//   - The advisory names it: same name, and the arch is equal, or either
//     side is noarch, or the advisory gives no arch (OSV gives none).
//   - The advisory is for the device's own release: its Ecosystem equals the
//     device's ("AlmaLinux:9"), or is empty, which means the source did not
//     say (updateinfo.xml from the device's own repositories).
//   - At least one of the advisory's fixed entries for the package belongs
//     to the package's stream, and the package is older than every entry
//     that does. Equal to or newer than any counted entry means the fix is
//     in.
//
// Which entries belong to the package's stream ("count"):
//
//   - A non-modular package (no modularity label) counts every entry, so a
//     rebase (firefox 102 installed, the fix ships 115) applies. A label
//     without a name and a stream is treated as none: when in doubt, every
//     entry counts, which errs toward reporting exposure.
//   - A modular package (label "nodejs:18:8090020240226101806:a7c0f3f3")
//     counts only entries of its own module stream. Where the advisory
//     carries module data for the package's name (updateinfo's
//     <collection><module>, advisory.Package.Module), that data decides: an
//     entry counts when its module name and stream equal the package's. Where
//     it carries none (OSV), an entry counts when its version is the stream or
//     begins with the stream and a dot: stream "18" counts 18.20.2, not
//     20.11.1 nor 180.1. So nodejs from stream 18 is never reported exposed
//     to an advisory that fixes only nodejs 20 or 22.
//
// The version rule has a known blind spot: a modular package whose version
// does not follow the stream (npm 10.5.0 in nodejs:18, the packages of
// container-tools:rhel8) has no counted entry in OSV data, so it is never
// reported; its stream's main package (nodejs) is, by the same advisory.
// Module data from updateinfo has no such gap.
//
// Installonly packages (kernel, kernel-core, ...) may be installed several
// times with one name and arch. Matching judges such a name.arch by its
// newest installed instance only: once the fixed kernel is installed the fix
// is on the device and what remains is a reboot into it, which is the
// reboot-pending status, not exposure. Judging the older instances would
// report a patched device as exposed for as long as rpm keeps the old kernel
// around, and would disagree with dnf, which also treats an advisory package
// as installed when any installed instance is as new.
package applicability

import (
	"slices"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// Fix is one exposed package of a Finding.
type Fix struct {
	// Installed is the package on the device (the newest instance of its
	// name and arch).
	Installed inventory.Package
	// Fixed is the lowest of the advisory's entries that count for Installed:
	// the first version that carries the fix.
	Fixed advisory.Package
}

// Finding is one advisory a device is exposed to.
type Finding struct {
	// Advisory points into the slice the Index was built from.
	Advisory *advisory.Advisory
	// Packages are the exposed installed packages, sorted by name, then arch.
	Packages []Fix
}

// Index holds advisories indexed by the names of the packages they fix, so
// that matching a package set costs one map look-up per installed package and
// a few version comparisons per advisory that names it. An Index is
// read-only once built and safe for concurrent use.
type Index struct {
	advisories []*advisory.Advisory
	// rank is each advisory's place in the order findings are reported in;
	// order is the inverse, the advisory at each place.
	rank   []int32
	order  []int32
	byName map[string][]group
}

// group is what one advisory fixes for one package name.
type group struct {
	adv int32
	// hasModule is set when any of the entries carries module data; then
	// module data, not the version, decides a modular package's stream.
	hasModule bool
	// entries are sorted oldest first, so the first entry that counts for
	// a package is the lowest, the Fixed version to report.
	entries []*advisory.Package
}

// NewIndex indexes the advisories' fixed entries by package name. Findings
// point into advisories, so the caller must not modify the slice or the
// advisories while the Index is in use.
//
// Findings are reported in order of issue date, oldest first, then by id
// (then by place in advisories, for the same id from two sources); an
// advisory with no issue date sorts before dated ones.
func NewIndex(advisories []advisory.Advisory) *Index {
	ptrs := make([]*advisory.Advisory, len(advisories))
	for i := range advisories {
		ptrs[i] = &advisories[i]
	}
	return newIndex(ptrs)
}

func newIndex(advisories []*advisory.Advisory) *Index {
	x := &Index{
		advisories: advisories,
		rank:       make([]int32, len(advisories)),
		byName:     make(map[string][]group),
	}
	order := make([]int32, len(advisories))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(i, j int32) int {
		a, b := advisories[i], advisories[j]
		if c := a.Issued.Compare(b.Issued); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for r, i := range order {
		x.rank[i] = int32(r)
	}
	x.order = order

	for ai, a := range advisories {
		// Group this advisory's entries by name, keeping the source order
		// within a name so that equal versions keep a stable order.
		start := make(map[string]int)
		var groups []group
		for pi := range a.Packages {
			p := &a.Packages[pi]
			if p.Name == "" {
				continue
			}
			gi, ok := start[p.Name]
			if !ok {
				gi = len(groups)
				start[p.Name] = gi
				groups = append(groups, group{adv: int32(ai)})
			}
			g := &groups[gi]
			g.entries = append(g.entries, p)
			g.hasModule = g.hasModule || p.Module != nil
		}
		for _, g := range groups {
			slices.SortStableFunc(g.entries, func(p, q *advisory.Package) int {
				return rpmver.Compare(p.EVR, q.EVR)
			})
			name := g.entries[0].Name
			x.byName[name] = append(x.byName[name], g)
		}
	}
	return x
}

// candidate is an installed package whose name the index knows.
type candidate struct {
	pkg    *inventory.Package
	groups []group
}

// hit is one exposed package for one advisory, before findings are built.
type hit struct {
	adv   int32
	pkg   *inventory.Package
	fixed *advisory.Package
}

// Match returns the advisories for the device's release ecosystem (such as
// "AlmaLinux:9") that the installed packages are exposed to, in the order
// NewIndex documents, each with its exposed packages sorted by name, then
// arch. It returns nil when nothing applies. An empty ecosystem (a device
// whose release is unknown) matches only advisories that name none.
func (x *Index) Match(ecosystem string, installed []inventory.Package) []Finding {
	if x == nil || len(x.byName) == 0 {
		return nil
	}
	cands := make([]candidate, 0, len(installed))
	for i := range installed {
		p := &installed[i]
		if gs, ok := x.byName[p.Name]; ok {
			cands = append(cands, candidate{p, gs})
		}
	}
	// Name, arch, then newest first: the first of each name.arch is the
	// instance that is judged, and hits come out in the order the packages
	// of a finding are reported in.
	slices.SortFunc(cands, func(a, b candidate) int {
		if c := strings.Compare(a.pkg.Name, b.pkg.Name); c != 0 {
			return c
		}
		if c := strings.Compare(a.pkg.Arch, b.pkg.Arch); c != 0 {
			return c
		}
		return rpmver.Compare(b.pkg.EVR, a.pkg.EVR)
	})

	hits := make([]hit, 0, len(cands))
	for ci := range cands {
		c := &cands[ci]
		if ci > 0 {
			prev := cands[ci-1].pkg
			if prev.Name == c.pkg.Name && prev.Arch == c.pkg.Arch {
				continue // an older instance of an installonly package
			}
		}
		var mod, stream string
		var modular bool
		if c.pkg.ModularityLabel != "" {
			mod, stream, modular = c.pkg.Module()
		}
		for gi := range c.groups {
			g := &c.groups[gi]
			if e := x.advisories[g.adv].Ecosystem; e != "" && e != ecosystem {
				continue
			}
			if fixed := judge(c.pkg, modular, mod, stream, g); fixed != nil {
				hits = append(hits, hit{g.adv, c.pkg, fixed})
			}
		}
	}
	if len(hits) == 0 {
		return nil
	}
	// Counting sort by rank: stable, so within one advisory the fixes keep
	// the name, arch order, and linear, with no comparisons or swaps.
	start := make([]int32, len(x.advisories)+1)
	for _, h := range hits {
		start[x.rank[h.adv]+1]++
	}
	n := 0
	for r := 1; r < len(start); r++ {
		if start[r] > 0 {
			n++
		}
		start[r] += start[r-1]
	}
	fixes := make([]Fix, len(hits))
	next := slices.Clone(start[:len(start)-1])
	for _, h := range hits {
		r := x.rank[h.adv]
		fixes[next[r]] = Fix{Installed: *h.pkg, Fixed: *h.fixed}
		next[r]++
	}
	findings := make([]Finding, 0, n)
	for r, i := range start[:len(start)-1] {
		if j := start[r+1]; j > i {
			findings = append(findings, Finding{Advisory: x.advisories[x.order[r]], Packages: fixes[i:j:j]})
		}
	}
	return findings
}

// MatchAdvisory reports whether the installed packages are exposed to one
// advisory, by the same rules as Index.Match; the server uses it to update a
// device's status when an advisory arrives or changes. The Finding's Advisory
// is a.
func MatchAdvisory(a *advisory.Advisory, ecosystem string, installed []inventory.Package) (Finding, bool) {
	fs := newIndex([]*advisory.Advisory{a}).Match(ecosystem, installed)
	if len(fs) == 0 {
		return Finding{}, false
	}
	return fs[0], true
}

// judge returns the lowest of g's entries that count for p when p is older
// than all of them, and nil when p is not exposed: no entry counts, or p is
// equal to or newer than one that does.
func judge(p *inventory.Package, modular bool, mod, stream string, g *group) *advisory.Package {
	var lowest *advisory.Package
	for _, e := range g.entries {
		if !archMatches(p.Arch, e.Arch) {
			continue
		}
		if modular && !inStream(e, g.hasModule, mod, stream) {
			continue
		}
		if rpmver.Compare(p.EVR, e.EVR) >= 0 {
			return nil
		}
		if lowest == nil {
			lowest = e // entries are sorted: the first counted is the lowest
		}
	}
	return lowest
}

// archMatches reports whether a fixed entry of arch fixed applies to an
// installed package of arch installed.
func archMatches(installed, fixed string) bool {
	return fixed == "" || installed == fixed || installed == "noarch" || fixed == "noarch"
}

// inStream reports whether fixed entry e belongs to module stream mod:stream.
// With module data the data decides; without, the version does.
func inStream(e *advisory.Package, moduleData bool, mod, stream string) bool {
	if moduleData {
		return e.Module != nil && e.Module.Name == mod && e.Module.Stream == stream
	}
	v := e.Version
	if len(v) == len(stream) {
		return v == stream
	}
	return len(v) > len(stream) && v[len(stream)] == '.' && v[:len(stream)] == stream
}
