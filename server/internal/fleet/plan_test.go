package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// TestPlanPinsRepositoryPackages: advisories synced from a real
// createrepo'd repository carry the location and SHA-256 primary.xml gives
// for the fixed package of the device's arch, and the signed plan passes
// them on, so the agent installs exactly that file.
func TestPlanPinsRepositoryPackages(t *testing.T) {
	ctx := t.Context()
	fixed := []rpmtest.Package{
		{Name: "openssl-libs", Epoch: "1", Version: "3.0.7", Release: "16.el9_2", Arch: "aarch64"},
		{Name: "openssl-libs", Epoch: "1", Version: "3.0.7", Release: "16.el9_2", Arch: "x86_64"},
	}
	rpms, err := rpmtest.Build(t.TempDir(), fixed...)
	if err != nil {
		t.Fatal(err)
	}
	xml, err := rpmtest.UpdateinfoXML([]advisory.Advisory{{ID: "ALSA-2023:3722", Type: advisory.Security, Severity: advisory.Moderate,
		Issued: time.Date(2023, 6, 21, 0, 0, 0, 0, time.UTC), Title: "Moderate: openssl security update",
		Packages: []advisory.Package{{Name: "openssl-libs", EVR: rpmver.MustParseEVR("1:3.0.7-16.el9_2")}}}},
		[]string{"aarch64", "x86_64"})
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	if err := rpmtest.NewRepo(repo, rpms, xml); err != nil {
		t.Fatal(err)
	}
	srv := rpmtest.Serve(t, repo)
	b, err := os.ReadFile(filepath.Join(repo, "Packages", filepath.Base(rpms[0])))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)

	f := newPushFleet(t)
	if _, res, err := NewSyncer(f.svc, nil, nil).Sync(ctx, srv.URL, [sha256.Size]byte{}); err != nil || res.Changed != 1 {
		t.Fatalf("Sync = %+v, %v; want one advisory", res, err)
	}
	id := f.enrollReport(t, "pi", alma9, oldSSL) // aarch64
	signed, _, err := f.svc.Plan(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var plan protocol.Plan
	f.verify(t, signed, notice.KindPlan, id, &plan)
	want := protocol.PlanPackage{Name: "openssl-libs", Arch: "aarch64", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2",
		Location: "Packages/" + filepath.Base(rpms[0]), SHA256: hex.EncodeToString(sum[:])}
	if len(plan.Advisories) != 1 || len(plan.Advisories[0].Packages) != 1 || plan.Advisories[0].Packages[0] != want {
		got, _ := json.Marshal(plan)
		t.Fatalf("plan = %s\nwant the package %+v", got, want)
	}
}
