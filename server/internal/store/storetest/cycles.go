package storetest

import (
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// testCycleKeptOnce: a cycle the device numbered is kept once, however
// many reports carry it (an agent killed between queueing a cycle's report
// and noting it queued sends the cycle again under a new report id), and
// the late copy does not undo what a later cycle said. Cycles without a
// number (older agents) are kept per report, as before.
func testCycleKeptOnce(t *testing.T, b Backend) {
	f := newFleet(t, b)
	d := f.enroll("pi")
	f.report(d.ID, full("r1", f.ubi))
	failed := protocol.CycleResult{ID: 7, Advisories: []string{"ALSA-2023:3722"}, Outcome: protocol.OutcomeRolledBack, Error: "health check failed", Started: t0, Finished: t0}
	r2 := delta("r2", f.ubi, nil, nil)
	r2.Cycles = []protocol.CycleResult{failed}
	f.report(d.ID, r2)
	if st := f.statuses("pi")["ALSA-2023:3722"]; st != protocol.StatusFailed {
		t.Fatalf("after the rolled-back cycle ALSA-2023:3722 is %q, want failed", st)
	}
	after, added, removed := upgrade(f.ubi, "1", "3.0.7", "16.el9_2", "openssl", "openssl-libs")
	r3 := delta("r3", after, added, removed)
	r3.Cycles = []protocol.CycleResult{{ID: 8, Advisories: []string{"ALSA-2023:3722"}, Outcome: protocol.OutcomeApplied, Started: t0, Finished: t0}}
	f.report(d.ID, r3)
	// Cycle 7 again, in a report of its own.
	r4 := delta("r4", after, nil, nil)
	r4.Cycles = []protocol.CycleResult{failed}
	if resp := f.report(d.ID, r4); resp.Duplicate {
		t.Errorf("r4 is a new report id, answered Duplicate")
	}
	dd, ok := f.s.(store.DeviceDetails)
	if !ok {
		t.Fatalf("%T has no DeviceCycles", f.s)
	}
	cycles, err := dd.DeviceCycles(t.Context(), d.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, c := range cycles {
		ids = append(ids, c.ID)
	}
	if len(ids) != 2 {
		t.Errorf("the server holds cycles %v, want 7 and 8 once each", ids)
	}
	if st := f.statuses("pi")["ALSA-2023:3722"]; st != protocol.StatusPatched {
		t.Errorf("after cycle 7 came again ALSA-2023:3722 is %q, want patched (the later cycle stands)", st)
	}
	// Unnumbered cycles: one per report.
	old := protocol.CycleResult{Advisories: []string{"ALSA-2023:3722"}, Outcome: protocol.OutcomeApplied, Started: t0, Finished: t0}
	for _, id := range []string{"r5", "r6"} {
		r := delta(id, after, nil, nil)
		r.Cycles = []protocol.CycleResult{old}
		f.report(d.ID, r)
	}
	if cycles, err = dd.DeviceCycles(t.Context(), d.ID, 100); err != nil || len(cycles) != 4 {
		t.Errorf("after two reports of an unnumbered cycle the server holds %d cycles (%v), want 4", len(cycles), err)
	}
}
