package cli

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/api"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// TestExitCodesAndTimes: against an in-process server over a real SQLite
// file holding the real ALSA-2023:3722 (CVE-2023-2650), a device with the
// vulnerable openssl-libs and one with the fix: cve and device exit 100
// when devices are exposed or advisories pending, 0 when not, 1 naming the
// CVE for one no imported advisory names; times are shown in the local
// zone with the zone named, or in UTC with --utc.
func TestExitCodesAndTimes(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := fleet.New(ctx, st, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	advs, err := source.Load(ctx, filepath.Join("..", "fleet", "testdata", "almalinux9_ALSA-2023_3722.json"), source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The same id for another release, as AlmaLinux 8 and 9 share the
	// OpenJDK ones: its own fixed version.
	el8 := advs[0]
	el8.Ecosystem = "AlmaLinux:8"
	el8.Packages = []advisory.Package{{Name: "openssl", EVR: rpmver.EVR{Epoch: "1", Version: "1.1.1k", Release: "9.el8_7"}}}
	if _, err := svc.Import(ctx, append(advs, el8)); err != nil {
		t.Fatal(err)
	}
	admin, err := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: "t", Role: protocol.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	et, _ := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{Uses: 2})
	for name, release := range map[string]string{"pi-old": "23.el9_0", "pi-new": "16.el9_2"} {
		version := "3.0.1"
		if name == "pi-new" {
			version = "3.0.7"
		}
		d, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: et.Token, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		pkgs := []protocol.Package{{Name: "openssl-libs", Epoch: "1", Version: version, Release: release, Arch: "aarch64"}}
		if _, err := svc.Report(ctx, d.DeviceID, &protocol.Report{ID: "r-" + name, Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64"},
			Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(api.New(svc, api.Options{TempDir: t.TempDir()}))
	defer srv.Close()
	zone := time.FixedZone("XST", 5*3600+30*60)
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, local: zone}
		code := commands[args[0]].run(context.Background(), e, append(args[1:], "--server", srv.URL, "--token", admin.Token))
		return code, out.String(), errb.String()
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{name: "cve exposed", args: []string{"cve", "CVE-2023-2650"}, code: ExitExposed, out: "1 exposed, 1 patched"},
		{name: "cve exposed, JSON", args: []string{"cve", "cve-2023-2650", "--json"}, code: ExitExposed, out: `"device": "pi-old"`},
		{name: "cve exposed, none selected", args: []string{"cve", "CVE-2023-2650", "--label", "site=nowhere"}, code: ExitOK, out: "0 exposed, 0 patched"},
		{name: "cve unknown", args: []string{"cve", "CVE-2O23-2650"}, code: ExitError, err: "CVE-2O23-2650 is unknown: no imported advisory names it"},
		{name: "cve unknown, JSON", args: []string{"cve", "CVE-1999-0001", "--json"}, code: ExitError, err: "CVE-1999-0001 is unknown"},
		{name: "device pending", args: []string{"device", "pi-old"}, code: ExitExposed, out: "ALSA-2023:3722"},
		{name: "device patched", args: []string{"device", "pi-new"}, code: ExitOK, out: "patched"},
		{name: "device, local zone named", args: []string{"device", "pi-new"}, code: ExitOK, out: " XST, last seen"},
		{name: "device --utc", args: []string{"device", "pi-new", "--utc"}, code: ExitOK, out: " UTC, last seen"},
		{name: "advisory shows packages", args: []string{"advisory", "ALSA-2023:3722"}, code: ExitOK, out: "Release AlmaLinux:9\n  Packages:\n    openssl 1:3.0.7-16.el9_2\n"},
		{name: "advisory shows references", args: []string{"advisory", "ALSA-2023:3722"}, code: ExitOK, out: "https://errata.almalinux.org/9/ALSA-2023-3722.html"},
		{name: "advisory JSON has releases", args: []string{"advisory", "ALSA-2023:3722", "--json"}, code: ExitOK, out: `"release": "AlmaLinux:9"`},
		{name: "advisory names each release", args: []string{"advisory", "ALSA-2023:3722"}, code: ExitOK, out: "Release AlmaLinux:8\n  Packages:\n    openssl 1:1.1.1k-9.el8_7\n"},
		{name: "device unknown", args: []string{"device", "nobody"}, code: ExitError, err: "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := cli(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.err) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out, errs, tt.code, tt.out, tt.err)
			}
		})
	}
}
