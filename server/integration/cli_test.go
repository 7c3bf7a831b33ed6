package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestAdminTokens drives token create, list and revoke through the CLI,
// with the server and token taken from the environment, and checks each
// role's limits as the CLI user sees them.
func TestAdminTokens(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "data"))
	admin := []string{"RPMFLEET_SERVER=" + srv.url, "RPMFLEET_TOKEN=" + srv.admin}

	ro := strings.TrimSpace(must(t, admin, "rpmfleet", "token", "create", "--name", "dashboard", "--role", "read-only").stdout)
	reader := []string{"RPMFLEET_SERVER=" + srv.url, "RPMFLEET_TOKEN=" + ro}
	must(t, reader, "rpmfleet", "summary")
	osv := filepath.Join(fixtures(t), "almalinux-osv", "samples", "almalinux9_ALSA-2023_3722.json")
	if r := run(t, reader, "rpmfleet", "import", osv); r.code != 1 || !strings.Contains(r.stderr, "403") || !strings.Contains(r.stderr, "operator") {
		t.Errorf("read-only import: exit %d, stderr %s; want 403 naming the role needed", r.code, r.stderr)
	}
	if r := run(t, reader, "rpmfleet", "enroll-token", "create"); r.code != 1 || !strings.Contains(r.stderr, "403") {
		t.Errorf("read-only enroll-token create: exit %d, stderr %s; want 403", r.code, r.stderr)
	}

	var list []protocol.TokenInfo
	if err := json.Unmarshal([]byte(must(t, admin, "rpmfleet", "token", "list", "--json").stdout), &list); err != nil {
		t.Fatal(err)
	}
	var id string
	for _, ti := range list {
		if ti.Name == "dashboard" && ti.Role == protocol.RoleReadOnly && ti.Revoked == nil {
			id = ti.ID
		}
	}
	if id == "" || len(list) != 2 {
		t.Fatalf("token list = %+v, want initial-admin and dashboard", list)
	}
	if strings.Contains(must(t, admin, "rpmfleet", "token", "list").stdout, ro) {
		t.Errorf("token list prints a secret")
	}
	must(t, admin, "rpmfleet", "token", "revoke", id)
	if r := run(t, reader, "rpmfleet", "summary"); r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Errorf("revoked token: exit %d, stderr %s; want 401", r.code, r.stderr)
	}
	if r := run(t, nil, "rpmfleet", "summary"); r.code != 1 || !strings.Contains(r.stderr, "no server") {
		t.Errorf("no server given: exit %d, stderr %s", r.code, r.stderr)
	}
	if r := run(t, admin, "rpmfleet", "cve"); r.code != 2 {
		t.Errorf("cve without an id: exit %d, want 2 (usage)", r.code)
	}
}
