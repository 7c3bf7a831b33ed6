package statedir

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// LockWait is how long Lock waits for a held lock.
const LockWait = time.Second

// Lock takes an exclusive flock on f, a lock file in the state folder. It
// fails with unix.EWOULDBLOCK when the lock stays held for LockWait.
//
// It waits because a lock this very process has just released can still be
// held for a moment: a child the process is starting at that time (rpm,
// gpg) holds a copy of every descriptor until its exec closes the
// close-on-exec ones, and a flock belongs to the open file, not to the
// descriptor. Another agent process holding the lock is still told so,
// LockWait later.
func Lock(f *os.File) error {
	deadline := time.Now().Add(LockWait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline):
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
