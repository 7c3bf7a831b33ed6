package applicability

import (
	"slices"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// Device is one device's installed packages indexed by name, for matching
// advisories one at a time as they stream in: the agent's check never holds
// the whole advisory database, only what applies. It judges by exactly the
// rules of Index.Match. A Device is read-only once built and safe for
// concurrent use.
type Device struct {
	ecosystem string
	// byName holds, per name, the newest installed instance of each arch,
	// sorted by arch: the instances that are judged.
	byName map[string][]*inventory.Package
}

// NewDevice indexes the installed packages of a device of the given release
// ecosystem ("AlmaLinux:9"). Fixes point into installed, which the caller
// must not modify while the Device is in use.
func NewDevice(ecosystem string, installed []inventory.Package) *Device {
	d := &Device{ecosystem: ecosystem, byName: make(map[string][]*inventory.Package, len(installed))}
	for i := range installed {
		p := &installed[i]
		list := d.byName[p.Name]
		j := slices.IndexFunc(list, func(q *inventory.Package) bool { return q.Arch == p.Arch })
		switch {
		case j < 0:
			d.byName[p.Name] = append(list, p)
		case rpmver.Compare(p.EVR, list[j].EVR) > 0:
			list[j] = p // a newer instance of an installonly package
		}
	}
	for _, list := range d.byName {
		slices.SortFunc(list, func(a, b *inventory.Package) int { return strings.Compare(a.Arch, b.Arch) })
	}
	return d
}

// Match reports whether the device is exposed to advisory a, with the exposed
// packages sorted by name, then arch. The Finding's Advisory is a.
func (d *Device) Match(a *advisory.Advisory) (Finding, bool) {
	if a.Ecosystem != "" && a.Ecosystem != d.ecosystem {
		return Finding{}, false
	}
	var groups []group
	for pi := range a.Packages {
		p := &a.Packages[pi]
		if _, ok := d.byName[p.Name]; !ok {
			continue
		}
		gi := slices.IndexFunc(groups, func(g group) bool { return g.entries[0].Name == p.Name })
		if gi < 0 {
			groups = append(groups, group{})
			gi = len(groups) - 1
		}
		g := &groups[gi]
		g.entries = append(g.entries, p)
		g.hasModule = g.hasModule || p.Module != nil
	}
	if len(groups) == 0 {
		return Finding{}, false
	}
	var fixes []Fix
	for gi := range groups {
		g := &groups[gi]
		slices.SortStableFunc(g.entries, func(p, q *advisory.Package) int { return rpmver.Compare(p.EVR, q.EVR) })
		for _, inst := range d.byName[g.entries[0].Name] {
			var mod, stream string
			var modular bool
			if inst.ModularityLabel != "" {
				mod, stream, modular = inst.Module()
			}
			if fixed := judge(inst, modular, mod, stream, g); fixed != nil {
				fixes = append(fixes, Fix{Installed: *inst, Fixed: *fixed})
			}
		}
	}
	if len(fixes) == 0 {
		return Finding{}, false
	}
	slices.SortFunc(fixes, func(x, y Fix) int {
		if c := strings.Compare(x.Installed.Name, y.Installed.Name); c != 0 {
			return c
		}
		return strings.Compare(x.Installed.Arch, y.Installed.Arch)
	})
	return Finding{Advisory: a, Packages: fixes}, true
}

// SortFindings puts findings in the order Index.Match reports them: by issue
// date, oldest first (undated first), then by id.
func SortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(x, y Finding) int {
		if c := x.Advisory.Issued.Compare(y.Advisory.Issued); c != 0 {
			return c
		}
		return strings.Compare(x.Advisory.ID, y.Advisory.ID)
	})
}
