// Package statedir makes the agent's state folder (/var/lib/rpmfleet, or
// state_dir, or --state-dir) private before anything is written in it.
//
// Threat model. The state folder holds the device's credential, the pinned
// notice key, the replay guard, the update journal, the downloaded packages
// and the report queue: whoever can read it can act as the device towards
// the fleet server, and whoever can write in it can make the agent (root)
// replay an old plan, resume a forged cycle or report lies. So the folder
// must belong to the agent's own user and let nobody else in. Ensure creates
// it 0700 (whatever the umask), tightens an existing looser one to 0700,
// and refuses, with ErrNotOwner, one that belongs to another user: such a
// user could put back anything the agent removes, so no mode change would
// make it safe, and taking it over (chown) would be guessing the admin's
// intent. The checks are made on the opened folder (fstat, fchmod), not on
// its path. A link at the state folder's own path is followed: the path
// comes from root's configuration or command line, which are trusted.
package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Mode is the state folder's mode.
const Mode fs.FileMode = 0o700

// ErrNotOwner: the state folder belongs to another user than the agent's.
var ErrNotOwner = errors.New("statedir: owned by another user")

// Ensure makes dir (and missing parents) mode 0700 when it does not exist,
// and checks an existing one as Check does.
func Ensure(dir string) (from fs.FileMode, changed bool, err error) {
	if err := os.MkdirAll(dir, Mode); err != nil {
		return 0, false, fmt.Errorf("state dir: %w", err)
	}
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false, fmt.Errorf("state dir: %w", err)
	}
	defer d.Close()
	from, changed, err = Check(d)
	if err != nil {
		return from, changed, fmt.Errorf("state dir: %w", err)
	}
	return from, changed, nil
}

// Check checks an open folder (the state folder, or another the agent
// keeps private, such as the spool): it must be owned by this process's
// effective user (else the error wraps ErrNotOwner); a mode other than
// 0700 is set to 0700, and changed says so, with the mode it had, for the
// caller to log.
func Check(d *os.File) (from fs.FileMode, changed bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		return 0, false, fmt.Errorf("%s: %w", d.Name(), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, false, fmt.Errorf("%s: not a folder", d.Name())
	}
	if euid := os.Geteuid(); int(st.Uid) != euid {
		return 0, false, fmt.Errorf("%w: %s belongs to uid %d, the agent runs as uid %d: chown it to uid %d, or choose another folder", ErrNotOwner, d.Name(), st.Uid, euid, euid)
	}
	from = fs.FileMode(st.Mode & 0o777)
	if st.Mode&0o7777 == uint32(Mode) { // no setuid, setgid or sticky bit either
		return from, false, nil
	}
	if err := d.Chmod(Mode); err != nil {
		return from, false, fmt.Errorf("%s: tighten mode %#o to %#o: %w", d.Name(), from, Mode, err)
	}
	return from, true, nil
}
