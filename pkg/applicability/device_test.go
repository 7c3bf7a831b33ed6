package applicability

import (
	"slices"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
)

// matchStreaming matches advisories one at a time through a Device, the way
// the agent's check does as they stream in, and sorts the findings.
func matchStreaming(ecosystem string, installed []inventory.Package, advs []advisory.Advisory) []Finding {
	d := NewDevice(ecosystem, installed)
	var fs []Finding
	for i := range advs {
		if f, ok := d.Match(&advs[i]); ok {
			fs = append(fs, f)
		}
	}
	SortFindings(fs)
	return fs
}

// TestDeviceAgreesWithIndex holds Device.Match, one advisory at a time, to
// exactly what Index.Match answers for a whole package set: on the real
// AlmaLinux 9 database with the 1,000-package benchmark device (modular
// packages included), and on AlmaLinux 8 with real module streams.
func TestDeviceAgreesWithIndex(t *testing.T) {
	el9Advs := loadOSV(t, "almalinux9.jsonl.gz", "AlmaLinux:9")
	el8Advs := loadOSV(t, "almalinux8.jsonl.gz", "AlmaLinux:8")
	for _, tc := range []struct {
		name      string
		ecosystem string
		advs      []advisory.Advisory
		pkgs      []inventory.Package
	}{
		{"AlmaLinux 9, 1000 packages", "AlmaLinux:9", el9Advs, benchInventory(t, el9Advs)},
		{"AlmaLinux 8 module streams and installonly kernels", "AlmaLinux:8", el8Advs, []inventory.Package{
			inst("nodejs", "1:18.19.1-1.module_el8.9.0+3753+4de0891b", "aarch64", "nodejs:18:8090020240226101806:a7c0f3f3"),
			inst("postgresql", "13.10-1.module_el8.7.0+3498+cb1ef3c6", "aarch64", "postgresql:13:8070020230306135609:c94f2a24"),
			inst("perl", "4:5.24.4-403.module_el8.1.0+6019+b22674e1", "aarch64", "perl:5.24:8010020190529084201:3dcf7e7b"),
			inst("kernel", "4.18.0-348.el8", "aarch64", ""),
			inst("kernel", "4.18.0-513.5.1.el8_9", "aarch64", ""),
			inst("openssl-libs", "1:1.1.1k-5.el8_5", "aarch64", ""),
			inst("openssl-libs", "1:1.1.1k-5.el8_5", "i686", ""),
		}},
		{"wrong ecosystem", "AlmaLinux:9", el8Advs, []inventory.Package{inst("openssl-libs", "1:1.1.1k-5.el8_5", "aarch64", "")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := render(NewIndex(tc.advs).Match(tc.ecosystem, tc.pkgs))
			got := render(matchStreaming(tc.ecosystem, tc.pkgs, tc.advs))
			if !slices.Equal(got, want) {
				t.Errorf("Device and Index disagree:\nDevice: %d lines\nIndex:  %d lines\nfirst difference: %q vs %q", len(got), len(want), firstDiff(got, want), firstDiff(want, got))
			}
			if tc.name != "wrong ecosystem" && len(want) == 0 {
				t.Error("nothing matched: the comparison would prove nothing")
			}
		})
	}
}

func firstDiff(a, b []string) string {
	for i := range a {
		if i >= len(b) || a[i] != b[i] {
			return a[i]
		}
	}
	return ""
}

// BenchmarkDeviceMatch is the streaming check's matching cost: every AlmaLinux
// 9 advisory through a 1,000-package Device, building the Device included.
func BenchmarkDeviceMatch(b *testing.B) {
	advs := loadOSV(b, "almalinux9.jsonl.gz", "AlmaLinux:9")
	pkgs := benchInventory(b, advs)
	b.ReportAllocs()
	for b.Loop() {
		matchStreaming("AlmaLinux:9", pkgs, advs)
	}
}
