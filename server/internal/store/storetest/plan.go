package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// testDevicePlan: a device's plan lists exactly its affected and failed
// advisories, most severe first, each with the installed packages older
// than the fix as the inventory has them; patched and pending-reboot ones
// leave it; locations come from the stored advisory.
func testDevicePlan(t *testing.T, b Backend) {
	f := newFleet(t, b)
	ctx := t.Context()
	const ssl, glibc, zlib, libxml = "ALSA-2023:3722", "ALSA-2023:5453", "ALSA-2022:7314", "ALSA-2023:0338"

	if _, err := f.s.DevicePlan(ctx, "no-such-device"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DevicePlan of an unknown device: %v, want ErrNotFound", err)
	}
	d := f.enroll("pi")
	plan, err := f.s.DevicePlan(ctx, d.ID)
	if err != nil || plan == nil || len(plan) != 0 {
		t.Fatalf("DevicePlan before any report = %v, %v; want an empty, non-nil plan", plan, err)
	}

	cur := f.ubi
	f.report(d.ID, full("r1", cur))
	failed := delta("r2", cur, nil, nil)
	failed.Cycles = []protocol.CycleResult{{Advisories: []string{ssl}, Outcome: protocol.OutcomeFailed, Error: "rpm: transaction failed"}}
	f.report(d.ID, failed)

	plan = mustPlan(t, f.s, d.ID)
	wantIDs := []string{glibc, zlib, libxml, ssl} // Important first, then by id
	if got := planIDs(plan); !slices.Equal(got, wantIDs) {
		t.Fatalf("plan advisories = %v, want %v", got, wantIDs)
	}
	fixes := map[string]advisory.Advisory{}
	for _, a := range Advisories() {
		fixes[a.ID] = a
	}
	for _, a := range plan {
		adv := fixes[a.ID]
		wantStatus := protocol.StatusAffected
		if a.ID == ssl {
			wantStatus = protocol.StatusFailed
		}
		if a.Status != wantStatus || a.Severity != adv.Severity.String() || a.Type != string(adv.Type) || a.RebootSuggested != adv.RebootSuggested {
			t.Errorf("%s: status %q severity %q type %q reboot %v; want %q %q %q %v", a.ID, a.Status, a.Severity, a.Type,
				a.RebootSuggested, wantStatus, adv.Severity, adv.Type, adv.RebootSuggested)
		}
		// The packages are those of the inventory the advisory names,
		// computed here from the inventory, not copied from the store.
		var want []protocol.PlanPackage
		for _, p := range cur {
			for _, ap := range adv.Packages {
				inst := rpmver.EVR{Epoch: p.Epoch, Version: p.Version, Release: p.Release}
				if ap.Name == p.Name && rpmver.Compare(inst, ap.EVR) < 0 {
					want = append(want, protocol.PlanPackage{Name: p.Name, Arch: p.Arch, Installed: inst.String(), Fixed: ap.EVR.String()})
				}
			}
		}
		slices.SortFunc(want, func(x, y protocol.PlanPackage) int {
			if x.Name != y.Name {
				return strings.Compare(x.Name, y.Name)
			}
			return strings.Compare(x.Arch, y.Arch)
		})
		if len(want) == 0 || !slices.Equal(a.Packages, want) {
			t.Errorf("%s: packages\n got %+v\nwant %+v", a.ID, a.Packages, want)
		}
	}

	// glibc applied, a reboot pending: it leaves the plan.
	after, added, removed := upgrade(cur, "0", "2.34", "60.el9_2.7", "glibc", "glibc-common", "glibc-minimal-langpack")
	cur = after
	r := delta("r3", after, added, removed)
	r.Cycles = []protocol.CycleResult{{Advisories: []string{glibc}, Outcome: protocol.OutcomeApplied, RebootNeeded: true}}
	r.RebootPending = true
	f.report(d.ID, r)
	if got := planIDs(mustPlan(t, f.s, d.ID)); !slices.Equal(got, []string{zlib, libxml, ssl}) {
		t.Fatalf("plan after glibc applied = %v, want %v", got, []string{zlib, libxml, ssl})
	}

	// An advisory imported from a repository carries each package's
	// location and digest; the plan passes them on for the matching arch.
	advs := Advisories()
	var located advisory.Advisory
	for _, a := range advs {
		if a.ID == zlib {
			located = a
		}
	}
	located.Packages = nil
	var zlibArch string
	for _, p := range cur {
		if p.Name == "zlib" {
			zlibArch = p.Arch
		}
	}
	const sum = "3b0f3ae1a5e0b1c1f3c2a8d2b7b5d1e0c4f6a9e8d7c6b5a4f3e2d1c0b9a8f7e6"
	for _, arch := range []string{"x86_64", zlibArch} {
		located.Packages = append(located.Packages, advisory.Package{Name: "zlib", EVR: rpmver.MustParseEVR("1.2.11-32.el9_0"), Arch: arch,
			Filename: "Packages/zlib-1.2.11-32.el9_0." + arch + ".rpm", SHA256: sum[:len(sum)-len(arch)] + arch})
	}
	located.Title += " (from a repository)"
	located.Updated = t0
	if _, err := f.s.PutAdvisories(ctx, []advisory.Advisory{located}, t0.Add(2*time.Minute), Match([]advisory.Advisory{located})); err != nil {
		t.Fatalf("PutAdvisories: %v", err)
	}
	plan = mustPlan(t, f.s, d.ID)
	var zp []protocol.PlanPackage
	for _, a := range plan {
		if a.ID == zlib {
			zp = a.Packages
		}
	}
	if len(zp) != 1 || zp[0].Location != "Packages/zlib-1.2.11-32.el9_0."+zlibArch+".rpm" || zp[0].SHA256 != sum[:len(sum)-len(zlibArch)]+zlibArch {
		t.Fatalf("zlib in the plan = %+v, want its %s location and digest", zp, zlibArch)
	}
	for _, a := range plan {
		if a.ID != zlib {
			for _, p := range a.Packages {
				if p.Location != "" || p.SHA256 != "" {
					t.Errorf("%s %s: location %q sha256 %q from an advisory that gave none", a.ID, p.Name, p.Location, p.SHA256)
				}
			}
		}
	}
}

func mustPlan(t *testing.T, s store.Store, deviceID string) []protocol.PlanAdvisory {
	t.Helper()
	plan, err := s.DevicePlan(t.Context(), deviceID)
	if err != nil {
		t.Fatalf("DevicePlan: %v", err)
	}
	return plan
}

func planIDs(plan []protocol.PlanAdvisory) []string {
	var ids []string
	for _, a := range plan {
		ids = append(ids, a.ID)
	}
	return ids
}
