package integration

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestInventoryListsAsRpmQa: `rpmfleet-agent inventory` prints what
// `rpm -qa` prints (name-version-release.arch, no epoch), one package a
// line, on real rpm databases of three formats and on a device root the
// real rpm wrote. rpm -qa also lists the gpg-pubkey entries of imported
// keys, which are not packages; inventory leaves them out.
func TestInventoryListsAsRpmQa(t *testing.T) {
	cases := []struct {
		name string
		db   string // fixture, gzipped when it ends in .gz; "" for the devroot
		file string // its name in var/lib/rpm
	}{
		{"Amazon Linux 2023, sqlite", "rpmdb/al2023-sqlite/rpmdb.sqlite.gz", "rpmdb.sqlite"},
		{"CBL-Mariner 2, sqlite", "rpmdb/cbl-mariner2-sqlite/rpmdb.sqlite.gz", "rpmdb.sqlite"},
		{"UBI 8, Berkeley DB", "rpmdb/ubi8-libuuid-bdb/Packages", "Packages"},
		{"UBI 9 aarch64 image written by rpm", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if c.db == "" {
				root = manifestRoot(t, ubi9Manifest, alma9Release)
			} else {
				b := readFixture(t, c.db)
				if strings.HasSuffix(c.db, ".gz") {
					zr, err := gzip.NewReader(bytes.NewReader(b))
					if err != nil {
						t.Fatal(err)
					}
					if b, err = io.ReadAll(zr); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.MkdirAll(filepath.Join(root, "var/lib/rpm"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "var/lib/rpm", c.file), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// The agent first: rpm may add files to the folder it opens.
			r := runAgent(t, "inventory", "--root", root)
			if r.code != 0 {
				t.Fatalf("inventory: exit %d, stderr %s", r.code, r.stderr)
			}
			got := strings.Split(strings.TrimSpace(r.stdout), "\n")
			out, err := exec.Command("rpm", "-qa", "--root", root, "--dbpath", "/var/lib/rpm").Output()
			if err != nil {
				t.Fatalf("rpm -qa: %v", err)
			}
			var want []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if !strings.HasPrefix(l, "gpg-pubkey-") {
					want = append(want, l)
				}
			}
			slices.Sort(want)
			slices.Sort(got)
			if len(want) < 1 || !slices.Equal(got, want) {
				t.Errorf("inventory (%d lines) differs from rpm -qa (%d lines):\n%s\nrpm -qa:\n%s", len(got), len(want), strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
