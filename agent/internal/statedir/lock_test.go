package statedir

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLockOutlastsAChildsCopy: a child that holds a copy of the lock's
// descriptor for a moment after this process closed it (as one being
// started does until its exec) delays Lock; it does not fail it. A holder
// that keeps it fails Lock after LockWait.
func TestLockOutlastsAChildsCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	open := func() *os.File {
		t.Helper()
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	first := open()
	if err := Lock(first); err != nil {
		t.Fatal(err)
	}
	// The child inherits the locked open file (ExtraFiles: descriptor 3)
	// and keeps it until its standard input closes, a moment after this
	// process let go of its own.
	child := exec.Command("sh", "-c", "read x || true")
	child.ExtraFiles = []*os.File{first}
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	first.Close()
	second := open()
	if err := unix.Flock(int(second.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("a bare flock with the child's copy open: %v, want EWOULDBLOCK", err)
	}
	time.AfterFunc(200*time.Millisecond, func() { stdin.Close() })
	if err := Lock(second); err != nil {
		t.Fatalf("Lock while the child's copy lasted 200 ms more: %v", err)
	}
	if err := child.Wait(); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := Lock(open()); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("Lock of a held lock: %v, want EWOULDBLOCK", err)
	}
	if d := time.Since(start); d < LockWait {
		t.Errorf("gave up after %v, before LockWait", d)
	}
}
