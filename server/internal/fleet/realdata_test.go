package fleet

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/applicability"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// osvFile is one release's file of the real AlmaLinux OSV database, read
// as the server's import and the agent's check read it (source).
type osvFile struct {
	name string
	advs []advisory.Advisory
}

var realOSV struct {
	once  sync.Once
	files []osvFile
	err   error
}

// loadOSV reads the AlmaLinux 8, 9 and 10 files once for every test.
func loadOSV(t *testing.T) []osvFile {
	t.Helper()
	realOSV.once.Do(func() {
		dir, err := fixtures.Dir()
		if err != nil {
			realOSV.err = err
			return
		}
		for _, n := range []string{"almalinux8", "almalinux9", "almalinux10"} {
			advs, err := source.Load(context.Background(), filepath.Join(dir, "almalinux-osv", n+".jsonl.gz"), source.Options{})
			if err != nil {
				realOSV.err = err
				return
			}
			realOSV.files = append(realOSV.files, osvFile{n, advs})
		}
	})
	if realOSV.err != nil {
		t.Fatal(realOSV.err)
	}
	return realOSV.files
}

// realDevice is a device image of rpmtest with the release it reports.
type realDevice struct {
	name, version, ecosystem string
	pkgs                     []protocol.Package
}

func realDevices(t *testing.T) []realDevice {
	t.Helper()
	var devs []realDevice
	for _, d := range []struct {
		name, version, eco string
		img                func() (rpmtest.Image, error)
	}{
		{"el8", "8.10", "AlmaLinux:8", rpmtest.AlmaLinux8OpenJDK},
		{"el9", "9.6", "AlmaLinux:9", rpmtest.AlmaLinux9OpenJDK},
	} {
		img, err := d.img()
		if err != nil {
			t.Fatal(err)
		}
		var pkgs []protocol.Package
		for _, p := range img.Packages {
			pkgs = append(pkgs, protocol.Package{Name: p.Name, Epoch: p.Epoch, Version: p.Version, Release: p.Release,
				Arch: p.Arch, ModularityLabel: p.ModularityLabel})
		}
		devs = append(devs, realDevice{d.name, d.version, d.eco, pkgs})
	}
	return devs
}

// answer is a device's list of advisories: per advisory id, the
// installed packages older than the fix, sorted by name and arch.
type answer map[string][]protocol.PlanPackage

// checkAnswer is what rpmfleet-agent check says of pkgs on a device of
// ecosystem eco given files: every advisory applicability.Device finds,
// streamed one at a time as check streams them. An id the files hold
// twice for one ecosystem (the same record in two releases' files) must
// give the same finding both times.
func checkAnswer(t *testing.T, eco string, pkgs []protocol.Package, files []osvFile) answer {
	t.Helper()
	inst := make([]inventory.Package, len(pkgs))
	for i, p := range pkgs {
		inst[i] = inventory.Package{Name: p.Name, Arch: p.Arch, ModularityLabel: p.ModularityLabel}
		inst[i].Epoch, inst[i].Version, inst[i].Release = p.Epoch, p.Version, p.Release
	}
	dev := applicability.NewDevice(eco, inst)
	out := answer{}
	for _, f := range files {
		for i := range f.advs {
			fd, ok := dev.Match(&f.advs[i])
			if !ok {
				continue
			}
			var got []protocol.PlanPackage
			for _, fx := range fd.Packages {
				got = append(got, protocol.PlanPackage{Name: fx.Installed.Name, Arch: fx.Installed.Arch,
					Installed: fx.Installed.EVR.String(), Fixed: fx.Fixed.EVR.String()})
			}
			sortPackages(got)
			id := f.advs[i].ID
			if old, ok := out[id]; ok && !slices.Equal(old, got) {
				t.Fatalf("check finds %s twice for %s, differently: %v and %v", id, eco, old, got)
			}
			out[id] = got
		}
	}
	return out
}

// serverAnswer is the server's list for a device: its affected advisories
// (Device) with their packages (DevicePlan, without locations).
func serverAnswer(t *testing.T, st store.Store, name, id string) answer {
	t.Helper()
	ctx := t.Context()
	d, err := st.Device(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := st.DevicePlan(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	out := answer{}
	for _, a := range plan {
		var pkgs []protocol.PlanPackage
		for _, p := range a.Packages {
			pkgs = append(pkgs, protocol.PlanPackage{Name: p.Name, Arch: p.Arch, Installed: p.Installed, Fixed: p.Fixed})
		}
		sortPackages(pkgs)
		out[a.ID] = pkgs
	}
	var affected []string
	for _, a := range d.Advisories {
		if a.Status == protocol.StatusAffected {
			affected = append(affected, a.Advisory)
		}
	}
	slices.Sort(affected)
	if ids := slices.Sorted(maps.Keys(out)); !slices.Equal(ids, affected) {
		t.Errorf("device %s: plan lists %d advisories, its status %d affected", name, len(ids), len(affected))
	}
	return out
}

func sortPackages(ps []protocol.PlanPackage) {
	slices.SortFunc(ps, func(a, b protocol.PlanPackage) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Arch, b.Arch), strings.Compare(a.Installed, b.Installed))
	})
}

// diffAnswers describes how got differs from want, "" when equal.
func diffAnswers(got, want answer) string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[id]; !ok {
			fmt.Fprintf(&b, "\n  missing %s %v", id, want[id])
		} else if !slices.Equal(g, want[id]) {
			fmt.Fprintf(&b, "\n  %s: %v, check says %v", id, g, want[id])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[id]; !ok {
			fmt.Fprintf(&b, "\n  extra %s %v", id, got[id])
		}
	}
	return b.String()
}

// TestEveryImportOrderAgreesWithCheck is issue 11's "the server must give
// every device the same answer as check", on the whole real AlmaLinux OSV
// database: the AlmaLinux 8, 9 and 10 files are imported in each of the
// six orders into a real SQLite store, with an AlmaLinux 8 device running
// OpenJDK 17 (1:17.0.1.0.12-2.el8_5) and an AlmaLinux 9 one (both from the
// real UBI images) reported before anything is imported. After every
// import each device's whole list (ids, installed and fixed versions)
// equals check's over the files imported so far, so importing the 9 file
// after the 8 file keeps the AlmaLinux 8 findings of the advisories the
// two share; a file changes exactly the ids no earlier file held, and
// importing it a second time changes nothing. Devices reporting after the
// imports, and after a restart of the service, get the same answers.
// The store used to keep one advisory per id: whichever release's file came
// last took the other's entries, and the AlmaLinux 8 device lost 13
// advisories, CVE-2024-21131 among them.
func TestEveryImportOrderAgreesWithCheck(t *testing.T) {
	files := loadOSV(t)
	devs := realDevices(t)
	// The data must hold what the test is about: advisories both devices
	// are exposed to through one record with entries for both releases.
	for _, d := range devs {
		if _, ok := checkAnswer(t, d.ecosystem, d.pkgs, files)["ALSA-2024:4568"]; !ok {
			t.Fatalf("check does not list ALSA-2024:4568 for %s: the test would not try a shared advisory", d.name)
		}
	}
	orders := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for n, order := range orders {
		var names []string
		for _, i := range order {
			names = append(names, files[i].name)
		}
		t.Run(strings.Join(names, "-then-"), func(t *testing.T) {
			t.Parallel()
			importInOrder(t, files, order, devs, n == 0)
		})
	}
}

// importInOrder imports files in order and compares the devices with
// check after each. The first order (thorough) also imports each file a
// second time and restarts the service; the others skip those steps,
// which do not depend on the order, to keep the test to seconds.
func importInOrder(t *testing.T, files []osvFile, order []int, devs []realDevice, thorough bool) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "fleet.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{Uses: 3 * len(devs)})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	// enroll reports pkgs (with an extra package when marker is set, so
	// the device gets a package set of its own) for a device of d's
	// release, through svc.
	enroll := func(svc *Service, name string, d realDevice, marker string) []protocol.Package {
		t.Helper()
		info := protocol.DeviceInfo{OSID: "almalinux", OSVersionID: d.version, Arch: "aarch64"}
		e, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Name: name, Device: info})
		if err != nil {
			t.Fatal(err)
		}
		pkgs := slices.Clone(d.pkgs)
		if marker != "" {
			pkgs = append(pkgs, protocol.Package{Name: marker, Epoch: "0", Version: "1", Release: "1", Arch: "noarch"})
		}
		if _, err := svc.Report(ctx, e.DeviceID, &protocol.Report{ID: "r1", Device: info, Inventory: protocol.Inventory{
			Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}); err != nil {
			t.Fatal(err)
		}
		ids[name] = e.DeviceID
		return pkgs
	}
	compare := func(step, name string, d realDevice, pkgs []protocol.Package, imported []osvFile) {
		t.Helper()
		if diff := diffAnswers(serverAnswer(t, st, name, ids[name]), checkAnswer(t, d.ecosystem, pkgs, imported)); diff != "" {
			t.Errorf("%s: device %s (%s) differs from check:%s", step, name, d.ecosystem, diff)
		}
	}

	for _, d := range devs {
		enroll(svc, "early-"+d.name, d, "")
	}
	var imported []osvFile
	held := map[string]bool{}
	for _, i := range order {
		f := files[i]
		fresh := map[string]bool{}
		for _, a := range f.advs {
			if !held[a.ID] {
				fresh[a.ID] = true
			}
		}
		resp, err := svc.Import(ctx, f.advs)
		if err != nil {
			t.Fatalf("import %s: %v", f.name, err)
		}
		if resp.Advisories != len(f.advs) || resp.Changed != len(fresh) {
			t.Errorf("import %s = %+v; want %d read, %d changed (the ids no earlier file held)", f.name, resp, len(f.advs), len(fresh))
		}
		if thorough {
			if resp, err := svc.Import(ctx, f.advs); err != nil || resp.Changed != 0 {
				t.Errorf("import %s again = %+v, %v; want nothing changed", f.name, resp, err)
			}
		}
		maps.Copy(held, fresh)
		imported = append(imported, f)
		for _, d := range devs {
			compare("after "+f.name, "early-"+d.name, d, d.pkgs, imported)
		}
	}

	for _, d := range devs {
		pkgs := enroll(svc, "late-"+d.name, d, "rpmfleet-late")
		compare("reported after the imports", "late-"+d.name, d, pkgs, imported)
	}
	want := []string{"early-el8", "late-el8", "early-el9"}
	if thorough {
		// A restarted service rebuilds its index from the stored variants.
		again, err := New(ctx, st, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range devs {
			pkgs := enroll(again, "restarted-"+d.name, d, "rpmfleet-restarted")
			compare("reported after a restart", "restarted-"+d.name, d, pkgs, imported)
		}
		want = append(want, "restarted-el8")
	}

	resp, err := st.CVE(ctx, "CVE-2024-21131")
	if err != nil {
		t.Fatal(err)
	}
	exposed := map[string]bool{}
	for _, e := range resp.Exposed {
		if e.Package == "java-17-openjdk-headless" {
			exposed[e.Device] = true
		}
	}
	for _, name := range want {
		if !exposed[name] {
			t.Errorf("CVE-2024-21131 does not list %s's java-17-openjdk-headless: %+v", name, resp.Exposed)
		}
	}
}
