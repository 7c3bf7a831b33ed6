package integration

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
)

// TestCheckListsSharedAdvisoriesOnce: the AlmaLinux OSV files for 8, 9 and
// 10 each carry the advisories that span two releases (ALSA-2024:4568 and
// the other OpenJDK ones are in the 8 and 9 files alike). check over all
// three files, one of them named twice, used to list those advisories once
// per file that held them (11 of 302 entries twice on this root). Each
// must be listed once, and the whole list must be the one the AlmaLinux 8
// file alone gives, since the others only repeat it for this release.
func TestCheckListsSharedAdvisoriesOnce(t *testing.T) {
	img, err := rpmtest.AlmaLinux8OpenJDK()
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.MkdirTemp("", "rpmfleet-devroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := rpmtest.NewDevRoot(root, img.OSRelease, img.Packages); err != nil {
		t.Fatal(err)
	}
	osv := func(v string) string { return filepath.Join(fixtures(t), "almalinux-osv", "almalinux"+v+".jsonl.gz") }

	alone := parseCheck(t, runAgent(t, "check", "--root", root, "--json", "--advisories", osv("8")))
	all := parseCheck(t, runAgent(t, "check", "--root", root, "--json",
		"--advisories", osv("9"), "--advisories", osv("8"), "--advisories", osv("10"), "--advisories", osv("9")))

	ids := func(out checkOutput) []string {
		var l []string
		for _, a := range out.Advisories {
			l = append(l, a.ID)
		}
		return l
	}
	got := ids(all)
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s listed %d times", id, n)
		}
	}
	if !slices.Contains(got, "ALSA-2024:4568") {
		t.Errorf("ALSA-2024:4568 (OpenJDK, in the 8 and 9 files) not listed for java-17-openjdk-headless 1:17.0.1.0.12-2.el8_5")
	}
	if want := ids(alone); !slices.Equal(got, want) {
		t.Errorf("over all three files: %d advisories; the AlmaLinux 8 file alone: %d", len(got), len(want))
	}
}
