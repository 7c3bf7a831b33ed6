package filekind

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestName names what Lstat finds of real files of each kind made here,
// and the device modes, which a test cannot make without root.
func TestName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tt := range []struct{ path, want string }{
		{file, "a regular file"},
		{dir, "a folder"},
		{link, "a symbolic link"},
		{fifo, "a named pipe (FIFO)"},
		{sock, "a socket"},
	} {
		fi, err := os.Lstat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := Name(fi.Mode()); got != tt.want {
			t.Errorf("Name(Lstat(%s)) = %q, want %q", filepath.Base(tt.path), got, tt.want)
		}
		if got := Name(fi.Mode().Type()); got != tt.want {
			t.Errorf("Name of the type bits of %s = %q, want %q", filepath.Base(tt.path), got, tt.want)
		}
	}
	for _, tt := range []struct {
		m    fs.FileMode
		want string
	}{
		{fs.ModeDevice | fs.ModeCharDevice, "a character device"},
		{fs.ModeDevice, "a block device"},
		{fs.ModeIrregular, "a file of unknown type"},
	} {
		if got := Name(tt.m); got != tt.want {
			t.Errorf("Name(%v) = %q, want %q", tt.m, got, tt.want)
		}
	}
}
