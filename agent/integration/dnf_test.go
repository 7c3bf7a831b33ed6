package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/osv"
)

// TestCheckAgreesWithDNF is the differential test of issue 2: the whole
// AlmaLinux 8 and 9 OSV databases, written out as updateinfo.xml into a
// repository made by createrepo_c and modifyrepo_c, checked on device roots
// built from the real RHEL 8 and 9 aarch64 manifests, must give exactly the
// advisories that dnf's own `updateinfo list` gives for the same root and
// repository. The check reads the same repository, so the repository path
// (repomd.xml, checksummed updateinfo) is under test too.
//
// OSV gives no arch; real updateinfo lists a package once per arch, so each
// fixed entry is written for aarch64 and noarch, the arches of these devices.
// The devices hold no modular packages, which is where dnf without module
// metadata and the right answer part ways; those are tested against
// hand-checked expectations in TestCheckModuleStreams.
func TestCheckAgreesWithDNF(t *testing.T) {
	for _, tc := range []struct {
		name, manifest, osRelease, osv, ecosystem, releasever string
	}{
		{"AlmaLinux 9", ubi9Manifest, alma9Release, alma9OSV, "AlmaLinux:9", "9"},
		{"AlmaLinux 8", ubi8Manifest, alma8Release, alma8OSV, "AlmaLinux:8", "8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, tool := range []string{"dnf", "createrepo_c", "modifyrepo_c"} {
				if _, err := exec.LookPath(tool); err != nil {
					t.Fatalf("%s is not installed; run make deps", tool)
				}
			}
			root := manifestRoot(t, tc.manifest, tc.osRelease)
			repo := updateinfoRepo(t, filepath.Join(fixtures(t), tc.osv), tc.ecosystem, []string{"aarch64", "noarch"})

			r := runAgent(t, "check", "--root", root, "--advisories", repo, "--json")
			if r.code != 0 && r.code != 100 {
				t.Fatalf("check: exit %d\n%s", r.code, r.stderr)
			}
			ours := map[string]bool{}
			for _, a := range parseCheck(t, r).Advisories {
				ours[a.ID] = true
			}
			theirs := dnfUpdateinfoList(t, root, repo, tc.releasever)
			if len(theirs) == 0 {
				t.Fatal("dnf listed no advisory: the comparison would prove nothing")
			}
			if onlyOurs, onlyDNF := diffSets(ours, theirs); len(onlyOurs)+len(onlyDNF) > 0 {
				t.Errorf("check and dnf disagree:\n  only check: %v\n  only dnf:   %v", onlyOurs, onlyDNF)
			}
			t.Logf("check and dnf agree on %d advisories", len(ours))
		})
	}
}

// updateinfoRepo writes the advisories of one ecosystem of an OSV database as
// updateinfo.xml, each fixed package once per arch, into an empty repository
// made by createrepo_c, added with modifyrepo_c as dnf's tooling does.
func updateinfoRepo(t *testing.T, osvPath, ecosystem string, arches []string) string {
	t.Helper()
	advs, err := osv.ParseFile(osvPath, osv.Options{Ecosystem: ecosystem})
	if err != nil {
		t.Fatal(err)
	}
	xml, err := rpmtest.UpdateinfoXML(advs, arches)
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	if err := rpmtest.NewRepo(repo, nil, xml); err != nil {
		t.Fatal(err)
	}
	return repo
}

// dnfUpdateinfoList runs dnf's `updateinfo list` (available advisories) on a
// device root with only the given repository, and returns the advisory ids.
func dnfUpdateinfoList(t *testing.T, root, repo, releasever string) map[string]bool {
	t.Helper()
	cache := t.TempDir()
	// Debian's rpm keeps its database at ~/.rpmdb, and dnf resolves that
	// inside the installroot; the device roots link ROOT/root/.rpmdb to
	// var/lib/rpm, so dnf must run with HOME=/root whatever HOME the test has.
	out := runEnv(t, []string{"HOME=/root"}, "dnf", "--installroot", root, "--releasever", releasever, "--forcearch", "aarch64",
		"--setopt=reposdir=/dev/null", "--setopt=cachedir="+cache, "--setopt=t.gpgcheck=0",
		"--repofrompath=t,file://"+repo, "--repo", "t", "--quiet", "updateinfo", "list")
	ids := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			ids[f[0]] = true
		}
	}
	return ids
}

// runEnv runs a command with extra environment variables and returns its
// standard output, failing t with its standard error.
func runEnv(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(append(os.Environ(), "LC_ALL=C.UTF-8"), env...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

func diffSets(a, b map[string]bool) (onlyA, onlyB []string) {
	for k := range a {
		if !b[k] {
			onlyA = append(onlyA, k)
		}
	}
	for k := range b {
		if !a[k] {
			onlyB = append(onlyB, k)
		}
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	return onlyA, onlyB
}
