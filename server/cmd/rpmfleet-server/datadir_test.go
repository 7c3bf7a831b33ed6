package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestDataFolderUnderUmask0: a data folder that already exists with mode
// 0777, holding what a careless older server left (a 0666 file, a 0777
// folder), and a server started under umask 0, as a shell with a broken
// profile would start it: the folder ends 0700 and every file the server
// makes (the SQLite database with its -wal and -shm, the notice key, the
// admin token, the TLS keys and certificates) 0600, while it runs.
func TestDataFolderUnderUmask0(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	data := filepath.Join(t.TempDir(), "data")
	for _, d := range []string{data, filepath.Join(data, "old")} {
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(data, "old", "left-over"), []byte("x"), 0o666); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(data); st.Mode().Perm() != 0o777 {
		t.Fatalf("set-up: data folder %v, want 0777 (umask 0)", st.Mode().Perm())
	}

	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, flags{data: data, listen: "127.0.0.1:0", tls: "auto", mqttListen: "off"}, slog.New(slog.NewTextHandler(logs, nil)))
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the server did not stop")
		}
	}()
	logs.wait(t, `msg="serving the API" addr=(\S+)`)

	want := map[string]bool{sqliteFile: false, sqliteFile + "-wal": false, sqliteFile + "-shm": false,
		noticeKeyFile: false, adminTokenFile: false, "tls": false}
	err := filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(data, path)
		if _, ok := want[rel]; ok {
			want[rel] = true
		}
		switch {
		case d.IsDir() && info.Mode().Perm() != 0o700:
			t.Errorf("folder %s: mode %#o, want 0700", rel, info.Mode().Perm())
		case !d.IsDir() && info.Mode().Perm()&0o077 != 0:
			t.Errorf("file %s: mode %#o, open to other users", rel, info.Mode().Perm())
		case !d.IsDir() && rel != filepath.Join("old", "left-over") && info.Mode().Perm() != 0o600:
			t.Errorf("file %s: mode %#o, want 0600", rel, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for f, seen := range want {
		if !seen {
			t.Errorf("%s was not made: the test did not check it", f)
		}
	}
}

func TestDataFolderOfAnotherUserRefused(t *testing.T) {
	// As root, a folder given to nobody; as anyone else, the root folder.
	dir := "/"
	if os.Geteuid() == 0 {
		dir = filepath.Join(t.TempDir(), "theirs")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.Stat(dir)
	err := prepareDataDir(dir, slog.New(slog.DiscardHandler))
	if !errors.Is(err, errDataOwner) {
		t.Fatalf("prepareDataDir(%s) = %v, want errDataOwner", dir, err)
	}
	if after, _ := os.Stat(dir); after.Mode() != before.Mode() {
		t.Errorf("the refused folder's mode changed from %v to %v", before.Mode(), after.Mode())
	}
}
