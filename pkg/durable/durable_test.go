package durable

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rpmfleet/rpmfleet/internal/selfexec"
)

// The helper processes of the crash and full-file tests: the test binary
// run again with DURABLE_HELPER set.
const helperEnv = "DURABLE_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "loop":
		// Rewrite the target forever, whole files of 'a' then of 'b',
		// until killed.
		target := os.Getenv("DURABLE_TARGET")
		for i := 0; ; i++ {
			if err := WriteFile(target, bytes.Repeat([]byte{"ab"[i%2]}, crashSize), 0o600); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			if i == 0 {
				fmt.Println("writing")
			}
		}
	case "fsize":
		// A file size limit of 4 KiB: the kernel refuses the write past
		// it with EFBIG, as a full disk refuses one with ENOSPC (Go
		// ignores SIGXFSZ, so the write returns the error).
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 4096, Max: 4096}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		err := WriteFile(os.Getenv("DURABLE_TARGET"), bytes.Repeat([]byte("n"), 64<<10), 0o600)
		fmt.Print(err)
		os.Exit(0)
	}
	os.Exit(2)
}

// crashSize is the size of each version the crash test's child writes.
const crashSize = 1 << 20

// temps lists the temporary files left in dir.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if IsTemp(de.Name()) {
			out = append(out, de.Name())
		}
	}
	return out
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWriteFileMode: the file gets exactly the mode asked for, whatever the
// umask (0, the case of issue 11, or a strict one), on creation and on
// replacing a file of another mode.
func TestWriteFileMode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		umask int
		perm  fs.FileMode
	}{
		{"umask 0, 0600", 0, 0o600},
		{"umask 0, 0644", 0, 0o644},
		{"umask 077, 0640", 0o077, 0o640},
		{"umask 022, 0400", 0o022, 0o400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := syscall.Umask(tc.umask)
			defer syscall.Umask(old)
			dir := t.TempDir()
			p := filepath.Join(dir, "state.json")
			for i, content := range []string{"first", "second"} {
				if err := WriteFile(p, []byte(content), tc.perm); err != nil {
					t.Fatal(err)
				}
				fi, err := os.Lstat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode() != tc.perm {
					t.Errorf("write %d: mode %v, want %v", i+1, fi.Mode(), tc.perm)
				}
				if got := read(t, p); got != content {
					t.Errorf("write %d: content %q, want %q", i+1, got, content)
				}
				// The next write replaces a file of a looser mode.
				os.Chmod(p, 0o666)
			}
			if left := temps(t, dir); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// TestWriteFileErrors: each failure is returned, names the file, leaves
// the old content and no temporary file.
func TestWriteFileErrors(t *testing.T) {
	errFill := errors.New("the encoder failed")
	for _, tc := range []struct {
		name string
		// setup prepares dir and returns the path to write.
		setup func(t *testing.T, dir string) string
		fill  func(io.Writer) error
		// want is checked with errors.Is, or is a substring of the error.
		want    error
		wantMsg string
	}{
		{
			name: "target is a folder",
			setup: func(t *testing.T, dir string) string {
				mkdir(t, filepath.Join(dir, "cycles"))
				return filepath.Join(dir, "cycles")
			},
			want: unix.EISDIR,
		},
		{
			name:  "folder missing",
			setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "gone", "state.json") },
			want:  fs.ErrNotExist,
		},
		{
			// /proc/self is a folder in which nobody, root included,
			// may create a file.
			name:    "folder takes no new file",
			setup:   func(t *testing.T, dir string) string { return "/proc/self/rpmfleet-state.json" },
			wantMsg: "create temporary file",
		},
		{
			name:  "fill fails",
			setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "state.json") },
			fill:  func(w io.Writer) error { w.Write([]byte("half")); return errFill },
			want:  errFill,
		},
		{
			name:  "path ends in a slash",
			setup: func(t *testing.T, dir string) string { return dir + "/" },
			want:  ErrBadName,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			p := tc.setup(t, dir)
			fill := tc.fill
			if fill == nil {
				fill = func(w io.Writer) error { _, err := w.Write([]byte("new")); return err }
			}
			err := Write(p, 0o600, fill)
			switch {
			case err == nil:
				t.Fatal("no error")
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("error %q, want one wrapping %q", err, tc.want)
			case tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg):
				t.Errorf("error %q, want one saying %q", err, tc.wantMsg)
			}
			if tc.want != ErrBadName && !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
			if fi, serr := os.Lstat(filepath.Join(dir, "state.json")); serr == nil && fi.Mode().IsRegular() {
				if got := read(t, filepath.Join(dir, "state.json")); got != "old" {
					t.Errorf("after the failure the file holds %q, want the old content", got)
				}
			}
			if left := temps(t, dir); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
}

// TestWriteFileTooLarge: a write the kernel refuses half way (a file size
// limit in a child process: EFBIG, as a full disk gives ENOSPC) is
// returned, and the old file stays whole with no temporary file beside it.
func TestWriteFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, err := selfexec.Command("-test.run=^$")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), helperEnv+"=fsize", "DURABLE_TARGET="+p)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "file too large") || !strings.Contains(string(out), p) {
		t.Errorf("the helper's write returned %q, want EFBIG naming %s", out, p)
	}
	if got := read(t, p); got != "old" {
		t.Errorf("after the refused write the file holds %d bytes, want the old content", len(got))
	}
	if left := temps(t, dir); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestWriteFileKilled: a process rewriting a file is killed with SIGKILL
// at unplanned moments; every time, the file holds one whole version,
// never a mix or a short file. (A power cut, which also drops what the page
// cache held, cannot be made here; the fsyncs are what covers it.)
func TestWriteFileKilled(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for i := range 5 {
		cmd, err := selfexec.Command("-test.run=^$")
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), helperEnv+"=loop", "DURABLE_TARGET="+p)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		io.ReadAtLeast(stdout, buf, 1) // the first version is in place
		time.Sleep(time.Duration(5+i*7) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != crashSize || (!bytes.Equal(b, bytes.Repeat([]byte{'a'}, crashSize)) && !bytes.Equal(b, bytes.Repeat([]byte{'b'}, crashSize))) {
			t.Fatalf("kill %d: the file holds %d bytes starting %q, not one whole version", i+1, len(b), b[:min(len(b), 8)])
		}
	}
	// What a kill leaves is only ever a temporary file, which IsTemp
	// names for its owner to remove.
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if de.Name() != "state.json" && !IsTemp(de.Name()) {
			t.Errorf("a kill left %s, which IsTemp does not recognize", de.Name())
		}
	}
}

// TestWriteFileLinks: a link planted at the temporary name about to be
// used, or at the target's name, is never written through: the file it
// points at stays as it was.
func TestWriteFileLinks(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(outside, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("at the temporary name", func(t *testing.T) {
		dir := t.TempDir()
		names := []string{"guess", "other"}
		old := tempSuffix
		tempSuffix = func() string { s := names[0]; names = names[1:]; return s }
		defer func() { tempSuffix = old }()
		planted := filepath.Join(dir, ".tmp-state.json-guess")
		if err := os.Symlink(outside, planted); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(filepath.Join(dir, "state.json"), []byte("new"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := read(t, outside); got != "root:secret\n" {
			t.Errorf("the file behind the planted link now holds %q", got)
		}
		if got := read(t, filepath.Join(dir, "state.json")); got != "new" {
			t.Errorf("state.json holds %q", got)
		}
		if fi, err := os.Lstat(planted); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("the planted link was touched: %v, %v", fi, err)
		}
	})
	t.Run("at the target", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "state.json")
		if err := os.Symlink(outside, p); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(p, []byte("new"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := read(t, outside); got != "root:secret\n" {
			t.Errorf("the file behind the link now holds %q", got)
		}
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() || read(t, p) != "new" {
			t.Errorf("state.json is %v (%v), want a regular file holding the new content", fi, err)
		}
	})
}

// TestWriteFileIn: the file lands in the folder that was opened, even when
// its path was since turned into a link to another folder.
func TestWriteFileIn(t *testing.T) {
	base := t.TempDir()
	spool, elsewhere := filepath.Join(base, "failed"), filepath.Join(base, "etc")
	mkdir(t, spool)
	mkdir(t, elsewhere)
	d, err := os.Open(spool)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	moved := filepath.Join(base, "failed.moved")
	if err := os.Rename(spool, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, spool); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileIn(d, "site.reason", []byte("refused\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(moved, "site.reason")); got != "refused\n" {
		t.Errorf("the reason in the opened folder holds %q", got)
	}
	if des, _ := os.ReadDir(elsewhere); len(des) != 0 {
		t.Errorf("the folder the path now leads to got %v", des)
	}
	for _, name := range []string{"", ".", "..", "../x", "a/b"} {
		if err := WriteFileIn(d, name, nil, 0o600); !errors.Is(err, ErrBadName) {
			t.Errorf("WriteFileIn(%q): %v, want ErrBadName", name, err)
		}
	}
}
