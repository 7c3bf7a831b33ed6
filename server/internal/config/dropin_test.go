package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDropIns: server.d/*.toml beside server.toml apply in name order over
// the main file (a later file's key wins, a [[repository]] list replaces
// the one before, a map merges key by key); an unknown key names its file
// and line; a FIFO among the drop-ins is refused (it would hang the start),
// and files not named *.toml are ignored.
func TestDropIns(t *testing.T) {
	write := func(t *testing.T, path, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	main := "listen = \"127.0.0.1:9000\"\ndata = \"/srv/fleet\"\n\n[[repository]]\nurl = \"https://a.example/\"\n\n[fleetlock]\nslots = 1\n[fleetlock.groups]\nworkers = 2\n"
	t.Run("applied in name order", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "server.toml")
		write(t, p, main)
		write(t, filepath.Join(dir, "server.d", "20-listen.toml"), "listen = \"127.0.0.1:9200\"\n")
		write(t, filepath.Join(dir, "server.d", "10-listen.toml"), "listen = \"127.0.0.1:9100\"\n[rollouts]\ntick = \"10s\"\n")
		write(t, filepath.Join(dir, "server.d", "30-repos.toml"), "[[repository]]\nurl = \"https://b.example/\"\n[fleetlock.groups]\nkiosks = 3\n")
		write(t, filepath.Join(dir, "server.d", "99-off.toml.rpmsave"), "listen = \"nonsense\"\n")
		c, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.Listen != "127.0.0.1:9200" || c.Data != "/srv/fleet" || time.Duration(c.Rollouts.Tick) != 10*time.Second {
			t.Errorf("listen %q, data %q, tick %v; want the last drop-in's listen, the main file's data, 10-listen's tick", c.Listen, c.Data, time.Duration(c.Rollouts.Tick))
		}
		if len(c.Repositories) != 1 || c.Repositories[0].URL != "https://b.example/" {
			t.Errorf("repositories %+v, want the drop-in's list alone", c.Repositories)
		}
		if c.FleetLock.Slots != 1 || c.FleetLock.Groups["workers"] != 2 || c.FleetLock.Groups["kiosks"] != 3 {
			t.Errorf("fleetlock %+v, want slots 1 and both groups", c.FleetLock)
		}
	})
	t.Run("no drop-in folder", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "server.toml")
		write(t, p, main)
		if c, err := Load(p); err != nil || c.Listen != "127.0.0.1:9000" {
			t.Fatalf("Load = %q, %v; want the main file's listen", c.Listen, err)
		}
	})
	t.Run("unknown key names file and line", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "server.toml")
		write(t, p, main)
		bad := filepath.Join(dir, "server.d", "50-typo.toml")
		write(t, bad, "# a comment\nlisten = \"127.0.0.1:9300\"\n\n[mqtt]\nlisten = \"off\"\nadvertize = \"mqtt://x\"\n")
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "mqtt.advertize (line 6)") {
			t.Fatalf("Load = %v; want an error naming %s and mqtt.advertize (line 6)", err, bad)
		}
	})
	t.Run("bad value names file and line", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "server.toml")
		write(t, p, main)
		bad := filepath.Join(dir, "server.d", "50-tick.toml")
		write(t, bad, "\n[rollouts]\ntick = \"soon\"\n")
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "line 3") {
			t.Fatalf("Load = %v; want an error naming %s, line 3", err, bad)
		}
	})
	t.Run("FIFO refused", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "server.toml")
		write(t, p, main)
		if err := os.MkdirAll(DropInDir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		fifo := filepath.Join(DropInDir(p), "10-fifo.toml")
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := Load(p); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrDropIn) || !strings.Contains(err.Error(), fifo) {
				t.Fatalf("Load = %v; want ErrDropIn naming %s", err, fifo)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Load hung on a FIFO drop-in")
		}
	})
}
