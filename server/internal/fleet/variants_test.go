package fleet

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// TestImportOfOneReleaseKeepsTheOthers: ALSA-2024:0265 (the real record,
// with AlmaLinux 8 and 9 entries) reaches an AlmaLinux 8 and an AlmaLinux
// 9 device. A revised AlmaLinux 9 variant, imported alone as a source
// holding only AlmaLinux 9 would give it, changes the AlmaLinux 9 device's
// fix and leaves the AlmaLinux 8 device's finding as it was. Import used
// to hand the store a matcher over the imported advisories alone, so the
// store's re-match of the changed id found nothing for AlmaLinux 8 and
// dropped its finding. Importing the stale AlmaLinux 9 copy again then
// changes nothing.
func TestImportOfOneReleaseKeepsTheOthers(t *testing.T) {
	ctx := t.Context()
	shared, err := source.Load(ctx, fixtures.Path(t, "almalinux-osv/samples/almalinux9_ALSA-2024_0265.json"), source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var el9 advisory.Advisory
	for _, a := range shared {
		if a.Ecosystem == "AlmaLinux:9" {
			el9 = a
		}
	}
	if len(shared) != 2 || el9.ID != "ALSA-2024:0265" {
		t.Fatalf("the sample gives %d advisories, want ALSA-2024:0265 for AlmaLinux:8 and AlmaLinux:9", len(shared))
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{Uses: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ name, version, release string }{{"el8", "8.10", "4.el8"}, {"el9", "9.3", "2.el9"}} {
		info := protocol.DeviceInfo{OSID: "almalinux", OSVersionID: d.version, Arch: "aarch64"}
		e, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Name: d.name, Device: info})
		if err != nil {
			t.Fatal(err)
		}
		pkgs := []protocol.Package{{Name: "java-1.8.0-openjdk-headless", Epoch: "1", Version: "1.8.0.392.b08", Release: d.release, Arch: "aarch64"}}
		if _, err := svc.Report(ctx, e.DeviceID, &protocol.Report{ID: "r1", Device: info, Inventory: protocol.Inventory{
			Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}); err != nil {
			t.Fatal(err)
		}
	}
	fixed := func(step string, want8, want9 string) {
		t.Helper()
		resp, err := st.CVE(ctx, "CVE-2024-20918")
		if err != nil {
			t.Fatal(err)
		}
		want := []protocol.CVEExposure{
			{Device: "el8", Advisory: el9.ID, Package: "java-1.8.0-openjdk-headless", Installed: "1:1.8.0.392.b08-4.el8", Fixed: want8},
			{Device: "el9", Advisory: el9.ID, Package: "java-1.8.0-openjdk-headless", Installed: "1:1.8.0.392.b08-2.el9", Fixed: want9},
		}
		if !slices.Equal(resp.Exposed, want) {
			t.Errorf("%s: CVE-2024-20918 exposes %+v\nwant %+v", step, resp.Exposed, want)
		}
	}
	imp := func(step string, want int, advs ...advisory.Advisory) {
		t.Helper()
		resp, err := svc.Import(ctx, advs)
		if err != nil || resp.Changed != want {
			t.Fatalf("%s: Import = %+v, %v; want %d changed", step, resp, err, want)
		}
	}
	imp("the record", 1, shared...)
	fixed("the record", "1:1.8.0.402.b06-2.el8", "1:1.8.0.402.b06-2.el9")

	revised := el9
	revised.Updated = el9.Updated.Add(time.Hour)
	revised.Packages = slices.Clone(el9.Packages)
	for i := range revised.Packages {
		revised.Packages[i].EVR = rpmver.MustParseEVR("1:1.8.0.402.b06-3.el9")
	}
	imp("a revised AlmaLinux 9 variant alone", 1, revised)
	fixed("a revised AlmaLinux 9 variant alone", "1:1.8.0.402.b06-2.el8", "1:1.8.0.402.b06-3.el9")
	imp("the stale AlmaLinux 9 copy", 0, el9)
	fixed("the stale AlmaLinux 9 copy", "1:1.8.0.402.b06-2.el8", "1:1.8.0.402.b06-3.el9")
}

// TestImportRefusesAnEmptyID: an advisory without an id cannot be kept as
// any id's variant. The import is refused as a bad request naming which
// advisory of the batch it is, and nothing of the batch is stored.
func TestImportRefusesAnEmptyID(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	advs := append(loadTestdata(t), advisory.Advisory{Ecosystem: "AlmaLinux:9", Title: "no id"})
	_, err = svc.Import(ctx, advs)
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "advisory 3 of 3: empty id") {
		t.Fatalf("Import with an empty id: %v, want a bad request naming advisory 3 of 3", err)
	}
	if resp, err := svc.Import(ctx, advs[:2]); err != nil || resp.Changed != 2 {
		t.Errorf("Import of the rest afterwards = %+v, %v; want both new (the refused import stored nothing)", resp, err)
	}
}
