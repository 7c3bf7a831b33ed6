// Package durable replaces files so that a crash or a power cut leaves
// either the old content or the new one, whole, never a mix, an empty file
// or nothing: the one way the agent and the server write their state.
//
// A write goes to a temporary file in the target's folder, named
// ".tmp-NAME-RANDOM" (IsTemp recognizes it), created with O_EXCL and
// O_NOFOLLOW at mode 0600, so it is never a file or a link someone planted
// there, and it is readable by nobody else while it is being written. It is
// then given its final mode, synced, renamed over the target (rename replaces
// a link planted at the target's name; it never writes through it), and the
// folder is synced, so the rename itself survives a power cut. Every error of
// every step is returned; after an error the temporary file is removed and
// the target keeps its old content. A temporary file is left behind only when
// the process dies in the middle (kill -9, a power cut): its owner removes
// such files when it starts (IsTemp).
//
// Threat model. The folder a file is written in is trusted: whoever can write
// in it can replace the file anyway. What this package guards against is a
// name in that folder that is not what the writer expects (a symbolic link,
// a FIFO, a folder) and a reader seeing half a file. WriteFileIn works on an
// open folder, for folders whose path someone else could change (the agent's
// spool), so that the file lands in the folder that was checked.
package durable

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// tempPrefix starts every temporary file's name.
const tempPrefix = ".tmp-"

// createTries bounds the names tried when a temporary name is taken.
const createTries = 100

// ErrBadName: the name to write is not a single file name (empty, "." or
// "..", or holding a slash; a path ending in a slash has an empty one).
var ErrBadName = errors.New("durable: not a file name")

// tempSuffix returns the random part of a temporary file's name; a test
// seam, so a test can plant a link at the name about to be used.
var tempSuffix = func() string { return strconv.FormatUint(rand.Uint64(), 36) }

// WriteFile replaces path with data, mode perm (exactly, whatever the
// umask), as the package doc says. The folder must exist.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write replaces path with what fill writes, mode perm, as WriteFile does;
// when fill fails, so does Write, and path keeps its old content.
func Write(path string, perm fs.FileMode, fill func(io.Writer) error) error {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer d.Close()
	if err := write(d, name, perm, fill); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteFileIn replaces the file name in the open folder dir with data, mode
// perm, as WriteFile does, without going through dir's path again: the file
// lands in the folder dir is, even if its path now leads elsewhere.
func WriteFileIn(dir *os.File, name string, data []byte, perm fs.FileMode) error {
	err := write(dir, name, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir.Name(), name), err)
	}
	return nil
}

// write does the work of the package doc in the open folder d.
func write(d *os.File, name string, perm fs.FileMode, fill func(io.Writer) error) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	dfd := int(d.Fd())
	var (
		tmp string
		fd  int
		err error
	)
	for range createTries {
		tmp = tempPrefix + name + "-" + tempSuffix()
		fd, err = unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("create temporary file: %w", &fs.PathError{Op: "openat", Path: tmp, Err: err})
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.Name(), tmp))
	err = fill(f)
	if err == nil {
		if err = f.Chmod(perm.Perm()); err != nil {
			err = fmt.Errorf("chmod: %w", err)
		}
	}
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("sync: %w", err)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err == nil {
		if rerr := unix.Renameat(dfd, tmp, dfd, name); rerr != nil {
			err = fmt.Errorf("rename into place: %w", rerr)
		}
	}
	if err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return err
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder: %w", err)
	}
	return nil
}

// Remove removes path, a file, and syncs its folder so the removal survives
// a power cut. A path that does not exist is not an error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir syncs the folder dir, so that the renames, creations and removals
// made in it survive a power cut.
func SyncDir(dir string) error {
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync folder: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}

// IsTemp reports whether name (a file name, not a path) is one of this
// package's temporary files, which only a crash leaves behind.
func IsTemp(name string) bool { return strings.HasPrefix(name, tempPrefix) }
