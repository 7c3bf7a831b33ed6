package cross

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/cross/internal/crosstest"
)

// serverOnly are import-path prefixes that belong to the fleet server and must
// never be linked into the agent: the PostgreSQL driver, the SQLite engine
// (the server's embedded store), the embedded MQTT broker, and the server's
// own packages. The agent reads EL9's rpmdb.sqlite with its own small reader
// (agent/internal/rpmdb/sqlitefile); modernc.org/sqlite would add 3.6 MiB to
// the arm64 binary. database/sql itself is linked, with no driver: go-rpmdb's
// sqlite backend imports it, though the agent never calls it.
var serverOnly = []string{
	"github.com/jackc/pgx",
	"modernc.org/",
	"github.com/mochi-mqtt",
	"github.com/rpmfleet/rpmfleet/server/",
}

// forbidden returns the entries of list that start with a server-only prefix.
func forbidden(list []string) []string {
	var bad []string
	for _, p := range list {
		for _, prefix := range serverOnly {
			if strings.HasPrefix(p, prefix) {
				bad = append(bad, p)
			}
		}
	}
	return bad
}

// TestAgentLinksNoServerCode builds the agent for arm64 as make cross does
// and reads the modules the binary records (go version -m), then lists the
// packages the agent's main depends on (go list -deps): neither may name a
// server-only package.
func TestAgentLinksNoServerCode(t *testing.T) {
	root := crosstest.ModRoot(t)
	bin := crosstest.BuildAgent(t, t.TempDir(), crosstest.Target{GOARCH: "arm64"}, "test")

	var modules []string
	for _, line := range strings.Split(crosstest.Run(t, root, nil, "go", "version", "-m", bin), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "dep" || f[0] == "=>") {
			modules = append(modules, f[1])
		}
	}
	if len(modules) == 0 {
		t.Log("agent binary records no dependency modules")
	}
	if bad := forbidden(modules); len(bad) > 0 {
		t.Errorf("%s links server-only modules: %v", filepath.Base(bin), bad)
	}

	pkgs := strings.Fields(crosstest.Run(t, root, []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"},
		"go", "list", "-deps", "./agent/cmd/rpmfleet-agent"))
	if len(pkgs) < 10 {
		t.Fatalf("go list -deps gave only %d packages: %v", len(pkgs), pkgs)
	}
	if bad := forbidden(pkgs); len(bad) > 0 {
		t.Errorf("rpmfleet-agent depends on server-only packages: %v", bad)
	}
}

// TestForbiddenCatchesServerDeps proves the check above can fail: the
// dependency list of pgx itself, and of a would-be server package, are
// caught.
func TestForbiddenCatchesServerDeps(t *testing.T) {
	pkgs := strings.Fields(crosstest.Run(t, crosstest.ModRoot(t), nil, "go", "list", "-deps", "github.com/jackc/pgx/v5"))
	tests := []struct {
		name string
		list []string
		want int
	}{
		{"pgx deps", pkgs, 1},
		{"broker", []string{"fmt", "github.com/mochi-mqtt/server/v2"}, 1},
		{"server package", []string{"github.com/rpmfleet/rpmfleet/server/internal/store"}, 1},
		{"sqlite engine", []string{"database/sql", "modernc.org/sqlite"}, 1},
		{"agent-only", []string{"database/sql", "github.com/knqyf263/go-rpmdb/pkg", "github.com/rpmfleet/rpmfleet/serverless"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := forbidden(tt.list)
			if (tt.want == 0) != (len(got) == 0) {
				t.Errorf("forbidden(%v) = %v, want at least %d", tt.list, got, tt.want)
			}
		})
	}
}
