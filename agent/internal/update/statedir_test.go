package update

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/rpmfleet/rpmfleet/agent/internal/statedir"
)

// TestOpenJournalStateDir: under umask 0, OpenJournal tightens a 0777 state
// folder to 0700 and makes its own folders and lock 0700 and 0600; it
// refuses a folder another user owns.
func TestOpenJournalStateDir(t *testing.T) {
	// Not parallel: it sets the process umask.
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	t.Run("a 0777 folder", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		j, err := OpenJournal(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := j.SaveState(&State{}); err != nil {
			t.Fatal(err)
		}
		j.Close()
		for rel, want := range map[string]os.FileMode{
			".": os.ModeDir | 0o700, "cycles": os.ModeDir | 0o700, "packages": os.ModeDir | 0o700, "lock": 0o600, "state.json": 0o600,
		} {
			if fi, err := os.Stat(filepath.Join(dir, rel)); err != nil || fi.Mode() != want {
				t.Errorf("%s: %v (%v), want %v", rel, fi.Mode(), err, want)
			}
		}
	})
	t.Run("another user's folder", func(t *testing.T) {
		dir := "/" // root's, for a test not run as root
		if os.Geteuid() == 0 {
			dir = filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := OpenJournal(dir); !errors.Is(err, statedir.ErrNotOwner) {
			t.Fatalf("OpenJournal: %v, want statedir.ErrNotOwner", err)
		}
	})
}
