package applicability

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// streamOf returns the stream a module build of version v most likely
// belongs to for the version rule: its first dot-separated segment.
func streamOf(v string) string {
	s, _, _ := strings.Cut(v, ".")
	return s
}

// TestPropertyFixedVersionIsNeverExposed draws random devices from the real
// AlmaLinux 9 advisories: a package picked from an advisory's fixed entries,
// installed at exactly that entry's version (as non-modular or, for module
// builds, in the stream the version names), among unrelated packages. Such a
// package is never exposed to that advisory. The same package installed
// older than every counted entry is exposed, with Fixed the lowest of them,
// and installing that Fixed version cures it.
func TestPropertyFixedVersionIsNeverExposed(t *testing.T) {
	advs := loadOSV(t, "almalinux9.jsonl.gz", "AlmaLinux:9")
	x := NewIndex(advs)
	rng := rand.New(rand.NewPCG(2, 9))
	arches := []string{"aarch64", "x86_64", "noarch", "armv7hl"}
	const rounds = 3000
	lowerChecked := 0
	for round := range rounds {
		ai := rng.IntN(len(advs))
		a := &advs[ai]
		e := a.Packages[rng.IntN(len(a.Packages))]
		label := ""
		if strings.Contains(e.Release, "module_el") && rng.IntN(2) == 0 {
			label = fmt.Sprintf("%s:%s:9020020230101000000:abcdef01", e.Name, streamOf(e.Version))
		}
		p := inventory.Package{Name: e.Name, EVR: e.EVR, Arch: arches[rng.IntN(len(arches))], ModularityLabel: label}
		// Unrelated packages: names fixed by other advisories, at random
		// fixed versions of theirs, never the name under test.
		pkgs := []inventory.Package{p}
		for range 20 {
			o := &advs[rng.IntN(len(advs))]
			q := o.Packages[rng.IntN(len(o.Packages))]
			if q.Name != p.Name {
				pkgs = append(pkgs, inventory.Package{Name: q.Name, EVR: q.EVR, Arch: "aarch64"})
			}
		}
		rng.Shuffle(len(pkgs), func(i, j int) { pkgs[i], pkgs[j] = pkgs[j], pkgs[i] })
		where := fmt.Sprintf("round %d: %s %s-%s.%s [%s]", round, a.ID, p.Name, p.EVR, p.Arch, label)

		if f, ok := MatchAdvisory(a, "AlmaLinux:9", pkgs); ok && hasName(f, p.Name) {
			t.Fatalf("%s: installed at a fixed version, reported exposed: %q", where, render([]Finding{f}))
		}
		for _, f := range x.Match("AlmaLinux:9", pkgs) {
			if f.Advisory == a && hasName(f, p.Name) {
				t.Fatalf("%s: Match reports the fixed version exposed", where)
			}
		}

		// The same package older than every counted entry: the lowest
		// counted entry with release "0", when that is lower than all.
		counted := countedEntries(a, p)
		if len(counted) == 0 {
			t.Fatalf("%s: the entry it was drawn from does not count", where)
		}
		low := counted[0]
		for _, c := range counted[1:] {
			if rpmver.Compare(c.EVR, low.EVR) < 0 {
				low = c
			}
		}
		older := p
		older.EVR = rpmver.EVR{Epoch: low.Epoch, Version: low.Version, Release: "0"}
		if !slices.ContainsFunc(counted, func(c advisory.Package) bool { return rpmver.Compare(older.EVR, c.EVR) >= 0 }) {
			lowerChecked++
			f, ok := MatchAdvisory(a, "AlmaLinux:9", []inventory.Package{older})
			if !ok {
				t.Fatalf("%s: older %s not exposed", where, older.EVR)
			}
			fix := f.Packages[0]
			if rpmver.Compare(fix.Fixed.EVR, low.EVR) != 0 {
				t.Fatalf("%s: Fixed %s, want the lowest counted %s", where, fix.Fixed.EVR, low.EVR)
			}
			cured := older
			cured.EVR = fix.Fixed.EVR
			if _, ok := MatchAdvisory(a, "AlmaLinux:9", []inventory.Package{cured}); ok {
				t.Fatalf("%s: still exposed after installing the Fixed %s", where, fix.Fixed.EVR)
			}
		}
	}
	if lowerChecked < rounds/2 {
		t.Errorf("only %d of %d rounds had an older version to check", lowerChecked, rounds)
	}
}

func hasName(f Finding, name string) bool {
	return slices.ContainsFunc(f.Packages, func(p Fix) bool { return p.Installed.Name == name })
}

// countedEntries is the spec's stream rule written out plainly, for
// OSV-shaped advisories (no arch, no module data), as an oracle independent
// of the index's sorted groups.
func countedEntries(a *advisory.Advisory, p inventory.Package) []advisory.Package {
	_, stream, modular := p.Module()
	var out []advisory.Package
	for _, e := range a.Packages {
		if e.Name != p.Name {
			continue
		}
		if modular && e.Version != stream && !strings.HasPrefix(e.Version, stream+".") {
			continue
		}
		out = append(out, e)
	}
	return out
}

// FuzzMatch feeds arbitrary versions, arches and labels through one advisory
// and checks what must always hold: no panic; an exposed package is older
// than its Fixed version; and the device with Fixed installed instead is not
// exposed.
func FuzzMatch(f *testing.F) {
	f.Add("1:18.19.1-1.module_el8.9.0+3753+4de0891b", "x86_64", "nodejs:18:8090020240226101806:a7c0f3f3",
		"1:18.20.2-1.module_el8.9.0+3828+c9fa9644", "", "1:20.11.1-1.module_el8.9.0+3775+d8460d35", "x86_64", "")
	f.Add("102.15.0-1.el9_2", "aarch64", "", "115.3.1-1.el9_2", "noarch", "1.0~rc1-1", "i686", "nodejs:20")
	f.Add("0:1-1", "noarch", "a:b", "0:1-1", "", "1-0^git1", "", "a:b")
	f.Fuzz(func(t *testing.T, installed, arch, label, fix1, arch1, fix2, arch2, mod2 string) {
		ievr, err := rpmver.ParseEVR(installed)
		if err != nil {
			return
		}
		a := advisory.Advisory{ID: "FUZZ-1"}
		for _, e := range []struct{ evr, arch, mod string }{{fix1, arch1, ""}, {fix2, arch2, mod2}} {
			evr, err := rpmver.ParseEVR(e.evr)
			if err != nil {
				continue
			}
			p := advisory.Package{Name: "pkg", EVR: evr, Arch: e.arch}
			if name, stream, ok := strings.Cut(e.mod, ":"); ok {
				p.Module = &advisory.Module{Name: name, Stream: stream}
			}
			a.Packages = append(a.Packages, p)
		}
		p := inventory.Package{Name: "pkg", EVR: ievr, Arch: arch, ModularityLabel: label}
		fd, ok := MatchAdvisory(&a, "AlmaLinux:9", []inventory.Package{p})
		if !ok {
			return
		}
		if len(fd.Packages) != 1 {
			t.Fatalf("one installed package, %d fixes", len(fd.Packages))
		}
		fx := fd.Packages[0]
		if rpmver.Compare(fx.Installed.EVR, fx.Fixed.EVR) >= 0 {
			t.Fatalf("exposed %s is not older than Fixed %s", fx.Installed.EVR, fx.Fixed.EVR)
		}
		p.EVR = fx.Fixed.EVR
		if _, ok := MatchAdvisory(&a, "AlmaLinux:9", []inventory.Package{p}); ok {
			t.Fatalf("still exposed at the Fixed version %s", fx.Fixed.EVR)
		}
	})
}

// benchInventory builds a deterministic 1,000-package device: the 179
// packages of the real RHEL 9.0 aarch64 image, then names the AlmaLinux 9
// advisories fix, in name order, in turn installed older than their oldest
// fix (exposed), at their newest fix (patched), and as an unrelated package;
// names fixed by module builds are installed as modular, in the stream their
// version names.
func benchInventory(tb testing.TB, advs []advisory.Advisory) []inventory.Package {
	pkgs := loadManifest(tb, filepath.Join("testdata", "ubi9_ubi-aarch64-rpm-manifest.tsv"))
	have := map[string]bool{}
	for _, p := range pkgs {
		have[p.Name] = true
	}
	oldest := map[string]advisory.Package{}
	newest := map[string]advisory.Package{}
	for _, a := range advs {
		for _, e := range a.Packages {
			if o, ok := oldest[e.Name]; !ok || rpmver.Compare(e.EVR, o.EVR) < 0 {
				oldest[e.Name] = e
			}
			if n, ok := newest[e.Name]; !ok || rpmver.Compare(e.EVR, n.EVR) > 0 {
				newest[e.Name] = e
			}
		}
	}
	var names []string
	for n := range oldest {
		if !have[n] {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for i := 0; len(pkgs) < 1000; i++ {
		n := names[i%len(names)]
		var e advisory.Package
		switch i % 3 {
		case 0:
			e = oldest[n]
			e.Release = "0"
		case 1:
			e = newest[n]
		case 2:
			pkgs = append(pkgs, inventory.Package{Name: fmt.Sprintf("unrelated-%d", i), EVR: rpmver.EVR{Version: "1.0", Release: "1.el9"}, Arch: "aarch64"})
			continue
		}
		p := inventory.Package{Name: n, EVR: e.EVR, Arch: "aarch64"}
		if strings.Contains(e.Release, "module_el") {
			p.ModularityLabel = fmt.Sprintf("%s:%s:9020020230101000000:abcdef01", n, streamOf(e.Version))
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// BenchmarkMatch is issue 2's matching budget: a 1,000-package device
// against all 1,783 AlmaLinux 9 advisories, the Match step alone (the Index
// is built once, as the server holds it). Budget: under 5 ms.
func BenchmarkMatch(b *testing.B) {
	advs := loadOSV(b, "almalinux9.jsonl.gz", "AlmaLinux:9")
	pkgs := benchInventory(b, advs)
	x := NewIndex(advs)
	var fs []Finding
	b.ReportAllocs()
	for b.Loop() {
		fs = x.Match("AlmaLinux:9", pkgs)
	}
	n := 0
	for _, f := range fs {
		n += len(f.Packages)
	}
	b.ReportMetric(float64(len(advs)), "advisories")
	b.ReportMetric(float64(len(pkgs)), "packages")
	b.ReportMetric(float64(len(fs)), "findings")
	b.ReportMetric(float64(n), "exposed-pkgs")
}

// BenchmarkNewIndex is the one-off cost of indexing the AlmaLinux 9 advisories.
func BenchmarkNewIndex(b *testing.B) {
	advs := loadOSV(b, "almalinux9.jsonl.gz", "AlmaLinux:9")
	b.ReportAllocs()
	for b.Loop() {
		NewIndex(advs)
	}
}
