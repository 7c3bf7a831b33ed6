package cli

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/applicability"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// TestCheckColumnsAligned: type, severity and title start in the same
// column on every advisory line, and installed versions in the same column
// on every package line, whatever the widths (the tabwriter layout let a
// "CVEs:" line break the severity column, and package names widen the type
// column). A zero epoch is not shown, as rpm and dnf show none.
func TestCheckColumnsAligned(t *testing.T) {
	evr := func(s string) rpmver.EVR {
		e, err := rpmver.ParseEVR(s)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	fix := func(name, arch, installed, fixed string) applicability.Fix {
		return applicability.Fix{
			Installed: inventory.Package{Name: name, Arch: arch, EVR: evr(installed)},
			Fixed:     advisory.Package{Name: name, Arch: arch, EVR: evr(fixed)},
		}
	}
	findings := []applicability.Finding{
		{Advisory: &advisory.Advisory{ID: "ALSA-2022:4940", Type: advisory.Security, Severity: advisory.Important, Title: "Important: xz security update",
			CVEs: []string{"CVE-2022-1271"}}, Packages: []applicability.Fix{fix("xz-libs", "aarch64", "0:5.2.5-7.el9", "0:5.2.5-8.el9_0")}},
		{Advisory: &advisory.Advisory{ID: "ALBA-2024:10000", Type: advisory.Bugfix, Title: "ümlaut bug fix",
			CVEs: []string{"CVE-1", "CVE-2", "CVE-3", "CVE-4", "CVE-5", "CVE-6", "CVE-7"}},
			Packages: []applicability.Fix{fix("python3-setuptools-wheel", "noarch", "53.0.0-10.el9", "53.0.0-12.el9"), fix("a", "x86_64", "1:1-1", "1:1-2")}},
		{Advisory: &advisory.Advisory{ID: "X-1", Type: advisory.Enhancement, Severity: advisory.Moderate, Title: "short\x1b[2J"},
			Packages: []applicability.Fix{fix("vim-minimal", "aarch64", "2:8.2-15", "2:8.2-16")}},
	}
	var out bytes.Buffer
	if err := writeCheckText(&out, findings, "AlmaLinux:9", 100, 3); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Logf("\n%s", text)
	// col is the rune column of cell in line, looked for after byte from.
	col := func(line, cell string, from int) (int, int) {
		i := strings.Index(line[from:], " "+cell)
		if i < 0 {
			t.Fatalf("no %q in %q", cell, line)
		}
		i += from + 1
		return utf8.RuneCountInString(line[:i]), i + len(cell)
	}
	lines := strings.Split(text, "\n")
	heads := map[string][3]string{
		"ALSA-2022:4940":  {"security", "Important", "Important: xz"},
		"ALBA-2024:10000": {"bugfix", "-", "ümlaut"},
		"X-1 ":            {"enhancement", "Moderate", "short"},
	}
	var want [3]int
	first := true
	versions := -1
	for _, l := range lines {
		for id, cells := range heads {
			if !strings.HasPrefix(l, id) {
				continue
			}
			var got [3]int
			from := len(id)
			for i, c := range cells {
				got[i], from = col(l, c, from)
			}
			if first {
				want, first = got, false
			} else if got != want {
				t.Errorf("line %q: columns at %v, want %v", l, got, want)
			}
		}
		if i := strings.Index(l, " -> "); i >= 0 {
			v := strings.LastIndex(l[:i], " ") + 1
			if versions < 0 {
				versions = v
			} else if v != versions {
				t.Errorf("line %q: installed version at %d, want %d", l, v, versions)
			}
		}
	}
	for _, s := range []string{"5.2.5-7.el9 -> 5.2.5-8.el9_0", "1:1-1 -> 1:1-2", "CVEs: CVE-1 CVE-2 CVE-3 CVE-4 CVE-5 CVE-6\n", "CVE-7\n", `short\x1b[2J`} {
		if !strings.Contains(text, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	if strings.Contains(text, "0:5.2.5") || strings.Contains(text, "\x1b") {
		t.Errorf("output shows a 0: epoch or a raw escape:\n%s", text)
	}
}
