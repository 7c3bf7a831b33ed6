package applicability

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

const el9 = "AlmaLinux:9"

func inst(name, evr, arch, label string) inventory.Package {
	return inventory.Package{Name: name, EVR: rpmver.MustParseEVR(evr), Arch: arch, ModularityLabel: label}
}

func fixed(name, evr, arch string) advisory.Package {
	return advisory.Package{Name: name, EVR: rpmver.MustParseEVR(evr), Arch: arch}
}

func modFixed(name, evr, module, stream string) advisory.Package {
	p := fixed(name, evr, "")
	p.Module = &advisory.Module{Name: module, Stream: stream}
	return p
}

func adv(id, ecosystem string, pkgs ...advisory.Package) advisory.Advisory {
	return advisory.Advisory{ID: id, Ecosystem: ecosystem, Type: advisory.Security, Packages: pkgs}
}

// TestMatchRules walks the matching rules of issue 2 one at a time, each case
// a device (ecosystem and installed packages), the advisories it is checked
// against, and the exposures expected, written as render does.
func TestMatchRules(t *testing.T) {
	const node18 = "nodejs:18:8090020240226101806:a7c0f3f3"
	tests := []struct {
		name       string
		ecosystem  string
		advisories []advisory.Advisory
		installed  []inventory.Package
		want       []string
	}{
		// Arch.
		{
			name:       "same arch is exposed",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("openssl-libs", "1:3.0.7-16.el9_2", "aarch64"))},
			installed:  []inventory.Package{inst("openssl-libs", "1:3.0.1-23.el9_0", "aarch64", "")},
			want:       []string{"A-1 openssl-libs.aarch64 1:3.0.1-23.el9_0 < 1:3.0.7-16.el9_2"},
		},
		{
			name:       "i686 fix does not apply to x86_64",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("glibc", "2.34-60.el9", "i686"))},
			installed:  []inventory.Package{inst("glibc", "2.34-28.el9", "x86_64", "")},
		},
		{
			name:       "x86_64 fix does not apply to i686",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("glibc", "2.34-60.el9", "x86_64"))},
			installed:  []inventory.Package{inst("glibc", "2.34-28.el9", "i686", "")},
		},
		{
			name:       "source rpm entry does not apply to a binary package",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("glibc", "2.34-60.el9", "src"))},
			installed:  []inventory.Package{inst("glibc", "2.34-28.el9", "x86_64", "")},
		},
		{
			name:       "noarch installed, arch-specific fix",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("tzdata", "2023c-1.el9", "x86_64"))},
			installed:  []inventory.Package{inst("tzdata", "2022a-1.el9_0", "noarch", "")},
			want:       []string{"A-1 tzdata.noarch 0:2022a-1.el9_0 < 0:2023c-1.el9"},
		},
		{
			name:       "arch-specific installed, noarch fix",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("python3-pip", "21.2.3-7.el9", "noarch"))},
			installed:  []inventory.Package{inst("python3-pip", "21.2.3-6.el9", "aarch64", "")},
			want:       []string{"A-1 python3-pip.aarch64 0:21.2.3-6.el9 < 0:21.2.3-7.el9"},
		},
		{
			name:       "advisory without arch applies to every arch, reported per arch",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("glibc", "2.34-60.el9", ""))},
			installed: []inventory.Package{
				inst("glibc", "2.34-28.el9", "x86_64", ""),
				inst("glibc", "2.34-28.el9", "i686", ""),
			},
			want: []string{
				"A-1 glibc.i686 0:2.34-28.el9 < 0:2.34-60.el9",
				"A-1 glibc.x86_64 0:2.34-28.el9 < 0:2.34-60.el9",
			},
		},
		{
			name:      "only the entry of the package's own arch counts",
			ecosystem: el9,
			advisories: []advisory.Advisory{adv("A-1", el9,
				fixed("glibc", "2.34-60.el9", "i686"),
				fixed("glibc", "2.34-40.el9", "x86_64"))},
			installed: []inventory.Package{inst("glibc", "2.34-50.el9", "x86_64", "")},
		},

		// Ecosystem.
		{
			name:       "advisory for another release does not apply",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", "AlmaLinux:8", fixed("openssl-libs", "1:1.1.1k-9.el8_7", ""))},
			installed:  []inventory.Package{inst("openssl-libs", "1:1.1.1k-7.el8_6", "aarch64", "")},
		},
		{
			name:       "advisory that does not name its release applies (device's own updateinfo)",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", "", fixed("openssl-libs", "1:3.0.7-16.el9_2", "aarch64"))},
			installed:  []inventory.Package{inst("openssl-libs", "1:3.0.1-23.el9_0", "aarch64", "")},
			want:       []string{"A-1 openssl-libs.aarch64 1:3.0.1-23.el9_0 < 1:3.0.7-16.el9_2"},
		},

		// Versions.
		{
			name:       "epoch beats version: 1:3.0.7 is newer than 3.0.9",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("openssl-libs", "1:3.0.7-16.el9_2", ""))},
			installed:  []inventory.Package{inst("openssl-libs", "3.0.9-1.el9", "aarch64", "")},
			want:       []string{"A-1 openssl-libs.aarch64 0:3.0.9-1.el9 < 1:3.0.7-16.el9_2"},
		},
		{
			name:       "epoch beats version: installed 1:3.0.1 is newer than fix 3.0.7",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("openssl-libs", "3.0.7-16.el9_2", ""))},
			installed:  []inventory.Package{inst("openssl-libs", "1:3.0.1-23.el9_0", "aarch64", "")},
		},
		{
			name:       "equal to the fix means the fix is in",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("openssl-libs", "1:3.0.7-16.el9_2", ""))},
			installed:  []inventory.Package{inst("openssl-libs", "1:3.0.7-16.el9_2", "aarch64", "")},
		},
		{
			name:       "newer than the fix means the fix is in",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("openssl-libs", "1:3.0.7-16.el9_2", ""))},
			installed:  []inventory.Package{inst("openssl-libs", "1:3.0.7-18.el9_2", "aarch64", "")},
		},
		{
			name:       "older release of the same version is exposed",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("openssl-libs", "1:3.0.7-16.el9_2", ""))},
			installed:  []inventory.Package{inst("openssl-libs", "1:3.0.7-6.el9_2", "aarch64", "")},
			want:       []string{"A-1 openssl-libs.aarch64 1:3.0.7-6.el9_2 < 1:3.0.7-16.el9_2"},
		},
		{
			name:       "a name the advisory does not fix is not exposed",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("openssl", "1:3.0.7-16.el9_2", ""))},
			installed:  []inventory.Package{inst("openssl-libs", "1:3.0.1-23.el9_0", "aarch64", "")},
		},

		// Non-modular packages count every entry.
		{
			name:       "non-modular rebase: firefox 102 is exposed to a fix in 115",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("firefox", "115.3.1-1.el9_2", ""))},
			installed:  []inventory.Package{inst("firefox", "102.15.0-1.el9_2", "aarch64", "")},
			want:       []string{"A-1 firefox.aarch64 0:102.15.0-1.el9_2 < 0:115.3.1-1.el9_2"},
		},
		{
			name:       "non-modular: firefox 115 newer than the fix is not exposed",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("firefox", "115.3.1-1.el9_2", ""))},
			installed:  []inventory.Package{inst("firefox", "115.4.0-1.el9_2", "aarch64", "")},
		},
		{
			name:      "non-modular: newer than one of two entries means the fix is in",
			ecosystem: el9,
			advisories: []advisory.Advisory{adv("A-1", el9,
				fixed("nodejs", "1:20.11.1-1.module_el9.3.0+95+a8c1c2a1", ""),
				fixed("nodejs", "1:18.19.1-1.module_el9.3.0+94+b3d0d2c2", ""))},
			installed: []inventory.Package{inst("nodejs", "1:18.20.0-1.el9", "x86_64", "")},
		},

		// Modular packages count only their own stream.
		{
			name:      "nodejs:18 at 18.19.1 is exposed to the 18-stream fixes, Fixed is the lowest",
			ecosystem: el9,
			advisories: []advisory.Advisory{adv("A-1", el9,
				fixed("nodejs", "1:22.13.1-1.module_el9.5.0+3+a", ""),
				fixed("nodejs", "1:18.20.6-1.module_el9.5.0+1+b", ""),
				fixed("nodejs", "1:18.20.2-1.module_el9.4.0+1+c", ""),
				fixed("nodejs", "1:20.18.2-1.module_el9.5.0+2+d", ""),
				fixed("nodejs", "1:18.20.4-1.module_el9.4.0+2+e", ""))},
			installed: []inventory.Package{inst("nodejs", "1:18.19.1-1.module_el9.3.0+1+f", "x86_64", node18)},
			want:      []string{"A-1 nodejs.x86_64 1:18.19.1-1.module_el9.3.0+1+f < 1:18.20.2-1.module_el9.4.0+1+c"},
		},
		{
			name:      "nodejs:18 is never exposed to an advisory fixing only 20 and 22",
			ecosystem: el9,
			advisories: []advisory.Advisory{adv("A-1", el9,
				fixed("nodejs", "1:20.18.2-1.module_el9.5.0+2+d", ""),
				fixed("nodejs", "1:22.13.1-1.module_el9.5.0+3+a", ""))},
			installed: []inventory.Package{inst("nodejs", "1:18.19.1-1.module_el9.3.0+1+f", "x86_64", node18)},
		},
		{
			name:      "nodejs:18 newer than the 18-stream fix is not exposed whatever 20 and 22 say",
			ecosystem: el9,
			advisories: []advisory.Advisory{adv("A-1", el9,
				fixed("nodejs", "1:18.20.2-1.module_el9.4.0+1+c", ""),
				fixed("nodejs", "1:20.18.2-1.module_el9.5.0+2+d", ""),
				fixed("nodejs", "1:22.13.1-1.module_el9.5.0+3+a", ""))},
			installed: []inventory.Package{inst("nodejs", "1:18.20.4-1.module_el9.4.0+2+e", "x86_64", node18)},
		},
		{
			name:      "stream is matched up to a dot, not as a string prefix",
			ecosystem: el9,
			advisories: []advisory.Advisory{adv("A-1", el9,
				fixed("nodejs", "1:180.1-1", ""),
				fixed("nodejs", "1:1.8-1", ""),
				fixed("nodejs", "1:18-2", ""))},
			installed: []inventory.Package{inst("nodejs", "1:18-1", "x86_64", node18)},
			want:      []string{"A-1 nodejs.x86_64 1:18-1 < 1:18-2"},
		},
		{
			name:      "module data decides over the version: npm 10.x counts for nodejs:18",
			ecosystem: el9,
			advisories: []advisory.Advisory{adv("A-1", "",
				modFixed("npm", "1:10.5.0-1.18.20.2.1.module_el9.4.0+1+c", "nodejs", "18"),
				modFixed("npm", "1:10.5.0-1.20.12.2.2.module_el9.4.0+2+d", "nodejs", "20"))},
			installed: []inventory.Package{inst("npm", "1:10.2.4-1.18.19.1.1.module_el9.3.0+1+f", "x86_64", node18)},
			want:      []string{"A-1 npm.x86_64 1:10.2.4-1.18.19.1.1.module_el9.3.0+1+f < 1:10.5.0-1.18.20.2.1.module_el9.4.0+1+c"},
		},
		{
			name:      "module data decides over the version: an 18.x build labelled nodejs:20 does not count",
			ecosystem: el9,
			advisories: []advisory.Advisory{adv("A-1", "",
				modFixed("nodejs", "1:18.20.2-1.module_el9.4.0+1+c", "nodejs", "20"))},
			installed: []inventory.Package{inst("nodejs", "1:18.19.1-1.module_el9.3.0+1+f", "x86_64", node18)},
		},
		{
			name:      "module data: an entry without module data does not count for a modular package",
			ecosystem: el9,
			advisories: []advisory.Advisory{adv("A-1", "",
				fixed("nodejs", "1:18.20.2-1.el9", ""),
				modFixed("nodejs", "1:20.12.2-1.module_el9.4.0+1+c", "nodejs", "20"))},
			installed: []inventory.Package{inst("nodejs", "1:18.19.1-1.module_el9.3.0+1+f", "x86_64", node18)},
		},
		{
			name:      "module data: same stream of another module does not count",
			ecosystem: el9,
			advisories: []advisory.Advisory{adv("A-1", "",
				modFixed("nodejs", "1:18.20.2-1.module_el9.4.0+1+c", "nodejs-alt", "18"))},
			installed: []inventory.Package{inst("nodejs", "1:18.19.1-1.module_el9.3.0+1+f", "x86_64", node18)},
		},
		{
			name:       "a label without a stream is no label: every entry counts",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("nodejs", "1:20.11.1-1.module_el9.3.0+95+a8c1c2a1", ""))},
			installed:  []inventory.Package{inst("nodejs", "1:18.19.1-1.module_el9.3.0+1+f", "x86_64", "nodejs")},
			want:       []string{"A-1 nodejs.x86_64 1:18.19.1-1.module_el9.3.0+1+f < 1:20.11.1-1.module_el9.3.0+95+a8c1c2a1"},
		},
		{
			name:       "device of unknown release gets only advisories that name no release",
			ecosystem:  "",
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("bash", "5.1.8-6.el9", "")), adv("A-2", "", fixed("bash", "5.1.8-6.el9", ""))},
			installed:  []inventory.Package{inst("bash", "5.1.8-4.el9", "aarch64", "")},
			want:       []string{"A-2 bash.aarch64 0:5.1.8-4.el9 < 0:5.1.8-6.el9"},
		},
		{
			name:      "module data does not narrow a non-modular package",
			ecosystem: el9,
			advisories: []advisory.Advisory{adv("A-1", "",
				modFixed("nodejs", "1:18.20.2-1.module_el9.4.0+1+c", "nodejs", "18"))},
			installed: []inventory.Package{inst("nodejs", "1:16.20.2-1.el9", "x86_64", "")},
			want:      []string{"A-1 nodejs.x86_64 1:16.20.2-1.el9 < 1:18.20.2-1.module_el9.4.0+1+c"},
		},

		// Installonly packages.
		{
			name:       "several kernels: the newest has the fix, so none is exposed",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("kernel-core", "5.14.0-162.6.1.el9_1", ""))},
			installed: []inventory.Package{
				inst("kernel-core", "5.14.0-70.13.1.el9_0", "aarch64", ""),
				inst("kernel-core", "5.14.0-284.11.1.el9_2", "aarch64", ""),
				inst("kernel-core", "5.14.0-162.6.1.el9_1", "aarch64", ""),
			},
		},
		{
			name:       "several kernels all older: reported once, as the newest instance",
			ecosystem:  el9,
			advisories: []advisory.Advisory{adv("A-1", el9, fixed("kernel-core", "5.14.0-362.8.1.el9_3", ""))},
			installed: []inventory.Package{
				inst("kernel-core", "5.14.0-70.13.1.el9_0", "aarch64", ""),
				inst("kernel-core", "5.14.0-284.11.1.el9_2", "aarch64", ""),
				inst("kernel-core", "5.14.0-162.6.1.el9_1", "aarch64", ""),
			},
			want: []string{"A-1 kernel-core.aarch64 0:5.14.0-284.11.1.el9_2 < 0:5.14.0-362.8.1.el9_3"},
		},

		// Order.
		{
			name:      "findings by issue date, then id; packages by name, then arch",
			ecosystem: el9,
			advisories: []advisory.Advisory{
				withIssued(adv("A-3", el9, fixed("zlib", "1.2.11-40.el9", ""), fixed("bash", "5.1.8-6.el9", "")), "2023-05-01"),
				withIssued(adv("A-2", el9, fixed("bash", "5.1.8-6.el9", "")), "2022-05-01"),
				withIssued(adv("A-1", el9, fixed("zlib", "1.2.11-40.el9", "")), "2023-05-01"),
			},
			installed: []inventory.Package{
				inst("zlib", "1.2.11-31.el9", "aarch64", ""),
				inst("bash", "5.1.8-4.el9", "aarch64", ""),
			},
			want: []string{
				"A-2 bash.aarch64 0:5.1.8-4.el9 < 0:5.1.8-6.el9",
				"A-1 zlib.aarch64 0:1.2.11-31.el9 < 0:1.2.11-40.el9",
				"A-3 bash.aarch64 0:5.1.8-4.el9 < 0:5.1.8-6.el9",
				"A-3 zlib.aarch64 0:1.2.11-31.el9 < 0:1.2.11-40.el9",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := render(NewIndex(tc.advisories).Match(tc.ecosystem, tc.installed))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Match:\n got %q\nwant %q", got, tc.want)
			}
			// MatchAdvisory, one advisory at a time, must agree.
			var one []Finding
			for i := range tc.advisories {
				if f, ok := MatchAdvisory(&tc.advisories[i], tc.ecosystem, tc.installed); ok {
					one = append(one, f)
				}
			}
			slices.SortStableFunc(one, func(a, b Finding) int {
				if c := a.Advisory.Issued.Compare(b.Advisory.Issued); c != 0 {
					return c
				}
				return strings.Compare(a.Advisory.ID, b.Advisory.ID)
			})
			if got1 := render(one); !slices.Equal(got1, tc.want) {
				t.Errorf("MatchAdvisory:\n got %q\nwant %q", got1, tc.want)
			}
		})
	}
}

func withIssued(a advisory.Advisory, date string) advisory.Advisory {
	t, err := time.Parse(time.DateOnly, date)
	if err != nil {
		panic(err)
	}
	a.Issued = t
	return a
}

// TestMatchNothing covers the empty corners: no advisories, no packages, a
// nil Index, and entries that carry no name.
func TestMatchNothing(t *testing.T) {
	pkgs := []inventory.Package{inst("bash", "5.1.8-4.el9", "aarch64", "")}
	var nilIndex *Index
	if got := nilIndex.Match(el9, pkgs); got != nil {
		t.Errorf("nil Index: %v", got)
	}
	if got := NewIndex(nil).Match(el9, pkgs); got != nil {
		t.Errorf("no advisories: %v", got)
	}
	x := NewIndex([]advisory.Advisory{adv("A-1", el9, fixed("bash", "5.1.8-6.el9", ""), fixed("", "9-9", ""))})
	if got := x.Match(el9, nil); got != nil {
		t.Errorf("no packages: %v", got)
	}
	if got := render(x.Match(el9, pkgs)); len(got) != 1 {
		t.Errorf("nameless entry disturbed matching: %q", got)
	}
}

// TestFindingPointsIntoIndex checks that a Finding's Advisory is the caller's
// advisory, not a copy, so the server can key statuses by it.
func TestFindingPointsIntoIndex(t *testing.T) {
	advs := []advisory.Advisory{adv("A-1", el9, fixed("bash", "5.1.8-6.el9", ""))}
	pkgs := []inventory.Package{inst("bash", "5.1.8-4.el9", "aarch64", "")}
	fs := NewIndex(advs).Match(el9, pkgs)
	if len(fs) != 1 || fs[0].Advisory != &advs[0] {
		t.Fatalf("finding does not point at advs[0]: %+v", fs)
	}
	f, ok := MatchAdvisory(&advs[0], el9, pkgs)
	if !ok || f.Advisory != &advs[0] {
		t.Fatalf("MatchAdvisory finding does not point at its advisory: %+v", f)
	}
}
