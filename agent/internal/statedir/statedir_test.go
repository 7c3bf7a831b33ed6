package statedir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestEnsure runs under umask 0, the case of issue 11: every state folder
// comes out 0700, whatever it was, or is refused.
func TestEnsure(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, tc := range []struct {
		name string
		// setup returns the folder to ensure.
		setup       func(t *testing.T, base string) string
		wantFrom    fs.FileMode
		wantChanged bool
		wantErr     error
		wantMsg     string
	}{
		{
			name:  "missing, with a missing parent",
			setup: func(t *testing.T, base string) string { return filepath.Join(base, "var", "lib", "rpmfleet") },
			// MkdirAll made it 0700.
			wantFrom: 0o700,
		},
		{
			name:        "existing 0777",
			setup:       func(t *testing.T, base string) string { return mkdir(t, base, 0o777) },
			wantFrom:    0o777,
			wantChanged: true,
		},
		{
			name:        "existing 0755",
			setup:       func(t *testing.T, base string) string { return mkdir(t, base, 0o755) },
			wantFrom:    0o755,
			wantChanged: true,
		},
		{
			name:        "existing 0700 with setgid",
			setup:       func(t *testing.T, base string) string { return mkdir(t, base, 0o700|fs.ModeSetgid) },
			wantFrom:    0o700,
			wantChanged: true,
		},
		{
			name:     "existing 0700",
			setup:    func(t *testing.T, base string) string { return mkdir(t, base, 0o700) },
			wantFrom: 0o700,
		},
		{
			name: "through a link",
			setup: func(t *testing.T, base string) string {
				target := mkdir(t, base, 0o777)
				link := filepath.Join(base, "link")
				if err := os.Symlink(target, link); err != nil {
					t.Fatal(err)
				}
				return link
			},
			wantFrom:    0o777,
			wantChanged: true,
		},
		{
			name: "owned by another user",
			setup: func(t *testing.T, base string) string {
				if os.Geteuid() != 0 {
					return "/" // root's, not this user's
				}
				d := mkdir(t, base, 0o777)
				if err := os.Chown(d, 65534, 65534); err != nil {
					t.Fatal(err)
				}
				return d
			},
			wantErr: ErrNotOwner,
		},
		{
			name: "a file",
			setup: func(t *testing.T, base string) string {
				p := filepath.Join(base, "state")
				if err := os.WriteFile(p, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantMsg: "not a directory",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.setup(t, t.TempDir())
			before, _ := os.Stat(dir)
			from, changed, err := Ensure(dir)
			switch {
			case tc.wantErr != nil || tc.wantMsg != "":
				if err == nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("Ensure: %v, want %v %q", err, tc.wantErr, tc.wantMsg)
				}
				if !strings.Contains(err.Error(), dir) && dir != "/" {
					t.Errorf("error %q does not name %s", err, dir)
				}
				if after, _ := os.Stat(dir); before != nil && after.Mode() != before.Mode() {
					t.Errorf("a refused folder's mode changed from %v to %v", before.Mode(), after.Mode())
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if from != tc.wantFrom || changed != tc.wantChanged {
				t.Errorf("Ensure = %#o, %v; want %#o, %v", from, changed, tc.wantFrom, tc.wantChanged)
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != fs.ModeDir|Mode {
				t.Errorf("mode after Ensure %v, want drwx------", fi.Mode())
			}
		})
	}
}

func mkdir(t *testing.T, base string, mode fs.FileMode) string {
	t.Helper()
	d := filepath.Join(base, "state")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	return d
}
