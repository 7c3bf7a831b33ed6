package updateinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// run runs a command with HOME=/root: Debian's rpm keeps its database at
// ~/.rpmdb, and dnf resolves that inside the installroot, where the device
// root links root/.rpmdb to var/lib/rpm.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "HOME=/root")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestEncodeReadByDnf writes advisories with Encode into a repository made
// by createrepo_c and modifyrepo_c, and asks the real dnf 4 what it makes
// of them on a root where rpm installed hello-1.0-1.i386.
func TestEncodeReadByDnf(t *testing.T) {
	for _, tool := range []string{"rpm", "createrepo_c", "modifyrepo_c", "dnf"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run make deps", tool)
		}
	}
	tmp := t.TempDir()
	root, repo := filepath.Join(tmp, "root"), filepath.Join(tmp, "repo")
	for _, d := range []string{filepath.Join(root, "root"), repo} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-i", "--justdb", "--nodeps", "--ignorearch",
		filepath.Join(sharedFixtures(t), "rpm-packages/rpm-upstream-testdata/hello-1.0-1.i386.rpm"))
	// Debian's dnf looks for the rpm database in ROOT/root/.rpmdb.
	if err := os.Symlink("../var/lib/rpm", filepath.Join(root, "root", ".rpmdb")); err != nil {
		t.Fatal(err)
	}

	advs := []*advisory.Advisory{
		{
			ID: "RFSA-2026:0001", Type: advisory.Security, Severity: advisory.Important,
			Issued:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			Updated: time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC),
			Title:   `Important: hello <security> & "quoting" update`,
			CVEs:    []string{"CVE-2026-0001", "CVE-2026-0002"},
			References: []advisory.Reference{
				{Type: "cve", ID: "CVE-2026-0001", URL: "https://example.org/1"},
				{Type: "cve", ID: "CVE-2026-0002", URL: "https://example.org/2"},
			},
			RebootSuggested: true,
			Packages: []advisory.Package{{Name: "hello", EVR: rpmver.EVR{Version: "2.0", Release: "1"}, Arch: "i386", Filename: "hello-2.0-1.i386.rpm",
				SHA256: "4f0b3c4b5e9b4ec2dbcd2fd8e6a5dfb3c2d5b2c1a2e3f4a5b6c7d8e9f0a1b2c3"}},
		},
		{
			ID: "RFBA-2026:0002", Type: advisory.Bugfix,
			Packages: []advisory.Package{{Name: "hello", EVR: rpmver.EVR{Epoch: "0", Version: "0.9", Release: "1"}, Arch: "i386"}},
		},
		{
			// In a module stream that is not enabled on the device: dnf
			// must read the <module> element and leave the advisory out.
			ID: "RFSA-2026:0004", Type: advisory.Security, Severity: advisory.Critical,
			Packages: []advisory.Package{{Name: "hello", EVR: rpmver.EVR{Version: "3.0", Release: "1.module+el8"}, Arch: "i386",
				Module: &advisory.Module{Name: "hello", Stream: "3"}}},
		},
		{
			ID: "RFEA-2026:0003", Type: advisory.Enhancement, Severity: advisory.Low,
			Packages: []advisory.Package{{Name: "not-installed", EVR: rpmver.EVR{Version: "1"}, Arch: "noarch"}},
		},
	}
	ui := filepath.Join(tmp, "updateinfo.xml")
	f, err := os.Create(ui)
	if err != nil {
		t.Fatal(err)
	}
	if err := Encode(f, advs); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, "createrepo_c", "--quiet", "--no-database", repo)
	run(t, "modifyrepo_c", "--mdtype", "updateinfo", ui, filepath.Join(repo, "repodata"))

	dnf := func(args ...string) string {
		base := []string{"-q", "--installroot", root, "--releasever", "8", "--setopt=reposdir=/dev/null",
			"--setopt=cachedir=" + filepath.Join(tmp, "cache"), "--repofrompath", "r,file://" + repo, "--repo", "r"}
		return run(t, "dnf", append(base, args...)...)
	}
	// dnf lists an advisory when it fixes an installed package: the one
	// for the newer hello, not the older one nor the one for a package
	// that is not installed.
	list := strings.Fields(dnf("updateinfo", "list"))
	if want := []string{"RFSA-2026:0001", "Important/Sec.", "hello-2.0-1.i386"}; strings.Join(list, " ") != strings.Join(want, " ") {
		t.Errorf("dnf updateinfo list: %q, want %q", list, want)
	}
	all := dnf("updateinfo", "list", "--all")
	if !strings.Contains(all, "RFBA-2026:0002") || strings.Contains(all, "RFEA-2026:0003") {
		t.Errorf("dnf updateinfo list --all:\n%s", all)
	}
	info := dnf("updateinfo", "info", "RFSA-2026:0001")
	for _, want := range []string{
		"Update ID: RFSA-2026:0001", "Type: security", "Severity: Important", "Updated: 2026-02-03 04:05:06",
		"CVE-2026-0001", "CVE-2026-0002", `Important: hello <security> & "quoting" update`,
	} {
		if !strings.Contains(info, want) {
			t.Errorf("dnf updateinfo info lacks %q:\n%s", want, info)
		}
	}
}
