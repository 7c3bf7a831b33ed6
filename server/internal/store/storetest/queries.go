package storetest

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Stories of the queries: CVE exposure, device filters, advisory lists and
// the summary.

func testCVE(t *testing.T, b Backend) {
	f := newFleet(t, b)
	kitchen, garage, barn := f.enroll("pi-kitchen"), f.enroll("pi-garage"), f.enroll("pi-barn")
	f.report(kitchen.ID, full("r1", f.ubi))
	fixed, _, _ := upgrade(f.ubi, "1", "3.0.7", "16.el9_2", "openssl", "openssl-libs")
	f.report(garage.ID, full("r1", fixed))
	var noSSL []protocol.Package
	for _, p := range f.ubi {
		if p.Name != "openssl" && p.Name != "openssl-libs" {
			noSSL = append(noSSL, p)
		}
	}
	f.report(barn.ID, full("r1", noSSL))
	// A name may hold any character; the answer must not split it.
	odd := f.enroll("pi:3:é\n")
	f.report(odd.ID, full("r1", f.ubi))

	got, err := f.s.CVE(t.Context(), "CVE-2023-2650")
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.CVEResponse{CVE: "CVE-2023-2650",
		Exposed: []protocol.CVEExposure{
			{Device: "pi-kitchen", Advisory: "ALSA-2023:3722", Package: "openssl", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"},
			{Device: "pi-kitchen", Advisory: "ALSA-2023:3722", Package: "openssl-libs", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"},
			{Device: "pi:3:é\n", Advisory: "ALSA-2023:3722", Package: "openssl", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"},
			{Device: "pi:3:é\n", Advisory: "ALSA-2023:3722", Package: "openssl-libs", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"},
		},
		Patched: []protocol.CVEPatched{{Device: "pi-garage", Advisory: "ALSA-2023:3722"}}}
	if !equalCVE(got, want) {
		t.Errorf("CVE(CVE-2023-2650) =\n%+v\nwant\n%+v", got, want)
	}
	// Pages of one and two devices put together are the whole answer.
	for _, limit := range []int{1, 2} {
		all := protocol.CVEResponse{CVE: "CVE-2023-2650", Exposed: []protocol.CVEExposure{}, Patched: []protocol.CVEPatched{}}
		after := ""
		for pages := 0; ; pages++ {
			page, err := f.s.CVEPage(t.Context(), "cve-2023-2650", after, limit)
			if err != nil || pages > 5 {
				t.Fatalf("CVEPage(after %q, limit %d) = %+v, %v (page %d)", after, limit, page, err, pages)
			}
			all.Exposed = append(all.Exposed, page.Exposed...)
			all.Patched = append(all.Patched, page.Patched...)
			if page.Next == "" {
				break
			}
			after = page.Next
		}
		if !equalCVE(all, want) {
			t.Errorf("CVE-2023-2650 in pages of %d =\n%+v\nwant\n%+v", limit, all, want)
		}
	}
	if _, err := f.s.CVEPage(t.Context(), "CVE-2023-2650", "", 0); err == nil || !strings.Contains(err.Error(), "limit 0, want at least 1") {
		t.Errorf("CVEPage with limit 0: err = %v, want limit 0, want at least 1", err)
	}
	got, err = f.s.CVE(t.Context(), "CVE-1999-0001")
	if err != nil || len(got.Exposed)+len(got.Patched) != 0 || got.Exposed == nil || got.Patched == nil {
		t.Errorf("unknown CVE: %+v, %v; want empty, non-nil lists", got, err)
	}
	ds, err := f.s.Devices(t.Context(), store.DeviceFilter{ExposedTo: "CVE-2023-2650"})
	if err != nil || len(ds) != 2 || ds[0].Name != "pi-kitchen" {
		t.Errorf("Devices(exposed to CVE-2023-2650) = %+v, %v; want pi-kitchen and pi:3:é", ds, err)
	}
}

func equalCVE(a, b protocol.CVEResponse) bool {
	return a.CVE == b.CVE && slices.Equal(a.Exposed, b.Exposed) && slices.Equal(a.Patched, b.Patched)
}

func testDeviceQueries(t *testing.T, b Backend) {
	f := newFleet(t, b)
	d := f.enroll("pi")
	f.report(d.ID, full("r1", f.ubi))
	dev, err := f.s.Device(t.Context(), "pi")
	if err != nil {
		t.Fatal(err)
	}
	if dev.Packages != len(f.ubi) || dev.Affected != 4 || dev.WorstSeverity != "Important" || dev.LastSeen.IsZero() {
		t.Errorf("Device = %+v; want %d packages, 4 affected, worst Important, seen", dev.DeviceSummary, len(f.ubi))
	}
	if len(dev.Advisories) != 4 || dev.Advisories[0].Advisory != "ALSA-2023:5453" {
		t.Errorf("Device advisories = %+v; want 4, the Important glibc one first", dev.Advisories)
	}
	if _, err := f.s.Device(t.Context(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Device(unknown) error = %v, want ErrNotFound", err)
	}
	adv, err := f.s.Advisory(t.Context(), "ALSA-2023:3722")
	if err != nil || adv.Affected != 1 || adv.Patched != 0 || len(adv.CVEs) != 5 || adv.Severity != "Moderate" ||
		len(adv.Devices) != 1 || adv.Devices[0] != (protocol.AdvisoryDevice{Device: "pi", Status: protocol.StatusAffected}) {
		t.Errorf("Advisory = %+v, %v", adv, err)
	}
	if _, err := f.s.Advisory(t.Context(), "ALSA-0000:0000"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Advisory(unknown) error = %v, want ErrNotFound", err)
	}
}

func testSummary(t *testing.T, b Backend) {
	f := newFleet(t, b)
	// No device yet: nothing exposed, nothing divided by zero.
	sum, err := f.s.Summary(t.Context())
	if err != nil || sum.Devices != 0 || sum.FullyPatchedShare != 0 || sum.OldestUnpatchedCritical != nil {
		t.Errorf("empty fleet summary = %+v, %v", sum, err)
	}
	a, c, e := f.enroll("a"), f.enroll("b"), f.enroll("c")
	f.report(a.ID, full("r1", f.ubi))
	glibcFixed, _, _ := upgrade(f.ubi, "0", "2.34", "60.el9_2.7", "glibc", "glibc-common", "glibc-minimal-langpack")
	f.report(c.ID, full("r1", glibcFixed))
	var clean []protocol.Package
	for _, p := range f.ubi {
		switch p.Name {
		case "openssl", "openssl-libs", "glibc", "glibc-common", "glibc-minimal-langpack", "zlib", "libxml2":
		default:
			clean = append(clean, p)
		}
	}
	f.report(e.ID, full("r1", clean))

	advs, err := f.s.Advisories(t.Context(), 3) // Important and above
	if err != nil || len(advs) != 1 || advs[0].ID != "ALSA-2023:5453" || advs[0].Affected != 1 || advs[0].Patched != 1 || len(advs[0].CVEs) != 3 {
		t.Errorf("Advisories(Important) = %+v, %v; want the glibc one, 1 affected, 1 patched, 3 CVEs", advs, err)
	}
	all, err := f.s.Advisories(t.Context(), 0)
	if err != nil || len(all) != 4 || all[0].ID != "ALSA-2023:5453" {
		t.Errorf("Advisories(all) = %d, %v; want 4, the Important one first", len(all), err)
	}
	sum, err = f.s.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"Important": 1, "Moderate": 1}
	if sum.Devices != 3 || sum.FullyPatched != 1 || !maps.Equal(sum.ExposedBySeverity, want) || sum.OldestUnpatchedCritical != nil {
		t.Errorf("Summary = %+v; want 3 devices, 1 fully patched, exposure %v, no critical", sum, want)
	}
	if sum.FullyPatchedShare < 0.33 || sum.FullyPatchedShare > 0.34 {
		t.Errorf("FullyPatchedShare = %v, want 1/3", sum.FullyPatchedShare)
	}
	// An override moves a device from one count to another.
	failed := delta("r2", f.ubi, nil, nil)
	failed.Cycles = []protocol.CycleResult{{Advisories: []string{"ALSA-2023:3722"}, Outcome: protocol.OutcomeRolledBack}}
	f.report(a.ID, failed)
	all, err = f.s.Advisories(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, adv := range all {
		if adv.ID == "ALSA-2023:3722" && (adv.Affected != 1 || adv.Failed != 1 || adv.Patched != 0) {
			t.Errorf("after a rolled-back update on a: %+v; want 1 affected (b), 1 failed (a)", adv)
		}
	}
	// A Critical advisory affecting device a becomes the oldest unpatched.
	crit := Advisories()
	crit[2].Severity, crit[2].Updated = 4, t0
	if _, err := f.s.PutAdvisories(t.Context(), crit, t0, Match(crit)); err != nil {
		t.Fatal(err)
	}
	sum, err = f.s.Summary(t.Context())
	if err != nil || sum.OldestUnpatchedCritical == nil || sum.OldestUnpatchedCritical.ID != "ALSA-2022:7314" || sum.OldestUnpatchedCritical.Affected != 2 {
		t.Errorf("Summary after a critical zlib advisory: %+v, %v; want ALSA-2022:7314 affecting 2", sum.OldestUnpatchedCritical, err)
	}
}
