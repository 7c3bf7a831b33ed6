package integration

import (
	"strings"
	"testing"
)

// TestServerVersion: "rpmfleet-server version" works as the other two
// programs' version commands do, and a stray argument is refused.
func TestServerVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"-version"}} {
		r := run(t, nil, "rpmfleet-server", args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "rpmfleet-server ") {
			t.Errorf("rpmfleet-server %s: exit %d, stdout %q, stderr %q", args[0], r.code, r.stdout, r.stderr)
		}
	}
	if r := run(t, nil, "rpmfleet-server", "verison"); r.code != 2 || !strings.Contains(r.stderr, `unexpected argument "verison"`) {
		t.Errorf("rpmfleet-server verison: exit %d, stderr %q", r.code, r.stderr)
	}
}
