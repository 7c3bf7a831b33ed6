package client

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/rpmfleet/rpmfleet/agent/internal/statedir"
)

// TestStateUnderUmask0: with umask 0 and a state folder someone made 0777,
// the credential is still written 0600 in a folder tightened to 0700; a
// folder another user owns is refused before anything is written; a write
// that fails says so (it used to be the folder's fsync whose error was
// dropped).
func TestStateUnderUmask0(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	cred := Credential{Server: "http://x", DeviceID: "d1", Name: "pi", Credential: "rfd_secret"}

	t.Run("a 0777 folder", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := (State{Dir: dir}).SaveCredential(cred); err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string]os.FileMode{dir: os.ModeDir | 0o700, filepath.Join(dir, credentialFile): 0o600} {
			if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
				t.Errorf("%s: %v (%v), want %v", p, fi.Mode(), err, want)
			}
		}
	})
	t.Run("another user's folder", func(t *testing.T) {
		dir := "/" // root's, for a test not run as root
		if os.Geteuid() == 0 {
			dir = filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		err := (State{Dir: dir}).SaveCredential(cred)
		if !errors.Is(err, statedir.ErrNotOwner) {
			t.Fatalf("SaveCredential: %v, want statedir.ErrNotOwner", err)
		}
		if _, err := os.Lstat(filepath.Join(dir, credentialFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a credential was written in another user's folder: %v", err)
		}
	})
	t.Run("the file's name is a folder", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, credentialFile), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := (State{Dir: dir}).SaveCredential(cred); !errors.Is(err, syscall.EISDIR) {
			t.Errorf("SaveCredential: %v, want EISDIR", err)
		}
	})
}
