package fleet

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

func loadTestdata(t *testing.T) []advisory.Advisory {
	t.Helper()
	var advs []advisory.Advisory
	for _, f := range []string{"almalinux9_ALSA-2023_3722.json", "almalinux8_ALSA-2023_3083.json"} {
		a, err := source.Load(context.Background(), filepath.Join("testdata", f), source.Options{})
		if err != nil {
			t.Fatal(err)
		}
		advs = append(advs, a...)
	}
	return advs
}

var (
	oldSSL   = protocol.Package{Name: "openssl-libs", Epoch: "1", Version: "3.0.1", Release: "23.el9_0", Arch: "aarch64"}
	fixedSSL = protocol.Package{Name: "openssl-libs", Epoch: "1", Version: "3.0.7", Release: "16.el9_2", Arch: "aarch64"}
	alma9    = protocol.Package{Name: "almalinux-release", Version: "9.2", Release: "1.el9", Arch: "aarch64"}
	rhel9    = protocol.Package{Name: "redhat-release", Version: "9.0", Release: "1.el9", Arch: "aarch64"}
	alma8    = protocol.Package{Name: "almalinux-release", Version: "8.8", Release: "1.el8", Arch: "aarch64"}
	golang8  = protocol.Package{Name: "golang", Version: "1.18.0", Release: "1.el8", Arch: "aarch64"}
)

func TestMatch(t *testing.T) {
	t.Parallel()
	m := newMatcher(loadTestdata(t))
	tests := []struct {
		name    string
		release string // the devices' os-release, store.Release
		pkgs    []protocol.Package
		want    []store.Finding
	}{
		{
			name:    "the os-release decides, not the redhat-release package",
			release: "almalinux:9",
			pkgs:    []protocol.Package{rhel9, oldSSL},
			want: []store.Finding{{Advisory: "ALSA-2023:3722", Package: "openssl-libs", Arch: "aarch64",
				Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2", Affected: true}},
		},
		{
			name:    "a RHEL 9 device takes no AlmaLinux advisory",
			release: "rhel:9",
			pkgs:    []protocol.Package{alma9, oldSSL},
		},
		{
			name:    "an AlmaLinux 8 device takes no AlmaLinux 9 advisory",
			release: "almalinux:8",
			pkgs:    []protocol.Package{oldSSL},
		},
		{
			name:    "an unknown distribution is judged by its major version",
			release: "pidora:9",
			pkgs:    []protocol.Package{oldSSL},
			want: []store.Finding{{Advisory: "ALSA-2023:3722", Package: "openssl-libs", Arch: "aarch64",
				Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2", Affected: true}},
		},
		{
			name: "no os-release: the set's release package decides",
			pkgs: []protocol.Package{rhel9, oldSSL},
		},
		{
			name: "exposed openssl on AlmaLinux 9",
			pkgs: []protocol.Package{alma9, oldSSL},
			want: []store.Finding{{Advisory: "ALSA-2023:3722", Package: "openssl-libs", Arch: "aarch64",
				Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2", Affected: true}},
		},
		{
			name: "fixed openssl is a patched finding",
			pkgs: []protocol.Package{alma9, fixedSSL},
			want: []store.Finding{{Advisory: "ALSA-2023:3722", Package: "openssl-libs", Arch: "aarch64",
				Installed: "1:3.0.7-16.el9_2", Fixed: "1:3.0.7-16.el9_2"}},
		},
		{
			name: "no release package: the el9 dist tags decide",
			pkgs: []protocol.Package{oldSSL},
			want: []store.Finding{{Advisory: "ALSA-2023:3722", Package: "openssl-libs", Arch: "aarch64",
				Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2", Affected: true}},
		},
		{
			name: "an AlmaLinux 8 advisory never applies to AlmaLinux 9",
			pkgs: []protocol.Package{alma9, golang8},
		},
		{
			name: "the same package on AlmaLinux 8 is exposed",
			pkgs: []protocol.Package{alma8, golang8},
			want: []store.Finding{{Advisory: "ALSA-2023:3083", Package: "golang", Arch: "aarch64",
				Installed: "0:1.18.0-1.el8", Fixed: "0:1.19.6-1.module_el8.8.0+3558+75c9cb88", Affected: true}},
		},
		{
			name: "packages no advisory names",
			pkgs: []protocol.Package{alma9, {Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "aarch64"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.match(tt.release, tt.pkgs)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("match = %+v\nwant    %+v", got, tt.want)
			}
		})
	}
}

func TestReleaseAdmits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rel  release
		eco  string
		want bool
	}{
		{"same ecosystem", release{ecosystem: "AlmaLinux:9"}, "AlmaLinux:9", true},
		{"other major", release{ecosystem: "AlmaLinux:9"}, "AlmaLinux:8", false},
		{"other distribution", release{ecosystem: "AlmaLinux:9"}, "Rocky Linux:9", false},
		{"updateinfo names none", release{ecosystem: "AlmaLinux:9"}, "", true},
		{"major only", release{major: "9"}, "AlmaLinux:9", true},
		{"major only, other major", release{major: "9"}, "AlmaLinux:8", false},
		{"major only, no false suffix", release{major: "9"}, "AlmaLinux:10:9x", false},
		{"unknown release takes all", release{}, "AlmaLinux:8", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rel.admits(tt.eco); got != tt.want {
				t.Errorf("%+v.admits(%q) = %v, want %v", tt.rel, tt.eco, got, tt.want)
			}
		})
	}
}

// TestServiceRestart: advisories imported before a restart still match
// reports after it, because New rebuilds the index from the store.
func TestServiceRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleet.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := svc.Import(ctx, loadTestdata(t))
	if err != nil || resp.Advisories != 2 || resp.Changed != 2 {
		t.Fatalf("Import = %+v, %v; want 2 read, 2 changed", resp, err)
	}
	if resp, err := svc.Import(ctx, loadTestdata(t)); err != nil || resp.Changed != 0 {
		t.Fatalf("second Import = %+v, %v; want nothing changed", resp, err)
	}
	st.Close()

	st, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err = New(ctx, st, Options{Now: func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Uses != 1 || !tok.Expires.Equal(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("default enrolment token = %+v, want 1 use, 24 h", tok)
	}
	dev, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Device: protocol.DeviceInfo{Hostname: "pi"}})
	if err != nil || dev.Name != "pi" {
		t.Fatalf("Enroll = %+v, %v; want the host name as the name", dev, err)
	}
	pkgs := []protocol.Package{alma9, oldSSL}
	if _, err := svc.Report(ctx, dev.DeviceID, &protocol.Report{ID: "r1", Inventory: protocol.Inventory{
		Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}); err != nil {
		t.Fatal(err)
	}
	got, err := st.CVE(ctx, "CVE-2023-2650")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Exposed) != 1 || got.Exposed[0].Device != "pi" || got.Exposed[0].Advisory != "ALSA-2023:3722" {
		t.Errorf("CVE after restart = %+v, want pi exposed via ALSA-2023:3722", got)
	}
}

func TestCreateTokenRefusesUnknownRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		req  protocol.TokenCreateRequest
		// field is the start of the message after "fleet: bad request: ".
		field string
	}{
		{"unknown role", protocol.TokenCreateRequest{Name: "x", Role: "root"}, `role: "root" is not`},
		{"no name", protocol.TokenCreateRequest{Name: "", Role: protocol.RoleAdmin}, "name: empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.CreateToken(ctx, tt.req)
			if !errors.Is(err, ErrBadRequest) || !strings.HasPrefix(err.Error(), "fleet: bad request: "+tt.field) {
				t.Errorf("CreateToken(%+v): err = %v, want ErrBadRequest naming %q", tt.req, err, tt.field)
			}
		})
	}
	if toks, err := st.ListTokens(ctx); err != nil || len(toks) != 0 {
		t.Errorf("tokens after refused requests = %+v, %v; want none", toks, err)
	}
}

// TestAdvisoryAfterReport: a device that reported before the advisory
// arrived is marked exposed by the import itself.
func TestAdvisoryAfterReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
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
	for _, d := range []struct {
		name string
		ssl  protocol.Package
	}{{"old", oldSSL}, {"new", fixedSSL}} {
		dev, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Name: d.name})
		if err != nil {
			t.Fatal(err)
		}
		pkgs := []protocol.Package{alma9, d.ssl}
		if _, err := svc.Report(ctx, dev.DeviceID, &protocol.Report{ID: "r1", Inventory: protocol.Inventory{
			Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := st.CVE(ctx, "CVE-2023-2650"); len(got.Exposed)+len(got.Patched) != 0 {
		t.Fatalf("CVE before any advisory = %+v", got)
	}
	if _, err := svc.Import(ctx, loadTestdata(t)); err != nil {
		t.Fatal(err)
	}
	got, err := st.CVE(ctx, "CVE-2023-2650")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Exposed) != 1 || got.Exposed[0].Device != "old" || len(got.Patched) != 1 || got.Patched[0].Device != "new" {
		t.Errorf("CVE after the import = %+v, want old exposed and new patched", got)
	}
}

// TestReportMatchesTheDevicesRelease: a device whose package set holds
// redhat-release (a converted RHEL image) but whose os-release says
// AlmaLinux 9 is exposed to an AlmaLinux advisory. The server used to read
// the release from the set alone and showed it exposed to nothing.
func TestReportMatchesTheDevicesRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Import(ctx, loadTestdata(t)); err != nil {
		t.Fatal(err)
	}
	tok, err := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{Uses: 2})
	if err != nil {
		t.Fatal(err)
	}
	pkgs := []protocol.Package{rhel9, oldSSL}
	for _, d := range []struct{ name, osid string }{{"converted", "almalinux"}, {"rhel", "rhel"}} {
		dev, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Name: d.name})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Report(ctx, dev.DeviceID, &protocol.Report{ID: "r1",
			Device:    protocol.DeviceInfo{OSID: d.osid, OSVersionID: "9.2", Arch: "aarch64"},
			Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.CVE(ctx, "CVE-2023-2650")
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.CVEExposure{{Device: "converted", Advisory: "ALSA-2023:3722", Package: "openssl-libs",
		Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"}}
	if !slices.Equal(got.Exposed, want) || len(got.Patched) != 0 {
		t.Errorf("CVE-2023-2650 = %+v\nwant exposed %+v (the RHEL device takes no AlmaLinux advisory)", got, want)
	}
}
