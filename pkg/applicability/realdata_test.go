package applicability

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/inventory"
)

// TestAlmaLinux8ModuleStreams checks the stream rule on the real AlmaLinux 8
// OSV database, where every module advisory names one stream (its summary says
// which, "nodejs:18 security update") and OSV carries no module data, so the
// version decides. Each device has one modular package; the advisories it is
// exposed to were checked by hand against the database
// (zcat almalinux8.jsonl.gz | grep) and are listed in full, with the reason.
// The modularity labels are of the real form; only name:stream matters.
func TestAlmaLinux8ModuleStreams(t *testing.T) {
	x := NewIndex(loadOSV(t, "almalinux8.jsonl.gz", "AlmaLinux:8"))
	tests := []struct {
		name string
		pkg  inventory.Package
		// want is every advisory the package is exposed to, sorted by id;
		// nil where only include is checked.
		want []string
		// include are advisories the package must be exposed to.
		include []string
		// notExposed are advisories that a stream-blind match would
		// report, each older-looking version-wise but of another stream.
		notExposed []string
	}{
		{
			// nodejs:18 advisories and their fixed nodejs: 2022:7821 18.9.1,
			// 2022:8833 18.12.1, 2023:1583 18.14.2-2, 2023:4035 18.14.2-3,
			// 2023:4536 18.16.1, 2023:5362 18.17.1, 2023:5869 18.18.2,
			// 2024:1510 18.19.1-1 (this very build: equal, fixed),
			// 2024:2780 18.20.2, 2024:6148 18.20.4, 2025:1582 18.20.6.
			// The 20, 22 and 24 streams (2023:7205 20.8.1, 2024:1687
			// 20.11.1, 2025:1611 22.13.1, 2026:2420 24.13.0, ...) are all
			// newer by version but are not stream 18.
			name: "nodejs:18 at 18.19.1 gets the 18.20.2, 18.20.4 and 18.20.6 fixes only",
			pkg:  inst("nodejs", "1:18.19.1-1.module_el8.9.0+3753+4de0891b", "aarch64", "nodejs:18:8090020240226101806:a7c0f3f3"),
			want: []string{"ALSA-2024:2780", "ALSA-2024:6148", "ALSA-2025:1582"},
			notExposed: []string{
				"ALSA-2024:1510",                                     // 18.19.1-1: equal
				"ALSA-2023:7205", "ALSA-2024:1687", "ALSA-2025:8514", // nodejs:20
				"ALSA-2025:1611", "ALSA-2026:2421", // nodejs:22
				"ALSA-2026:2420", // nodejs:24
			},
		},
		{
			// postgresql:13 advisories: 2021:5236 13.5-1, ALBA-2022:1832
			// 13.5-2, 2023:1576 13.10-1 (this build: equal), then 2023:4527
			// 13.11, 2023:7581 13.13, 2024:0975 13.14, 2024:6018 13.16,
			// 2024:10832 13.18, 2025:1736 13.20, 2025:15021 13.22,
			// 2026:0523 13.23-1, 2026:4024 13.23-2, 2026:28208 13.23-3.
			// postgresql:15 (2023:5269 15.3, 2023:7884 15.5, ...) and :16
			// are newer by version but another stream; :9.6, :10 and :12
			// are older anyway.
			name: "postgresql:13 at 13.10 gets the later 13.x fixes, none of 15 or 16",
			pkg:  inst("postgresql", "13.10-1.module_el8.7.0+3498+cb1ef3c6", "x86_64", "postgresql:13:8070020230306135609:c94f2a24"),
			want: []string{
				"ALSA-2023:4527", "ALSA-2023:7581", "ALSA-2024:0975", "ALSA-2024:10832",
				"ALSA-2024:6018", "ALSA-2025:15021", "ALSA-2025:1736", "ALSA-2026:0523",
				"ALSA-2026:28208", "ALSA-2026:4024",
			},
			notExposed: []string{
				"ALSA-2023:1576",                   // 13.10-1: equal
				"ALSA-2023:5269", "ALSA-2023:7884", // postgresql:15
				"ALSA-2024:10831", // postgresql:16
			},
		},
		{
			// postgresql:15 advisories: 2023:5269 15.3 (this build: equal),
			// 2023:7884 15.5, 2024:0973 15.6, 2024:6001 15.8, 2024:10830
			// 15.10, 2025:1739 15.12, 2025:15022 15.14, 2026:0524 15.15,
			// 2026:4059 15.17, 2026:26181 15.18. The postgresql:16 fixes
			// (2024:5927 16.4, ...) are newer by version but not stream 15.
			name: "postgresql:15 at 15.3 gets the later 15.x fixes, none of 16",
			pkg:  inst("postgresql", "15.3-1.module_el8.8.0+3610+f1fe5820", "x86_64", "postgresql:15:8080020230524105416:6c81f848"),
			want: []string{
				"ALSA-2023:7884", "ALSA-2024:0973", "ALSA-2024:10830", "ALSA-2024:6001",
				"ALSA-2025:15022", "ALSA-2025:1739", "ALSA-2026:0524", "ALSA-2026:26181",
				"ALSA-2026:4059",
			},
			notExposed: []string{"ALSA-2023:5269", "ALSA-2024:5927", "ALSA-2024:10831"},
		},
		{
			// php:7.4 advisories: 2021:4213 7.4.19-3, 2022:1935 7.4.19-2,
			// 2022:6158 7.4.19-4 and 2022:6542 7.4.19-4 (twice; this build:
			// equal), 2022:7628 7.4.30, 2023:2903 7.4.33-1, 2024:10952
			// 7.4.33-2, 2026:2470 7.4.33-3, 2026:34354 7.4.33-4, 2026:47750
			// 7.4.33-5. php:8.0 (ALEA-2022:1904 8.0.13, 2022:7624 8.0.20,
			// 2023:0848, 2023:5927) and php:8.2 are newer but another stream.
			name: "php:7.4 at 7.4.19-4 gets the later 7.4 fixes, none of 8.0 or 8.2",
			pkg:  inst("php", "7.4.19-4.module_el8.6.0+3238+624bf8b8", "x86_64", "php:7.4:8060020220825135617:b4937e53"),
			want: []string{
				"ALSA-2022:7628", "ALSA-2023:2903", "ALSA-2024:10952", "ALSA-2026:2470",
				"ALSA-2026:34354", "ALSA-2026:47750",
			},
			notExposed: []string{
				"ALSA-2022:6158", "ALSA-2022:6542", // 7.4.19-4: equal
				"ALEA-2022:1904", "ALSA-2022:7624", "ALSA-2023:5927", // php:8.0
				"ALSA-2024:10951", // php:8.2
			},
		},
		{
			// perl:5.24's one advisory is ALBA-2019:3337 (4:5.24.4-404, three
			// builds). Every other perl advisory is newer by version and of
			// another stream: ALBA-2021:1871 perl:5.30 5.30.1, ALEA-2022:1869
			// and ALSA-2024:3128 perl:5.32 5.32.1, and the non-modular
			// 5.26.3 builds of ALBA-2021:4459, ALBA-2022:2018, ALSA-2025:11805.
			name: "perl:5.24 at 5.24.4-403 gets the 5.24 fix, none of 5.26, 5.30 or 5.32",
			pkg:  inst("perl", "4:5.24.4-403.module_el8.1.0+6019+b22674e1", "x86_64", "perl:5.24:8010020190529084201:3dcf7e7b"),
			want: []string{"ALBA-2019:3337"},
			notExposed: []string{
				"ALBA-2021:1871", "ALEA-2022:1869", "ALSA-2024:3128",
				"ALBA-2021:4459", "ALSA-2025:11805",
			},
		},
		{
			// The perl:5.32 advisories after ALEA-2022:1869 (5.32.1-471,
			// this build): ALSA-2024:3128 -473, ALSA-2026:8096, 2026:30851
			// and 2026:48225 -474. The non-modular 5.26.3 fixes do not count.
			name: "perl:5.32 at 5.32.1-471 gets the later 5.32 fixes",
			pkg:  inst("perl", "4:5.32.1-471.module_el8.6.0+2766+8bf0b7ce", "x86_64", "perl:5.32:8060020220310074713:9fe1d287"),
			want: []string{"ALSA-2024:3128", "ALSA-2026:30851", "ALSA-2026:48225", "ALSA-2026:8096"},
		},
		{
			// The same nodejs 18.19.1 without a modularity label counts
			// every entry, so every later fix of any stream applies: this is
			// what the label buys. Spot-check one of each stream.
			name:    "nodejs 18.19.1 without a label is exposed to the 20, 22 and 24 fixes too",
			pkg:     inst("nodejs", "1:18.19.1-1.module_el8.9.0+3753+4de0891b", "aarch64", ""),
			include: []string{"ALSA-2024:2780", "ALSA-2024:1687", "ALSA-2025:1611", "ALSA-2026:2420"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(x.Match("AlmaLinux:8", []inventory.Package{tc.pkg}))
			slices.Sort(got)
			for _, id := range tc.include {
				if !slices.Contains(got, id) {
					t.Errorf("not exposed to %s; exposed to %q", id, got)
				}
			}
			if tc.want != nil && !slices.Equal(got, tc.want) {
				t.Errorf("exposed to\n %q\nwant\n %q", got, tc.want)
			}
			for _, id := range tc.notExposed {
				if slices.Contains(got, id) {
					t.Errorf("exposed to %s of another stream or already fixed", id)
				}
			}
		})
	}
}

// TestUBI9OpenSSL is the "done when" case of issue 2 at the matching step: the
// real RHEL 9.0 aarch64 image manifest (openssl-libs 1:3.0.1-23.el9_0) against
// the real AlmaLinux 9 OSV database is exposed to ALSA-2023:3722, fixed in
// 1:3.0.7-16.el9_2 (the database's only openssl-libs entry in that advisory).
func TestUBI9OpenSSL(t *testing.T) {
	pkgs := loadManifest(t, filepath.Join("testdata", "ubi9_ubi-aarch64-rpm-manifest.tsv"))
	if len(pkgs) != 179 {
		t.Fatalf("manifest has %d packages, the image has 179", len(pkgs))
	}
	fs := NewIndex(loadOSV(t, "almalinux9.jsonl.gz", "AlmaLinux:9")).Match("AlmaLinux:9", pkgs)
	lines := render(fs)
	const want = "ALSA-2023:3722 openssl-libs.aarch64 1:3.0.1-23.el9_0 < 1:3.0.7-16.el9_2"
	if !slices.Contains(lines, want) {
		t.Errorf("missing %q among %d exposures", want, len(lines))
	}
	// A 2022 image against four years of advisories: most of it is exposed,
	// and nothing is reported for a release that is not 9.
	if len(fs) < 100 {
		t.Errorf("only %d advisories apply to a RHEL 9.0 image", len(fs))
	}
	if got := NewIndex(loadOSV(t, "almalinux9.jsonl.gz", "AlmaLinux:9")).Match("AlmaLinux:8", pkgs); got != nil {
		t.Errorf("AlmaLinux:9 advisories applied to an AlmaLinux:8 device: %q", ids(got))
	}
}

// TestMatchAdvisoryAgreesOnRealData runs MatchAdvisory for every AlmaLinux 9
// advisory on the real RHEL 9 manifest plus modular nodejs and postgresql
// packages, and checks that it finds exactly what Match finds, package for
// package: the server's incremental path and its full evaluation cannot drift.
func TestMatchAdvisoryAgreesOnRealData(t *testing.T) {
	advs := loadOSV(t, "almalinux9.jsonl.gz", "AlmaLinux:9")
	pkgs := loadManifest(t, filepath.Join("testdata", "ubi9_ubi-aarch64-rpm-manifest.tsv"))
	pkgs = append(pkgs,
		inst("nodejs", "1:18.14.2-2.module_el9.2.0+22+35ff4ae3", "aarch64", "nodejs:18:9020020230306134011:rhel9"),
		inst("postgresql", "15.0-1.module_el9.2.0+1+3ca6cd6c", "aarch64", "postgresql:15:9020020230328091519:rhel9"),
	)
	full := map[string][]string{}
	for _, f := range NewIndex(advs).Match("AlmaLinux:9", pkgs) {
		full[f.Advisory.ID] = render([]Finding{f})
	}
	n := 0
	for i := range advs {
		f, ok := MatchAdvisory(&advs[i], "AlmaLinux:9", pkgs)
		want, inFull := full[advs[i].ID]
		if ok != inFull {
			t.Errorf("%s: MatchAdvisory says %v, Match says %v", advs[i].ID, ok, inFull)
			continue
		}
		if ok {
			n++
			if got := render([]Finding{f}); !slices.Equal(got, want) {
				t.Errorf("%s:\nMatchAdvisory %q\n        Match %q", advs[i].ID, got, want)
			}
		}
	}
	if n != len(full) {
		t.Errorf("MatchAdvisory found %d advisories, Match %d", n, len(full))
	}
	var node []string
	for id, lines := range full {
		for _, l := range lines {
			if strings.Contains(l, " nodejs.") {
				node = append(node, id)
			}
		}
	}
	if len(node) == 0 {
		t.Error("modular nodejs 18.14.2 is exposed to no AlmaLinux 9 advisory")
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGoldenUBI9 pins the whole answer for the real RHEL 9.0 aarch64 image
// against the real AlmaLinux 9 OSV database, one exposure per line, in report
// order, so that any change in what is matched or how it is ordered shows up
// in review. Rewrite with go test -run TestGoldenUBI9 -update after checking
// the difference is intended.
func TestGoldenUBI9(t *testing.T) {
	pkgs := loadManifest(t, filepath.Join("testdata", "ubi9_ubi-aarch64-rpm-manifest.tsv"))
	fs := NewIndex(loadOSV(t, "almalinux9.jsonl.gz", "AlmaLinux:9")).Match("AlmaLinux:9", pkgs)
	got := strings.Join(render(fs), "\n") + "\n"
	golden := filepath.Join("testdata", "ubi9-almalinux9.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			g, w := at(gl, i), at(wl, i)
			if g != w {
				t.Fatalf("%s:%d differs:\n got %q\nwant %q\n(%d lines, want %d)", golden, i+1, g, w, len(gl), len(wl))
			}
		}
	}
}

func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "<end>"
}

// TestUBI9AgreesWithRPM recomputes the UBI 9 answer independently: every
// (installed, fixed) version pair the AlmaLinux 9 advisories raise for the
// image is compared by the real rpm (its Lua rpm.vercmp, one process for
// all pairs), and a package is exposed when rpm says it is older than every
// fixed entry of its name (the image has no modular packages and OSV no
// arch, so every entry counts). Match must give exactly that set; this is
// what keeps the golden file honest.
func TestUBI9AgreesWithRPM(t *testing.T) {
	rpmBin, err := exec.LookPath("rpm")
	if err != nil {
		t.Fatalf("rpm not installed (run make deps): %v", err)
	}
	pkgs := loadManifest(t, filepath.Join("testdata", "ubi9_ubi-aarch64-rpm-manifest.tsv"))
	advs := loadOSV(t, "almalinux9.jsonl.gz", "AlmaLinux:9")
	byName := map[string][]inventory.Package{}
	for _, p := range pkgs {
		byName[p.Name] = append(byName[p.Name], p)
	}
	type pair struct{ a, b string }
	var pairs []pair
	seen := map[pair]int{}
	for _, a := range advs {
		for _, e := range a.Packages {
			for _, p := range byName[e.Name] {
				pr := pair{p.EVR.String(), e.EVR.String()}
				if _, ok := seen[pr]; !ok {
					seen[pr] = len(pairs)
					pairs = append(pairs, pr)
				}
			}
		}
	}
	var lua strings.Builder
	for _, p := range pairs {
		fmt.Fprintf(&lua, "print(rpm.vercmp(%q, %q)..' ')\n", p.a, p.b)
	}
	out, err := exec.Command(rpmBin, "--eval", "%{lua:"+lua.String()+"}").Output()
	if err != nil {
		t.Fatalf("rpm --eval: %v", err)
	}
	cmps := strings.Fields(string(out))
	if len(cmps) != len(pairs) {
		t.Fatalf("rpm answered %d comparisons for %d pairs", len(cmps), len(pairs))
	}
	var want []string
	for _, a := range advs {
		names := map[string]bool{}
		for _, e := range a.Packages {
			names[e.Name] = true
		}
		for name := range names {
			for _, p := range byName[name] {
				older := true
				for _, e := range a.Packages {
					if e.Name == name && cmps[seen[pair{p.EVR.String(), e.EVR.String()}]] != "-1" {
						older = false
					}
				}
				if older {
					want = append(want, a.ID+" "+p.Name+"."+p.Arch)
				}
			}
		}
	}
	var got []string
	for _, f := range NewIndex(advs).Match("AlmaLinux:9", pkgs) {
		for _, p := range f.Packages {
			got = append(got, f.Advisory.ID+" "+p.Installed.Name+"."+p.Installed.Arch)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Match and rpm disagree:\n got %d %q\nwant %d %q", len(got), got, len(want), want)
	}
	if len(want) == 0 {
		t.Error("rpm finds nothing to compare")
	}
}
