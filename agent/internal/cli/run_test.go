package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunRefusesToStart: run stops at once, exit 1, with an error that
// says what to fix, for a bad configuration (naming its line and key) and
// for a device that names a server but never enrolled (without a server
// it runs standalone: agent/integration's standalone tests). The daemon itself is tested in
// agent/internal/daemon.
func TestRunRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, config, want string
	}{
		{"bad value", write("bad.toml", "state_dir = \""+dir+"\"\n[poll]\ninterval = \"soon\"\n"), "bad.toml:3"},
		{"unknown key", write("unknown.toml", "state_dir = \""+dir+"\"\nservr = \"https://x\"\n"), "servr"},
		{"server set but not enrolled", write("ok.toml", "server = \"https://fleet.example.org\"\nstate_dir = \""+filepath.Join(dir, "state")+"\"\n"), "rpmfleet-agent enroll"},
		{"no file", filepath.Join(dir, "missing.toml"), "missing.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), []string{"run", "--config", tt.config}, &stdout, &stderr)
			if code != ExitError || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("run: exit %d, stderr %q; want exit 1 and %q", code, stderr.String(), tt.want)
			}
		})
	}
}
