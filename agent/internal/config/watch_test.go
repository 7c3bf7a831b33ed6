package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
)

// TestWatch changes a real file in a temp folder the ways users and tools
// do, and checks what a running watch delivers.
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.toml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("[policy]\nmode = \"notify\"\n")

	changes := make(chan *Config, 10)
	errs := make(chan error, 10)
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	const delay = 150 * time.Millisecond
	go func() {
		done <- watch(ctx, path, delay, func() { close(started) },
			func(c *Config) { changes <- c }, func(err error) { errs <- err })
	}()
	<-started

	expectChange := func(want policy.Mode) {
		t.Helper()
		select {
		case c := <-changes:
			if c.Policy.Mode != want {
				t.Fatalf("delivered mode %v, want %v", c.Policy.Mode, want)
			}
		case err := <-errs:
			t.Fatalf("error instead of a change: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("no change delivered within 5s")
		}
	}
	expectNothing := func() {
		t.Helper()
		select {
		case c := <-changes:
			t.Fatalf("unexpected delivery: %+v", c.Policy)
		case err := <-errs:
			t.Fatalf("unexpected error: %v", err)
		case <-time.After(5 * delay):
		}
	}

	t.Run("good change in place is delivered", func(t *testing.T) {
		write("[policy]\nmode = \"apply\"\n")
		expectChange(policy.Apply)
	})
	t.Run("bad change is an error and delivers nothing", func(t *testing.T) {
		write("[policy]\nmode = \"apply\"\nmoed = \"x\"\n")
		select {
		case err := <-errs:
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `agent.toml:3: key "policy.moed": unknown key`) {
				t.Fatalf("error = %v", err)
			}
		case c := <-changes:
			t.Fatalf("an invalid file was delivered: %+v", c)
		case <-time.After(5 * time.Second):
			t.Fatal("no error within 5s")
		}
		expectNothing()
	})
	t.Run("atomic rename replacement is delivered", func(t *testing.T) {
		tmp := filepath.Join(dir, ".agent.toml.tmp")
		if err := os.WriteFile(tmp, []byte("[policy]\nmode = \"download\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		expectChange(policy.Download)
	})
	t.Run("a burst of writes is delivered once", func(t *testing.T) {
		for _, m := range []string{"notify", "apply", "notify"} {
			write("[policy]\nmode = \"" + m + "\"\n")
			time.Sleep(delay / 30)
		}
		expectChange(policy.Notify)
		expectNothing()
	})
	t.Run("saving the same content delivers nothing", func(t *testing.T) {
		write("[policy]\nmode = \"notify\"\n")
		expectNothing()
	})
	t.Run("other files in the folder are ignored", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "agent.toml~"), []byte("junk = ["), 0o644); err != nil {
			t.Fatal(err)
		}
		expectNothing()
	})
	t.Run("going back to good after bad is delivered", func(t *testing.T) {
		write("[policy]\nmode = 3\n")
		if err := <-errs; !errors.Is(err, ErrInvalid) {
			t.Fatalf("error = %v", err)
		}
		write("[policy]\nmode = \"apply\"\n")
		expectChange(policy.Apply)
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

func TestWatchMissingFolder(t *testing.T) {
	err := Watch(context.Background(), filepath.Join(t.TempDir(), "absent", "agent.toml"), func(*Config) {}, func(error) {})
	if err == nil || !strings.Contains(err.Error(), "watch config") {
		t.Errorf("Watch on a missing folder = %v", err)
	}
}
