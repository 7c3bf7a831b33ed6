package integration

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
)

// TestCheckModuleStreams runs check on an AlmaLinux 8 device whose modular
// packages carry real-form modularity labels in their rpm headers (written by
// rpmbuild from ModularityLabel: and installed by the real rpm), against the
// whole AlmaLinux 8 OSV database. dnf without module metadata gets these
// wrong, so the expectations were checked by hand against the database
// (zcat almalinux8.jsonl.gz | grep); pkg/applicability's tests give the
// advisory-by-advisory reasons. Here the point is that the label survives
// the trip through rpmbuild, rpm's database and the agent's rpmdb reader:
// without it, the 20, 22 and 24 stream fixes would be reported for nodejs 18.
func TestCheckModuleStreams(t *testing.T) {
	root := t.TempDir()
	err := rpmtest.NewDevRoot(root, readFixture(t, alma8Release), []rpmtest.Package{
		{Name: "nodejs", Epoch: "1", Version: "18.19.1", Release: "1.module_el8.9.0+3753+4de0891b", Arch: "aarch64", ModularityLabel: "nodejs:18:8090020240226101806:a7c0f3f3"},
		{Name: "postgresql", Version: "13.10", Release: "1.module_el8.7.0+3498+cb1ef3c6", Arch: "aarch64", ModularityLabel: "postgresql:13:8070020230306135609:c94f2a24"},
		{Name: "php", Version: "7.4.19", Release: "4.module_el8.6.0+3238+624bf8b8", Arch: "aarch64", ModularityLabel: "php:7.4:8060020220825135617:b4937e53"},
		{Name: "perl", Epoch: "4", Version: "5.24.4", Release: "403.module_el8.1.0+6019+b22674e1", Arch: "aarch64", ModularityLabel: "perl:5.24:8010020190529084201:3dcf7e7b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := runAgent(t, "check", "--root", root, "--advisories", filepath.Join(fixtures(t), alma8OSV), "--json")
	if r.code != 100 {
		t.Fatalf("exit %d, want 100\n%s", r.code, r.stderr)
	}
	got := map[string][]string{} // package -> advisories
	fixed := map[string]string{} // package/advisory -> fixed EVR
	for _, a := range parseCheck(t, r).Advisories {
		for _, p := range a.Packages {
			got[p.Name] = append(got[p.Name], a.ID)
			fixed[p.Name+"/"+a.ID] = p.Fixed
		}
	}
	for name, want := range map[string][]string{
		// Stream 18 fixes after 18.19.1-1: 18.20.2, 18.20.4, 18.20.6.
		"nodejs": {"ALSA-2024:2780", "ALSA-2024:6148", "ALSA-2025:1582"},
		// Stream 13 fixes after 13.10-1; none of the 15 or 16 streams.
		"postgresql": {"ALSA-2023:4527", "ALSA-2023:7581", "ALSA-2024:0975", "ALSA-2024:10832",
			"ALSA-2024:6018", "ALSA-2025:15021", "ALSA-2025:1736", "ALSA-2026:0523",
			"ALSA-2026:28208", "ALSA-2026:4024"},
		// Stream 7.4 fixes after 7.4.19-4; none of 8.0 or 8.2.
		"php": {"ALSA-2022:7628", "ALSA-2023:2903", "ALSA-2024:10952", "ALSA-2026:2470",
			"ALSA-2026:34354", "ALSA-2026:47750"},
		// perl:5.24's one fix; none of 5.26, 5.30 or 5.32.
		"perl": {"ALBA-2019:3337"},
	} {
		g := got[name]
		slices.Sort(g)
		slices.Sort(want)
		if !slices.Equal(g, want) {
			t.Errorf("%s exposed to\n  %q\nwant\n  %q", name, g, want)
		}
	}
	if f := fixed["nodejs/ALSA-2024:2780"]; !strings.HasPrefix(f, "1:18.20.2-") {
		t.Errorf("nodejs fixed by ALSA-2024:2780 in %s, want 1:18.20.2-...", f)
	}
}
