package rpmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNewDevRootUBI9 builds a device root from the real RHEL 9.0 aarch64
// manifest and asks the real rpm what is installed: every one of the 179
// packages, with its epoch, must be there and nothing else.
func TestNewDevRootUBI9(t *testing.T) {
	needTools(t, "rpmbuild", "rpm")
	pkgs, err := ReadManifest("testdata/ubi9_ubi-aarch64-rpm-manifest.tsv")
	if err != nil {
		t.Fatal(err)
	}
	osRelease := []byte("NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nVERSION_ID=\"9.0\"\n")
	root := t.TempDir()
	start := time.Now()
	if err := NewDevRoot(root, osRelease, pkgs); err != nil {
		t.Fatal(err)
	}
	t.Logf("NewDevRoot of %d packages: %v", len(pkgs), time.Since(start))

	var want []string
	for _, p := range pkgs {
		epoch := p.Epoch
		if epoch == "" {
			epoch = "(none)"
		}
		want = append(want, p.Name+"|"+epoch+"|"+p.Version+"|"+p.Release+"|"+p.Arch)
	}
	slices.Sort(want)
	for _, dbflag := range []string{"--dbpath=" + DBPath, ""} {
		t.Run("rpm -qa "+dbflag, func(t *testing.T) {
			// With no --dbpath, Debian's rpm finds the database through
			// the ROOT/root/.rpmdb link (its default is ~/.rpmdb, so root's
			// HOME); EL's rpm looks in /var/lib/rpm.
			args := []string{"--root", root, "-qa", "--qf", "%{NAME}|%{EPOCH}|%{VERSION}|%{RELEASE}|%{ARCH}\n"}
			if dbflag != "" {
				args = append(args, dbflag)
			}
			cmd := exec.Command("rpm", args...)
			cmd.Env = append(os.Environ(), "HOME=/root")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("rpm %v: %v", args, err)
			}
			got := strings.Split(strings.TrimSpace(string(out)), "\n")
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("rpm -qa lists %d packages, want %d; first difference: %s", len(got), len(want), firstDiff(got, want))
			}
		})
	}
	b, err := os.ReadFile(filepath.Join(root, "etc", "os-release"))
	if err != nil || string(b) != string(osRelease) {
		t.Errorf("etc/os-release = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, DBPath, "rpmdb.sqlite")); err != nil {
		t.Errorf("no sqlite rpmdb: %v", err)
	}
}

// TestNewDevRootTwice shows that installing a package already in the root
// fails with rpm's own message, rather than being silently skipped.
func TestNewDevRootTwice(t *testing.T) {
	needTools(t, "rpmbuild", "rpm")
	root := t.TempDir()
	p := []Package{{Name: "bash", Version: "5.1.8", Release: "4.el9", Arch: "aarch64"}}
	if err := NewDevRoot(root, nil, p); err != nil {
		t.Fatal(err)
	}
	err := NewDevRoot(root, nil, p)
	if err == nil || !strings.Contains(err.Error(), "already installed") {
		t.Errorf("second install: err = %v, want rpm's already installed", err)
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] + " vs " + b[i]
		}
	}
	if len(a) > len(b) {
		return "extra " + a[len(b)]
	}
	if len(b) > len(a) {
		return "missing " + b[len(a)]
	}
	return "none"
}
