package fleet

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestAllowListFollowsRollouts: a group policy's allow_updates travel in
// the plan of every device of the group, except, while a rollout to the
// group runs or is paused, the devices it has not reached; once it is
// aborted (or completes) they get it again. A device outside the group
// never gets it.
func TestAllowListFollowsRollouts(t *testing.T) {
	f := newOpsFleet(t)
	ctx := t.Context()
	if _, err := f.svc.Import(ctx, []advisory.Advisory{opsAdvisory("RFSA-K", advisory.Security, advisory.Important, "imp-lib", day0)}); err != nil {
		t.Fatal(err)
	}
	var pis []string
	for i := range 4 {
		n := fmt.Sprintf("pi-%02d", i)
		pis = append(pis, n)
		f.enroll(t, n, map[string]string{"site": "field"})
	}
	f.enroll(t, "elsewhere", map[string]string{"site": "lab"})
	if _, err := f.svc.PutGroup(ctx, "field", protocol.GroupRequest{Selector: map[string]string{"site": "field"}}); err != nil {
		t.Fatal(err)
	}
	allow := []string{"raspberrypi2-kernel4", "raspberrypi2-firmware"}
	if _, err := f.svc.SetGroupPolicy(ctx, "field", &protocol.Policy{Mode: "apply", AllowUpdates: allow}); err != nil {
		t.Fatal(err)
	}
	allowed := func() []string {
		t.Helper()
		var out []string
		for _, n := range append(slices.Clone(pis), "elsewhere") {
			_, pol := f.plan(t, n)
			if pol != nil && slices.Equal(pol.AllowUpdates, allow) {
				out = append(out, n)
			} else if pol != nil && len(pol.AllowUpdates) != 0 {
				t.Errorf("%s's plan allow-lists %q, want %q or nothing", n, pol.AllowUpdates, allow)
			}
		}
		return out
	}
	if got := allowed(); !slices.Equal(got, pis) {
		t.Fatalf("plans allow-listing before any rollout: %v, want the group's %v", got, pis)
	}

	r, err := f.svc.CreateRollout(ctx, protocol.RolloutRequest{Advisory: "RFSA-K", Group: "field", Phases: []string{"1", "100%"}, Soak: "1h"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	canary := r.Devices[0].Device
	if got := allowed(); !slices.Equal(got, []string{canary}) {
		t.Fatalf("plans allow-listing while the rollout runs: %v, want the canary %s only", got, canary)
	}
	if _, err := f.svc.ActRollout(ctx, r.ID, protocol.RolloutPause); err != nil {
		t.Fatal(err)
	}
	if got := allowed(); !slices.Equal(got, []string{canary}) {
		t.Fatalf("plans allow-listing while the rollout is paused: %v, want the canary %s only", got, canary)
	}
	if _, err := f.svc.ActRollout(ctx, r.ID, protocol.RolloutAbort); err != nil {
		t.Fatal(err)
	}
	if got := allowed(); !slices.Equal(got, pis) {
		t.Fatalf("plans allow-listing after the abort: %v, want the group's %v again", got, pis)
	}
}

// TestAllowListFailurePausesRollout: the allow-listed updates ride along
// with a rollout, so the canary's cycle of only those (a Pi kernel whose
// health check fails, rolled back) counts against its phase as a failed
// advisory cycle would: the rollout pauses naming it, and no other device
// gets the allow-list. A plain cycle that applied counts neither way.
func TestAllowListFailurePausesRollout(t *testing.T) {
	f := newOpsFleet(t)
	ctx := t.Context()
	if _, err := f.svc.Import(ctx, []advisory.Advisory{opsAdvisory("RFSA-K", advisory.Security, advisory.Important, "imp-lib", day0)}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		f.enroll(t, fmt.Sprintf("pi-%02d", i), map[string]string{"site": "field"})
	}
	if _, err := f.svc.PutGroup(ctx, "field", protocol.GroupRequest{Selector: map[string]string{"site": "field"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SetGroupPolicy(ctx, "field", &protocol.Policy{Mode: "apply", AllowUpdates: []string{"raspberrypi2-kernel4"}}); err != nil {
		t.Fatal(err)
	}
	r, err := f.svc.CreateRollout(ctx, protocol.RolloutRequest{Advisory: "RFSA-K", Group: "field", Phases: []string{"1", "100%"}, Soak: "1h"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	canary := r.Devices[0].Device

	// A plain cycle that applied: the canary still owes RFSA-K.
	f.clock.Add(time.Minute)
	f.reportPkgs(t, canary, "r1", opsPkgs, []protocol.CycleResult{{ID: 1, Outcome: protocol.OutcomeApplied}})
	f.clock.Add(2 * time.Hour)
	if err := f.svc.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.svc.RolloutView(ctx, r.ID); v.State != protocol.RolloutRunning || v.Phase != 0 || v.Devices[0].Result != protocol.ResultPending {
		t.Fatalf("after an applied plain cycle: %+v, want the canary pending in phase 1", v)
	}

	// The next kernel fails its health check and is rolled back.
	f.clock.Add(time.Minute)
	f.reportPkgs(t, canary, "r2", opsPkgs, []protocol.CycleResult{{ID: 2, Outcome: protocol.OutcomeRolledBack,
		Error: "health check pi-boot: exit status 1"}})
	f.clock.Add(2 * time.Hour)
	if err := f.svc.Step(ctx); err != nil {
		t.Fatal(err)
	}
	v, _ := f.svc.RolloutView(ctx, r.ID)
	if v.State != protocol.RolloutPaused || !strings.Contains(v.Reason, canary+": health check pi-boot: exit status 1") {
		t.Fatalf("after the canary's failed allow-listed cycle: %+v, want paused naming it", v)
	}
	for i := range 4 {
		n := fmt.Sprintf("pi-%02d", i)
		if _, pol := f.plan(t, n); n != canary && pol != nil && len(pol.AllowUpdates) > 0 {
			t.Errorf("%s, not reached, got the allow-list while the rollout is paused", n)
		}
	}
}
