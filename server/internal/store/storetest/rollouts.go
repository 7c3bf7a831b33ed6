package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Issue 13's story of rollouts and the plan's gate.

// testRollouts: a rollout is stored with its first phase's devices;
// moving it is guarded by the time it was last updated; the plan's gate
// sees which rollouts hold which advisories and whether they released
// them to the device; cycles are read by when their report arrived.
func testRollouts(t *testing.T, b Backend) {
	f := newFleet(t, b)
	ctx := t.Context()
	var devs []store.Device
	for _, n := range []string{"pi-1", "pi-2", "pi-3"} {
		d := f.enroll(n)
		f.report(d.ID, full("r-"+n, f.ubi))
		devs = append(devs, d)
	}
	plan, err := f.s.DevicePlan(ctx, devs[0].ID)
	if err != nil || len(plan) == 0 {
		t.Fatalf("DevicePlan = %v, %v", plan, err)
	}
	adv := plan[0].ID
	if err := f.s.PutGroup(ctx, store.Group{Name: "lab", Selector: map[string]string{"site": "lab"}, Created: t0, Updated: t0}); err != nil {
		t.Fatal(err)
	}
	r := store.Rollout{ID: "ro1", Group: "lab", Advisories: []string{adv}, Phases: []string{"1", "100%"}, Soak: 90 * time.Minute, MaxFailure: 0.25,
		State: protocol.RolloutRunning, Total: 3, PhaseStarted: t0, CreatedBy: "alice", Created: t0, Updated: t0}
	if err := f.s.CreateRollout(ctx, r, []string{devs[0].ID}); err != nil {
		t.Fatal(err)
	}
	got, err := f.s.Rollout(ctx, "ro1")
	if err != nil || got.Soak != r.Soak || got.MaxFailure != 0.25 || !slices.Equal(got.Phases, r.Phases) || !slices.Equal(got.Advisories, r.Advisories) ||
		got.State != protocol.RolloutRunning || !got.Updated.Equal(t0) || got.CreatedBy != "alice" {
		t.Fatalf("Rollout = %+v, %v; want %+v", got, err, r)
	}
	if err := f.s.DeleteGroup(ctx, "lab"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("deleting a group a running rollout goes to: %v, want ErrConflict", err)
	}
	gate := func(d store.Device) store.GateRollout {
		t.Helper()
		g, err := f.s.PlanGate(ctx, d.ID, []string{adv, "ALSA-0000:0000"})
		if err != nil {
			t.Fatal(err)
		}
		if g.Labels["site"] != "lab" || g.Issued[adv].IsZero() {
			t.Errorf("gate of %s = %+v", d.Name, g)
		}
		if len(g.Rollouts) != 1 {
			t.Fatalf("gate of %s holds rollouts %+v, want ro1", d.Name, g.Rollouts)
		}
		return g.Rollouts[0]
	}
	if g := gate(devs[0]); !g.Released || g.ID != "ro1" || !slices.Equal(g.Advisories, []string{adv}) {
		t.Errorf("the canary's gate = %+v, want ro1 released", g)
	}
	if g := gate(devs[1]); g.Released {
		t.Errorf("pi-2's gate = %+v, want ro1 not released", g)
	}
	if r, err := f.s.RolloutsReaching(ctx, devs[0].ID); err != nil || len(r) != 1 || !r["ro1"] {
		t.Errorf("rollouts reaching the canary = %v, %v; want ro1", r, err)
	}
	if r, err := f.s.RolloutsReaching(ctx, devs[1].ID); err != nil || len(r) != 0 {
		t.Errorf("rollouts reaching pi-2 = %v, %v; want none", r, err)
	}

	// A move guarded by a stale time is refused and changes nothing.
	next := got
	next.Phase, next.PhaseStarted, next.Updated = 1, t0.Add(2*time.Hour), t0.Add(2*time.Hour)
	if err := f.s.UpdateRollout(ctx, next, t0.Add(-time.Second), []string{devs[1].ID}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a stale update: %v, want ErrConflict", err)
	}
	if err := f.s.UpdateRollout(ctx, next, t0, []string{devs[1].ID, devs[2].ID}); err != nil {
		t.Fatal(err)
	}
	ms, err := f.s.RolloutMembers(ctx, "ro1")
	if err != nil || len(ms) != 3 || ms[0].Name != "pi-1" || ms[0].Phase != 0 || ms[1].Phase != 1 || ms[2].Name != "pi-3" {
		t.Errorf("members = %+v, %v", ms, err)
	}
	if err := f.s.UpdateRollout(ctx, store.Rollout{ID: "nope", Updated: t0}, t0, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("updating an unknown rollout: %v, want ErrNotFound", err)
	}
	if rs, err := f.s.Rollouts(ctx, protocol.RolloutPaused); err != nil || len(rs) != 0 {
		t.Errorf("paused rollouts = %+v, %v; want none", rs, err)
	}
	if rs, err := f.s.Rollouts(ctx); err != nil || len(rs) != 1 || rs[0].Phase != 1 {
		t.Errorf("rollouts = %+v, %v", rs, err)
	}

	// Cycles are read by their report's arrival.
	rep := full("r-cycle", f.ubi)
	rep.Cycles = []protocol.CycleResult{{Advisories: []string{adv}, Outcome: protocol.OutcomeRolledBack, Error: "health check failed"}}
	if _, err := f.s.Report(ctx, devs[0].ID, rep, t0.Add(3*time.Hour), f.match); err != nil {
		t.Fatal(err)
	}
	cs, err := f.s.Cycles(ctx, []string{devs[0].ID, devs[1].ID}, t0.Add(2*time.Hour))
	if err != nil || len(cs) != 1 || cs[0].DeviceID != devs[0].ID || cs[0].Cycle.Error != "health check failed" || !cs[0].Received.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("Cycles since +2h = %+v, %v", cs, err)
	}
	if cs, err := f.s.Cycles(ctx, []string{devs[0].ID}, t0.Add(4*time.Hour)); err != nil || len(cs) != 0 {
		t.Errorf("Cycles since +4h = %+v, %v; want none", cs, err)
	}
	// A deleted device leaves its rollouts.
	if _, err := f.s.DeleteDevice(ctx, "pi-3"); err != nil {
		t.Fatal(err)
	}
	if ms, _ := f.s.RolloutMembers(ctx, "ro1"); len(ms) != 2 {
		t.Errorf("members after pi-3's deletion = %+v", ms)
	}
}
