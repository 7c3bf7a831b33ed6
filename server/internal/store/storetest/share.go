package storetest

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// testStatusSetsShared: package sets whose findings give the same
// applicability share one status set, and those whose findings are the
// same share one finding set (in the SQL stores; the suite counts them
// through StatusSets and FindingSets), and every answer stays what each
// device's own packages say: when an advisory names a package the sets differ in they
// part, when one changes them alike the shared rows change once, and when
// two come to agree they join. At the end the answers equal those of a
// store that got the same reports after the last advisories.
func testStatusSetsShared(t *testing.T, b Backend) {
	f := newFleet(t, b)
	advs := Advisories()
	without := func(name string) []protocol.Package {
		return slices.DeleteFunc(slices.Clone(f.ubi), func(p protocol.Package) bool { return p.Name == name })
	}
	oldZlib, _, _ := upgrade(f.ubi, "0", "1.2.11", "30.el9", "zlib")
	newBash, _, _ := upgrade(f.ubi, "0", "5.1.8", "7.el9", "bash")
	devices := map[string][]protocol.Package{"image": f.ubi, "nobash": without("bash"), "oldzlib": oldZlib, "newbash": newBash}
	for _, name := range slices.Sorted(maps.Keys(devices)) {
		f.report(f.enroll(name).ID, full("r1", devices[name]))
	}
	// check compares every device's statuses with what its own packages
	// say under advs, and the counts of status and finding sets with
	// want and wantFindings.
	check := func(step string, want, wantFindings int) {
		t.Helper()
		for name, pkgs := range devices {
			if got, want := f.statuses(name), expected(advs, pkgs); !maps.Equal(got, want) {
				t.Errorf("%s: device %s: statuses %v, want %v", step, name, got, want)
			}
		}
		if n := countLists(t, f.s, "StatusSets"); n != want {
			t.Errorf("%s: %d status sets, want %d", step, n, want)
		}
		if n := countLists(t, f.s, "FindingSets"); n != wantFindings {
			t.Errorf("%s: %d finding sets, want %d", step, n, wantFindings)
		}
	}
	// Findings differ only for oldzlib.
	check("four devices differing in packages no advisory names, or in a version still short of the fix", 1, 2)
	// Findings stay each set's own: the CVE answer names each device's
	// installed zlib.
	resp, err := f.s.CVE(t.Context(), "CVE-2022-37434")
	if err != nil {
		t.Fatal(err)
	}
	installed := map[string]string{}
	for _, e := range resp.Exposed {
		installed[e.Device] = e.Installed
	}
	if len(installed) != 4 || installed["oldzlib"] != "0:1.2.11-30.el9" || installed["image"] != "0:1.2.11-31.el9_0.1" {
		t.Errorf("CVE-2022-37434 exposes %v, want all four, oldzlib at 1.2.11-30.el9", installed)
	}

	// An advisory for bash: the image and oldzlib are affected, newbash
	// patched, nobash has nothing to do with it. Three status sets.
	bash := advisory.Advisory{ID: "ALSA-2099:0002", Ecosystem: "AlmaLinux:9", Type: advisory.Security, Severity: advisory.Critical,
		Issued: t0, Title: "Critical: bash security update", CVEs: []string{"CVE-2099-0002"},
		Packages: []advisory.Package{{Name: "bash", EVR: rpmver.MustParseEVR("5.1.8-6.el9")}}}
	put := func(a advisory.Advisory) {
		t.Helper()
		advs = append(slices.DeleteFunc(advs, func(x advisory.Advisory) bool { return x.ID == a.ID }), a)
		if n, err := f.s.PutAdvisories(t.Context(), []advisory.Advisory{a}, t0, Match([]advisory.Advisory{a})); err != nil || n != 1 {
			t.Fatalf("PutAdvisories(%s) = %d, %v", a.ID, n, err)
		}
		f.match = Match(advs)
	}
	put(bash)
	check("a bash advisory", 3, 4)
	ds, err := f.s.Devices(t.Context(), store.DeviceFilter{ExposedTo: "CVE-2099-0002"})
	if names := deviceNames(ds); err != nil || !slices.Equal(names, []string{"image", "oldzlib"}) {
		t.Errorf("Devices(exposed to CVE-2099-0002) = %v, %v; want image and oldzlib", names, err)
	}
	if a, err := f.s.Advisory(t.Context(), bash.ID); err != nil || a.Affected != 2 || a.Patched != 1 || len(a.Devices) != 3 {
		t.Errorf("Advisory(%s) = %+v, %v; want 2 affected, 1 patched", bash.ID, a, err)
	}

	// An advisory for sed, which all have: each status set changes in
	// place, none is added.
	sed := advisory.Advisory{ID: "ALSA-2099:0003", Ecosystem: "AlmaLinux:9", Type: advisory.Security, Severity: advisory.Low,
		Issued: t0, Title: "Low: sed update", CVEs: []string{"CVE-2099-0003"},
		Packages: []advisory.Package{{Name: "sed", EVR: rpmver.MustParseEVR("4.8-10.el9")}}}
	put(sed)
	check("a sed advisory", 3, 4)

	// The bash fix is revised to a build every bash has: the image and
	// oldzlib are now patched like newbash, and join its status set.
	bash.Packages[0].EVR, bash.Updated = rpmver.MustParseEVR("5.1.8-1.el9"), t0
	put(bash)
	check("the bash fix revised", 2, 4)

	// A device that arrives now with its own set joins the status set its
	// findings give.
	devices["late"] = without("gawk")
	f.report(f.enroll("late").ID, full("r1", devices["late"]))
	check("a late device without gawk", 2, 4)

	// The same reports into a store that knew the last advisories first.
	g := newFleet(t, b)
	if _, err := g.s.PutAdvisories(t.Context(), advs, t0, Match(advs)); err != nil {
		t.Fatal(err)
	}
	g.match = Match(advs)
	for _, name := range slices.Sorted(maps.Keys(devices)) {
		g.report(g.enroll(name).ID, full("r1", devices[name]))
	}
	for _, a := range advs {
		for _, cve := range a.CVEs {
			got, err1 := f.s.CVE(t.Context(), cve)
			want, err2 := g.s.CVE(t.Context(), cve)
			if err1 != nil || err2 != nil || !equalCVE(got, want) {
				t.Errorf("CVE(%s) =\n%+v, %v\nwant, as a store with no history gives,\n%+v, %v", cve, got, err1, want, err2)
			}
		}
	}
	gotList, err1 := f.s.Advisories(t.Context(), advisory.SeverityNone)
	wantList, err2 := g.s.Advisories(t.Context(), advisory.SeverityNone)
	if err1 != nil || err2 != nil || !slices.EqualFunc(gotList, wantList, equalSummary) {
		t.Errorf("Advisories =\n%+v, %v\nwant\n%+v, %v", gotList, err1, wantList, err2)
	}
	gotSum, err1 := f.s.Summary(t.Context())
	wantSum, err2 := g.s.Summary(t.Context())
	if err1 != nil || err2 != nil || gotSum.FullyPatched != wantSum.FullyPatched || !maps.Equal(gotSum.ExposedBySeverity, wantSum.ExposedBySeverity) {
		t.Errorf("Summary = %+v, %v; want %+v, %v", gotSum, err1, wantSum, err2)
	}
	for name := range devices {
		gotPlan, err1 := f.s.DevicePlan(t.Context(), "dev-"+name)
		wantPlan, err2 := g.s.DevicePlan(t.Context(), "dev-"+name)
		if err1 != nil || err2 != nil || len(gotPlan) != len(wantPlan) {
			t.Errorf("DevicePlan(%s) = %+v, %v; want %+v, %v", name, gotPlan, err1, wantPlan, err2)
		}
	}
}

// expected is the status every advisory in advs has on a device with
// pkgs and no history: affected when a package it names is older than
// the fix, patched when all are at or past it.
func expected(advs []advisory.Advisory, pkgs []protocol.Package) map[string]protocol.Status {
	want := map[string]protocol.Status{}
	fs, _ := Match(advs)("almalinux:9", pkgs)
	for _, x := range fs {
		if x.Affected {
			want[x.Advisory] = protocol.StatusAffected
		} else if _, ok := want[x.Advisory]; !ok {
			want[x.Advisory] = protocol.StatusPatched
		}
	}
	return want
}

func deviceNames(ds []protocol.DeviceSummary) []string {
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
	}
	return names
}

func equalSummary(a, b protocol.AdvisorySummary) bool {
	return a.ID == b.ID && a.Affected == b.Affected && a.Patched == b.Patched && a.PendingReboot == b.PendingReboot &&
		a.Failed == b.Failed && slices.Equal(a.CVEs, b.CVEs)
}

// countLists counts stored status or finding sets, through the method
// (StatusSets, FindingSets) the SQL stores give the suite.
func countLists(t *testing.T, s store.Store, method string) int {
	t.Helper()
	var count func(context.Context) (int, error)
	switch c := s.(type) {
	case interface {
		StatusSets(context.Context) (int, error)
		FindingSets(context.Context) (int, error)
	}:
		count = map[string]func(context.Context) (int, error){"StatusSets": c.StatusSets, "FindingSets": c.FindingSets}[method]
	default:
		t.Fatalf("%T has no StatusSets and FindingSets(ctx) (int, error) to count shared lists", s)
	}
	n, err := count(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}
