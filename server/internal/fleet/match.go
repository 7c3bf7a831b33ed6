package fleet

import (
	"regexp"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/applicability"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// matcher turns a package set into the store's findings: for every advisory
// that names an installed package, whether that package is still older than
// the fix (pkg/applicability decides) or already carries it.
type matcher struct {
	// byName indexes the advisories by the names of the packages they fix.
	byName map[string][]*advisory.Advisory
}

func newMatcher(advs []advisory.Advisory) *matcher {
	m := &matcher{byName: make(map[string][]*advisory.Advisory)}
	for i := range advs {
		a := &advs[i]
		seen := map[string]bool{}
		for _, p := range a.Packages {
			if !seen[p.Name] {
				seen[p.Name] = true
				m.byName[p.Name] = append(m.byName[p.Name], a)
			}
		}
	}
	return m
}

// match is a store.MatchFunc. The store keys package sets by the release
// of the devices on them (store.Release: their os-release), so that
// release decides which advisories apply, whatever release packages the
// set holds: a RHEL image converted to AlmaLinux still carries
// redhat-release. Only a set whose devices gave no os-release falls back to
// what the set says (setRelease).
func (m *matcher) match(devRelease string, pkgs []protocol.Package) ([]store.Finding, error) {
	inst := make([]inventory.Package, len(pkgs))
	for i, p := range pkgs {
		inst[i] = inventory.Package{Name: p.Name, EVR: rpmver.EVR{Epoch: p.Epoch, Version: p.Version, Release: p.Release},
			Arch: p.Arch, ModularityLabel: p.ModularityLabel}
	}
	rel := deviceRelease(devRelease)
	if rel == (release{}) {
		rel = setRelease(inst)
	}

	// Group the installed packages by the advisories naming them, so each
	// advisory is judged on its own packages only.
	var order []*advisory.Advisory
	named := map[*advisory.Advisory][]inventory.Package{}
	for _, p := range inst {
		for _, a := range m.byName[p.Name] {
			if !rel.admits(a.Ecosystem) {
				continue
			}
			if _, ok := named[a]; !ok {
				order = append(order, a)
			}
			named[a] = append(named[a], p)
		}
	}

	var out []store.Finding
	type key struct{ adv, name, arch, installed string }
	seen := map[key]bool{}
	add := func(f store.Finding) {
		k := key{f.Advisory, f.Package, f.Arch, f.Installed}
		if !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	for _, a := range order {
		subset := named[a]
		exposed := map[string]bool{}
		if f, ok := applicability.MatchAdvisory(a, a.Ecosystem, subset); ok {
			for _, fx := range f.Packages {
				exposed[fx.Installed.Name+"."+fx.Installed.Arch] = true
				add(store.Finding{Advisory: a.ID, Package: fx.Installed.Name, Arch: fx.Installed.Arch,
					Installed: fx.Installed.EVR.String(), Fixed: fx.Fixed.EVR.String(), Affected: true})
			}
		}
		for _, p := range subset {
			if exposed[p.Name+"."+p.Arch] {
				continue
			}
			if fixed, ok := carriesFix(a, p); ok {
				add(store.Finding{Advisory: a.ID, Package: p.Name, Arch: p.Arch,
					Installed: p.EVR.String(), Fixed: fixed.String()})
			}
		}
	}
	return out, nil
}

// carriesFix reports whether p is at or past one of a's entries that counts
// for it (same name, compatible arch, same module stream), returning the
// lowest such entry. It mirrors pkg/applicability's counting rule for the
// patched side, which that package does not report.
func carriesFix(a *advisory.Advisory, p inventory.Package) (rpmver.EVR, bool) {
	modName, stream, modular := p.Module()
	var best rpmver.EVR
	found := false
	for _, e := range a.Packages {
		if e.Name != p.Name || !archCompatible(e.Arch, p.Arch) {
			continue
		}
		if modular {
			switch {
			case e.Module != nil:
				if e.Module.Name != modName || e.Module.Stream != stream {
					continue
				}
			case e.Version != stream && !strings.HasPrefix(e.Version, stream+"."):
				continue
			}
		}
		if rpmver.Compare(p.EVR, e.EVR) < 0 {
			continue
		}
		if !found || rpmver.Compare(e.EVR, best) < 0 {
			best, found = e.EVR, true
		}
	}
	return best, found
}

func archCompatible(fix, installed string) bool {
	return fix == "" || fix == installed || fix == "noarch" || installed == "noarch"
}

// release is what a package set says about the distribution it belongs to.
type release struct {
	// ecosystem is the OSV ecosystem ("AlmaLinux:9") when the set holds a
	// known release package; empty otherwise.
	ecosystem string
	// major is the Enterprise Linux major version ("9") read from the dist
	// tags of the releases (".el9_2") when ecosystem is unknown.
	major string
}

// deviceRelease is the release of a store.Release string ("almalinux:9"):
// its OSV ecosystem when pkg/inventory knows the distribution, else only its
// major version. It is the zero release for "".
func deviceRelease(s string) release {
	id, major, _ := strings.Cut(s, ":")
	if id == "" {
		return release{}
	}
	if eco, err := (inventory.Release{ID: id, VersionID: major}).Ecosystem(); err == nil {
		return release{ecosystem: eco}
	}
	if major != "" && strings.Trim(major, "0123456789") == "" {
		return release{major: major}
	}
	return release{}
}

// releasePackages maps the release packages of the distributions
// pkg/inventory knows to their os-release ID.
var releasePackages = map[string]string{
	"almalinux-release":     "almalinux",
	"rocky-release":         "rocky",
	"redhat-release":        "rhel",
	"centos-stream-release": "centos",
	"centos-release":        "centos",
	"oraclelinux-release":   "ol",
}

var distTag = regexp.MustCompile(`\.el(\d+)`)

// setRelease reads the release from the set's release package ("almalinux-release
// 9.2") or, failing that, from the most common ".elN" dist tag.
func setRelease(pkgs []inventory.Package) release {
	for _, p := range pkgs {
		if id, ok := releasePackages[p.Name]; ok {
			if eco, err := (inventory.Release{ID: id, VersionID: p.Version}).Ecosystem(); err == nil {
				return release{ecosystem: eco}
			}
		}
	}
	count := map[string]int{}
	best := ""
	for _, p := range pkgs {
		if m := distTag.FindStringSubmatch(p.Release); m != nil {
			count[m[1]]++
			if count[m[1]] > count[best] {
				best = m[1]
			}
		}
	}
	return release{major: best}
}

// admits reports whether an advisory of ecosystem eco may apply to the set.
// An advisory naming no ecosystem (a repository's updateinfo.xml) always
// may; a set whose release is unknown takes every advisory.
func (r release) admits(eco string) bool {
	switch {
	case eco == "":
		return true
	case r.ecosystem != "":
		return eco == r.ecosystem
	case r.major != "":
		return strings.HasSuffix(eco, ":"+r.major)
	}
	return true
}
