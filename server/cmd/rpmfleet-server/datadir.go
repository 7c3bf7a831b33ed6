package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// The data folder holds the server's secrets: the notice key that signs
// every plan, the first admin token, the TLS CA key, and the database with
// every device's credential hash. It is the server user's alone:
//
//   - the folder is made 0700, and an existing one is tightened to 0700
//     whatever mode it had;
//   - a folder owned by another user is refused: that user could replace
//     any file in it (the notice key, the database) under the server;
//   - every file the server makes is 0600 (the SQLite file is made before
//     SQLite opens it, and SQLite gives its -wal and -shm files the
//     database's mode), whatever the umask;
//   - what an older server or a loose umask left in the folder is
//     tightened too: group and other permissions are removed from every
//     file and folder below it (symbolic links are left alone: chmod would
//     follow them out of the folder).

// errDataOwner marks a data folder owned by someone else.
var errDataOwner = errors.New("data folder not owned by the server's user")

// prepareDataDir makes or tightens the data folder and what it holds.
func prepareDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make data folder: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("data folder %s: not a folder", dir)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s belongs to uid %d, the server runs as uid %d; chown it to the server's user or choose another --data",
			errDataOwner, dir, sys.Uid, os.Geteuid())
	}
	var tightened []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode().Perm()
		want := mode &^ 0o077
		if path == dir {
			want = 0o700
		}
		if mode == want {
			return nil
		}
		if err := os.Chmod(path, want); err != nil {
			return err
		}
		tightened = append(tightened, fmt.Sprintf("%s (%#o)", path, mode))
		return nil
	})
	if err != nil {
		return fmt.Errorf("tighten data folder: %w", err)
	}
	if len(tightened) > 0 {
		log.Warn("data folder was open to other users; tightened to the server's user only", "dir", dir, "paths", tightened)
	}
	return nil
}

// createPrivate makes path, empty and 0600, unless it exists.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}
