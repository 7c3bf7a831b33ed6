package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
)

// TestDropIns: agent.d/*.toml beside agent.toml apply in name order over
// it (a later file's key wins, tables merge key by key); a bad key in a
// drop-in is reported naming that drop-in and its line, not the main
// file; a FIFO or a group-writable drop-in is refused, without hanging.
func TestDropIns(t *testing.T) {
	const main = "state_dir = \"/var/lib/rpmfleet\"\n\n[policy]\nmode = \"notify\"\n\n[poll]\ninterval = \"1h\"\n"
	setup := func(t *testing.T, dropins map[string]string) string {
		t.Helper()
		dir := t.TempDir()
		p := filepath.Join(dir, "agent.toml")
		if err := os.WriteFile(p, []byte(main), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(DropInDir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range dropins {
			if err := os.WriteFile(filepath.Join(DropInDir(p), name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	t.Run("applied in name order", func(t *testing.T) {
		p := setup(t, map[string]string{
			"20-poll.toml":        "[poll]\ninterval = \"3h\"\n",
			"10-poll.toml":        "[poll]\ninterval = \"2h\"\n\n[policy]\nmode = \"apply\"\n",
			"30-ignored.toml.bak": "nonsense = 1\n",
		})
		c, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.Poll.Interval != 3*time.Hour || c.Policy.Mode != policy.Apply || c.StateDir != "/var/lib/rpmfleet" {
			t.Errorf("interval %v, mode %v, state_dir %q; want 3h from 20-poll, apply from 10-poll, the main file's state_dir", c.Poll.Interval, c.Policy.Mode, c.StateDir)
		}
	})
	t.Run("bad key names the drop-in and its line", func(t *testing.T) {
		p := setup(t, map[string]string{"50-typo.toml": "# comment\n\n[poll]\nintervall = \"1h\"\n"})
		_, err := Load(p)
		want := filepath.Join(DropInDir(p), "50-typo.toml") + `:4: key "poll.intervall": unknown key`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Load = %v; want %q", err, want)
		}
	})
	t.Run("bad value names the drop-in", func(t *testing.T) {
		p := setup(t, map[string]string{"50-mode.toml": "[policy]\nmode = \"yolo\"\n"})
		_, err := Load(p)
		want := filepath.Join(DropInDir(p), "50-mode.toml") + `:2: key "policy.mode"`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Load = %v; want %q", err, want)
		}
	})
	t.Run("group-writable drop-in refused", func(t *testing.T) {
		p := setup(t, map[string]string{"50-open.toml": "[poll]\ninterval = \"2h\"\n"})
		f := filepath.Join(DropInDir(p), "50-open.toml")
		if err := os.Chmod(f, 0o664); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), f) || !strings.Contains(err.Error(), "lets group or others write") {
			t.Fatalf("Load = %v; want a refusal naming %s", err, f)
		}
	})
	t.Run("FIFO refused", func(t *testing.T) {
		p := setup(t, nil)
		fifo := filepath.Join(DropInDir(p), "10-fifo.toml")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := Load(p); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), fifo) || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("Load = %v; want a refusal naming %s", err, fifo)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Load hung on a FIFO drop-in")
		}
	})
}
