package cli

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/api"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// TestFleetOpsCommands: labels, group, approve, rollout, audit and
// fleetlock against an in-process server over a real SQLite file: what
// they print, the server's refusals passed on with the field they name
// (escaped), and usage errors.
func TestFleetOpsCommands(t *testing.T) {
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
	tok, err := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: "alice", Role: protocol.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(svc, api.Options{TempDir: t.TempDir()}))
	defer srv.Close()
	et, _ := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{})
	if _, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: et.Token, Name: "pi-1"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Main(ctx, append(args, "--server", srv.URL, "--token", tok.Token), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		noStdout string
	}{
		{"labels", []string{"labels", "pi-1", "site=field", "ring=canary"}, 0, "pi-1: labels ring=canary,site=field", "", ""},
		{"label with an escape", []string{"labels", "pi-1", "site=x\x1b[2J"}, 1, "", "labels.site: ", ""},
		{"label not k=v", []string{"labels", "pi-1", "site"}, 1, "", `"site" is not key=value`, ""},
		{"group set", []string{"group", "set", "field", "site=field"}, 0, "group field: selector site=field, 1 devices", "", ""},
		{"group policy", []string{"group", "policy", "field", write("p.json", `{"mode": "apply", "approve_after_days": {"Critical": 0}}`)}, 0, "approve after Critical 0d", "", ""},
		{"group policy, unknown field", []string{"group", "policy", "field", write("typo.json", `{"mode": "apply", "approve_after_day": {}}`)}, 1, "", "typo.json: json: unknown field", ""},
		{"group policy, bad zone", []string{"group", "policy", "field", write("zone.json", `{"mode": "apply", "windows": [{"days": ["mon"], "start": "02:00", "length": "1h", "timezone": "Mars/Olympus"}]}`)}, 1, "", "policy.windows[0].timezone", ""},
		{"group list", []string{"group", "list"}, 0, "field  site=field  1", "", ""},
		{"devices of the group", []string{"devices", "--group", "field"}, 0, "pi-1", "", ""},
		{"devices of another label", []string{"devices", "--label", "site=lab"}, 0, "NAME", "", "pi-1"},
		{"group usage", []string{"group", "frobnicate"}, 2, "", "Usage: rpmfleet group", ""},
		{"approve unknown", []string{"approve", "ALSA-0000:0000"}, 1, "", "unknown advisory", ""},
		{"rollout without an advisory", []string{"rollout", "create", "--group", "field"}, 1, "", "advisory: empty", ""},
		{"rollout usage", []string{"rollout", "show"}, 2, "", "Usage: rpmfleet rollout", ""},
		{"rollout list", []string{"rollout", "list"}, 0, "ID", "", ""},
		{"fleetlock list", []string{"fleetlock", "list"}, 0, "GROUP", "", ""},
		{"fleetlock release nothing", []string{"fleetlock", "release", "default", "pi-1"}, 1, "", "404", ""},
		{"audit", []string{"audit", "--action", "device.labels"}, 0, "alice", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) || tt.noStdout != "" && strings.Contains(out, tt.noStdout) {
				t.Errorf("rpmfleet %s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d, stdout with %q, stderr with %q", strings.Join(tt.args, " "), code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
			if strings.Contains(out+errOut, "\x1b") {
				t.Errorf("raw escape printed")
			}
		})
	}
}
