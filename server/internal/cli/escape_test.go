package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/api"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// raw are the bytes a terminal acts on that must never reach it from the
// server.
const raw = "\x1b\x00\u202e\u009b\u200d\r"

// TestDeviceTextShownEscaped: devices stored before names were checked (as
// an older server took them: written straight to the store, which checks
// none) with escape sequences, a newline, a right-to-left override and
// invalid UTF-8 in their names, info and package versions, are listed by
// the CLI with every such byte escaped, in tables and in --json.
func TestDeviceTextShownEscaped(t *testing.T) {
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
	if _, err := svc.Import(ctx, advs); err != nil {
		t.Fatal(err)
	}
	admin, err := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: "t", Role: protocol.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"pi\x1b[2J\x1b[H", "pi\nforged-row  almalinux 9.2", "pi\u202egnp.exe", "pi\xff\xfe\x00"}
	now := time.Now().UTC()
	if err := st.CreateEnrollToken(ctx, store.EnrollToken{ID: "old", Hash: store.HashSecret("old"), Expires: now.Add(time.Hour), UsesLeft: 10, Created: now}); err != nil {
		t.Fatal(err)
	}
	pkgs := []protocol.Package{{Name: "openssl-libs", Epoch: "1", Version: "3.0.1", Release: "23.el9_0\x1b]0;owned\x07", Arch: "aarch64"}}
	for i, name := range names {
		d, err := st.Enroll(ctx, store.HashSecret("old"), store.NewDevice{ID: string(rune('a' + i)), Name: name,
			CredentialHash: store.HashSecret(name), Enrolled: now, Info: protocol.DeviceInfo{OSID: "almalinux\x1b[31m", OSVersionID: "9.2", Kernel: "6.1\u202e"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Report(ctx, d.ID, &protocol.Report{ID: "r", Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64\x1b[5m"},
			Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(api.New(svc, api.Options{TempDir: t.TempDir()}))
	defer srv.Close()
	cli := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		args = append(args, "--server", srv.URL, "--token", admin.Token)
		if code := Main(context.Background(), args, &out, &errb); code != ExitOK && code != ExitExposed {
			t.Fatalf("rpmfleet %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
		return out.String()
	}
	for _, args := range [][]string{{"devices"}, {"devices", "--json"}, {"cve", "CVE-2023-2650"}, {"cve", "CVE-2023-2650", "--json"},
		{"device", names[0]}, {"device", names[2], "--json"}, {"advisory", "ALSA-2023:3722"}} {
		out := cli(args...)
		if i := strings.IndexAny(out, raw); i >= 0 {
			t.Errorf("rpmfleet %q printed a raw %q at byte %d:\n%s", args, out[i], i, out)
		}
		if !strings.HasSuffix(args[len(args)-1], "json") {
			continue
		}
		// --json stays JSON that decodes to the stored strings.
		if args[0] == "devices" {
			var ds []protocol.DeviceSummary
			if err := json.Unmarshal([]byte(out), &ds); err != nil || len(ds) != len(names) {
				t.Fatalf("rpmfleet devices --json: %v, %d devices", err, len(ds))
			}
			if ds[2].Name != names[2] || ds[0].Info.Arch != "aarch64\x1b[5m" {
				t.Errorf("--json changed the values: %q, %q", ds[2].Name, ds[0].Info.Arch)
			}
		}
	}
	table := cli("devices")
	// The server's JSON already turned the invalid UTF-8 into U+FFFD, a
	// printable character; the NUL after it is escaped.
	for _, want := range []string{`pi\x1b[2J\x1b[H`, `pi\x0aforged-row  almalinux 9.2`, `pi\u202egnp.exe`, "pi\uFFFD\uFFFD\\x00", `aarch64\x1b[5m`} {
		if !strings.Contains(table, want) {
			t.Errorf("rpmfleet devices does not show %s:\n%s", want, table)
		}
	}
	if n := strings.Count(strings.TrimSpace(table), "\n"); n != len(names) {
		t.Errorf("rpmfleet devices printed %d rows, want a header and %d: a newline in a name forged a row:\n%s", n+1, len(names), table)
	}
	if out := cli("cve", "CVE-2023-2650"); !strings.Contains(out, `23.el9_0\x1b]0;owned\x07`) {
		t.Errorf("rpmfleet cve does not show the installed release escaped:\n%s", out)
	}
	// An error quoting a device's name is escaped too.
	var out, errb bytes.Buffer
	Main(context.Background(), []string{"device", "delete", "x\x1b[2J", "--server", srv.URL, "--token", admin.Token}, &out, &errb)
	if strings.ContainsAny(errb.String(), raw) {
		t.Errorf("an error printed raw bytes: %q", errb.String())
	}
}
