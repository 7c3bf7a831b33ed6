package update

import (
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/applicability"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/repo"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// Selection says which advisories a cycle applies.
type Selection struct {
	// IDs names advisories ("ALSA-2024:1234"); each must be in a
	// repository's updateinfo.
	IDs []string
	// Security selects every security advisory, of at least MinSeverity.
	Security    bool
	MinSeverity advisory.Severity
	// All selects every advisory.
	All bool
	// Packages names packages updated without an advisory (a policy's
	// allow_updates): each installed one goes to the newest version the
	// repositories hold, through the same cycle. Install-only packages
	// (kernels) go in beside the installed instances.
	Packages []string
}

func (s Selection) advisories() bool { return len(s.IDs) > 0 || s.Security || s.All }

func (s Selection) empty() bool { return !s.advisories() && len(s.Packages) == 0 }

// plainKey is the journal's attempts key of a plain update, beside the
// advisory ids: it is set aside after MaxAttempts failures as an advisory
// is, until a newer build comes.
func plainKey(nevra string) string { return "update:" + nevra }

func (s Selection) wants(a *advisory.Advisory) bool {
	if len(s.IDs) > 0 {
		return slices.Contains(s.IDs, a.ID)
	}
	if s.All {
		return a.Severity >= s.MinSeverity
	}
	return s.Security && a.IsSecurity() && a.Severity >= s.MinSeverity
}

// Plan is what a cycle will do.
type Plan struct {
	Advisories []AdvisoryRef
	Packages   []Package
	Dropped    []Dropped
	// SetAside are selected advisories not tried again, with the reason.
	SetAside map[string]string
}

// wanted is one exposed installed package and what fixes it.
type wanted struct {
	installed  inventory.Package
	fixed      rpmver.EVR
	advisories []string
	// best is the package chosen to install, old the installed version's
	// package for the rollback set.
	best, old         *repo.Package
	bestRepo, oldRepo *repo.Repo
	// plain: the newest build goes in, not the oldest fix (an
	// allow-listed name, Selection.Packages).
	plain bool
}

// makePlan reads the repositories' updateinfo, picks the selected
// advisories the installed packages are exposed to, and finds, streaming each
// primary.xml and keeping only the packages it needs, each fix and each
// installed version (the rollback set).
func makePlan(ctx context.Context, repos []*repo.Repo, installed []inventory.Package, sel Selection, setAside map[string]string) (*Plan, error) {
	if sel.empty() {
		return nil, stepErr(ErrPlan, false, "no advisories selected: give --advisory ID, --security or --all")
	}
	var advs []advisory.Advisory
	seen := map[string]bool{}
	for _, r := range repos {
		if !sel.advisories() {
			break // plain updates only: no updateinfo to read
		}
		err := r.EachAdvisory(ctx, func(a *advisory.Advisory) error {
			if !sel.wants(a) || seen[a.ID] {
				return nil
			}
			seen[a.ID] = true
			advs = append(advs, *a)
			return nil
		})
		if err != nil {
			return nil, stepErr(ErrPlan, true, "%w", err)
		}
	}
	for _, id := range sel.IDs {
		if !seen[id] {
			return nil, stepErr(ErrPlan, false, "advisory %s is not in the updateinfo of %s", id, repoList(repos))
		}
	}
	p := &Plan{SetAside: map[string]string{}}
	kept := advs[:0]
	for _, a := range advs {
		if why, ok := setAside[a.ID]; ok {
			p.SetAside[a.ID] = why
			continue
		}
		kept = append(kept, a)
	}
	advs = kept

	findings := applicability.NewIndex(advs).Match("", installed)
	want := map[string]*wanted{}
	var keys []string
	exposed := map[string]bool{}
	for _, f := range findings {
		a := f.Advisory
		p.Advisories = append(p.Advisories, AdvisoryRef{ID: a.ID, Type: string(a.Type), Severity: a.Severity.String(), RebootSuggested: a.RebootSuggested})
		for _, fx := range f.Packages {
			k := fx.Installed.Name + "." + fx.Installed.Arch
			exposed[a.ID+" "+k] = true
			w, ok := want[k]
			if !ok {
				w = &wanted{installed: fx.Installed, fixed: fx.Fixed.EVR}
				want[k] = w
				keys = append(keys, k)
			} else if rpmver.Compare(fx.Fixed.EVR, w.fixed) > 0 {
				w.fixed = fx.Fixed.EVR
			}
			w.advisories = append(w.advisories, a.ID)
		}
	}
	// Plain updates: every installed instance of an allow-listed name,
	// judged from its newest (an install-only package has several). A
	// package an advisory of this cycle fixes goes to that fix, which a
	// signed plan may pin: the newest build would clash with the pin, and
	// the next look takes it.
	for _, name := range sel.Packages {
		for _, ip := range installed {
			if ip.Name != name {
				continue
			}
			k := ip.Name + "." + ip.Arch
			w, ok := want[k]
			if ok && len(w.advisories) > 0 {
				continue
			}
			if !ok {
				w = &wanted{installed: ip, fixed: ip.EVR}
				want[k] = w
				keys = append(keys, k)
			} else if rpmver.Compare(ip.EVR, w.installed.EVR) > 0 {
				w.installed = ip
			}
			w.plain = true
		}
	}
	// An advisory named on the command line whose packages are installed
	// but already as new as its fix: installing the fix would be a
	// downgrade or a reinstall, so it is reported, not planned.
	for i := range advs {
		a := &advs[i]
		if !slices.Contains(sel.IDs, a.ID) {
			continue
		}
		for _, ap := range a.Packages {
			for _, ip := range installed {
				k := ip.Name + "." + ip.Arch
				if ip.Name != ap.Name || (ap.Arch != "" && ap.Arch != ip.Arch && ap.Arch != "noarch" && ip.Arch != "noarch") || exposed[a.ID+" "+k] {
					continue
				}
				switch c := rpmver.Compare(ap.EVR, ip.EVR); {
				case c == 0:
					p.Dropped = append(p.Dropped, Dropped{Name: ip.Name, Arch: ip.Arch, Installed: ip.EVR.Short(), Fixed: ap.EVR.Short(), Advisory: a.ID,
						Reason: "the fixed version is already installed"})
				case c < 0:
					p.Dropped = append(p.Dropped, Dropped{Name: ip.Name, Arch: ip.Arch, Installed: ip.EVR.Short(), Fixed: ap.EVR.Short(), Advisory: a.ID,
						Reason: "refused: the installed version is newer than the fix; installing it would be a downgrade"})
				}
				exposed[a.ID+" "+k] = true
			}
		}
	}
	if len(want) == 0 {
		return p, nil
	}

	for _, r := range repos {
		if err := scanPrimary(ctx, r, want); err != nil {
			return nil, err
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		w := want[k]
		if w.best == nil && len(w.advisories) == 0 {
			continue // a plain update with nothing newer: up to date
		}
		if w.best == nil {
			p.Dropped = append(p.Dropped, Dropped{Name: w.installed.Name, Arch: w.installed.Arch, Installed: w.installed.EVR.Short(), Fixed: w.fixed.Short(),
				Advisory: strings.Join(w.advisories, ","), Reason: "the fixed version is in no repository's primary.xml"})
			continue
		}
		if rpmver.Compare(w.best.EVR, w.installed.EVR) <= 0 {
			p.Dropped = append(p.Dropped, Dropped{Name: w.installed.Name, Arch: w.installed.Arch, Installed: w.installed.EVR.Short(), Fixed: w.best.EVR.Short(),
				Advisory: strings.Join(w.advisories, ","), Reason: "refused: not newer than the installed version"})
			continue
		}
		io := installOnly(w.installed.Name) || w.best.InstallOnly
		pkg := Package{Name: w.installed.Name, Arch: w.installed.Arch, From: w.installed.EVR.Short(), To: w.best.EVR.Short(), Advisories: w.advisories,
			InstallOnly: io}
		var err error
		if pkg.New, err = artifact(w.bestRepo, w.best); err != nil {
			return nil, err
		}
		if len(w.advisories) == 0 {
			if why, ok := setAside[plainKey(pkg.New.NEVRA)]; ok {
				p.SetAside[plainKey(pkg.New.NEVRA)] = why
				continue
			}
		}
		// An install-only package keeps its installed instances: no
		// rollback set to fetch, the rollback erases the new one.
		if w.old != nil && !io {
			old, err := artifact(w.oldRepo, w.old)
			if err != nil {
				return nil, err
			}
			pkg.Old = &old
		}
		p.Packages = append(p.Packages, pkg)
	}
	return p, nil
}

// scanPrimary streams one repository's primary.xml, keeping for each wanted
// package the best fix (the fixed version itself, else the oldest newer one;
// for a plain update the newest) and the installed version, and nothing
// else.
func scanPrimary(ctx context.Context, r *repo.Repo, want map[string]*wanted) error {
	pr, err := r.Primary(ctx)
	if err != nil {
		return stepErr(ErrPlan, true, "read primary of %s: %w", r, err)
	}
	defer pr.Close()
	for {
		rp, err := pr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return stepErr(ErrPlan, true, "read primary of %s: %w", r, err)
		}
		w := want[rp.Name+"."+rp.Arch]
		if w == nil {
			continue
		}
		if rpmver.Compare(rp.EVR, w.installed.EVR) == 0 && w.old == nil {
			w.old, w.oldRepo = rp, r
		}
		if w.plain {
			if rpmver.Compare(rp.EVR, w.installed.EVR) > 0 && (w.best == nil || rpmver.Compare(rp.EVR, w.best.EVR) > 0) {
				w.best, w.bestRepo = rp, r
			}
			continue
		}
		if rpmver.Compare(rp.EVR, w.fixed) < 0 {
			continue
		}
		if w.best == nil || rpmver.Compare(w.best.EVR, w.fixed) != 0 && rpmver.Compare(rp.EVR, w.best.EVR) < 0 {
			w.best, w.bestRepo = rp, r
		}
	}
}

func artifact(r *repo.Repo, p *repo.Package) (Artifact, error) {
	urls, err := r.PackageURLs(p)
	if err != nil {
		return Artifact{}, stepErr(ErrPlan, false, "locate %s in %s: %w", p.NEVRA(), r, err)
	}
	n := rpmver.NEVRA{Name: p.Name, EVR: p.EVR, Arch: p.Arch}
	return Artifact{NEVRA: n.Short(), URL: urls[0], Mirrors: urls[1:], Checksum: p.Checksum.String(), Size: p.Size,
		InstalledSize: p.InstalledSize, File: path.Join("packages", path.Base(p.Location))}, nil
}

func repoList(repos []*repo.Repo) string {
	var s []string
	for _, r := range repos {
		s = append(s, r.String())
	}
	return strings.Join(s, ", ")
}

// String renders the plan for people.
func (p *Plan) String() string {
	var b strings.Builder
	for _, a := range p.Advisories {
		fmt.Fprintf(&b, "advisory %s (%s, %s)\n", a.ID, a.Type, a.Severity)
	}
	for _, pk := range p.Packages {
		verb, rb := "upgrade", "rollback: "+pk.Name+"-"+pk.From
		switch {
		case pk.InstallOnly:
			verb, rb = "install", "beside "+pk.From+"; rollback: erase it"
		case pk.Old == nil:
			rb = "no rollback: previous version in no repository"
		}
		if len(pk.Advisories) == 0 {
			rb += "; allow-listed, in no advisory"
		}
		fmt.Fprintf(&b, "  %s %s.%s %s -> %s (%s)\n", verb, pk.Name, pk.Arch, pk.From, pk.To, rb)
	}
	for _, d := range p.Dropped {
		fmt.Fprintf(&b, "  dropped %s.%s %s (fix %s, %s): %s\n", d.Name, d.Arch, d.Installed, d.Fixed, d.Advisory, d.Reason)
	}
	ids := make([]string, 0, len(p.SetAside))
	for id := range p.SetAside {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(&b, "set aside %s: %s\n", id, p.SetAside[id])
	}
	return b.String()
}

// installOnly reports whether name is one of the packages dnf installs side
// by side instead of upgrading (its installonlypkgs: the kernel and its
// parts; AlmaLinux's Raspberry Pi kernel). Upgrading one with rpm -U would
// erase the kernel the device runs. A package providing installonlypkg(...)
// is install-only too (repo.Package.InstallOnly).
func installOnly(name string) bool {
	if name == "kernel" || name == "raspberrypi2-kernel4" {
		return true
	}
	rest, ok := strings.CutPrefix(name, "kernel-")
	if !ok {
		return false
	}
	for _, p := range []string{"core", "modules", "devel", "debug", "rt", "64k", "uek", "PAE", "lpae", "zfcpdump"} {
		if rest == p || strings.HasPrefix(rest, p+"-") {
			return true
		}
	}
	return false
}

// installedName names the build the cycle upgrades from as its journal
// names packages (rpmver.NEVRA.Short): From was written by EVR.Short, so
// this is name-From.arch byte for byte.
func (p Package) installedName() string {
	evr, _ := rpmver.ParseEVR(p.From)
	return rpmver.NEVRA{Name: p.Name, EVR: evr, Arch: p.Arch}.Short()
}
