package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// The loop's side of the spool. All file work (spoolfs.go) runs in a
// worker, one operation at a time, so that nothing a bundle holds (a FIFO,
// a file on a hung mount) can stop the loop: it keeps answering, and a
// SIGTERM stops it. The loop keeps what the spool is doing:
//
//   - a take (find the first complete bundle, read its plan, copy its repo/
//     to the private stage) runs only when no cycle runs, no bundle is
//     being handled and no move waits, since it empties the stage;
//   - the taken bundle's plan is verified on the loop, which holds the
//     replay guard, just before its cycle starts (or, while another cycle
//     runs, once it ends), so a stop in between consumes no sequence
//     number;
//   - moves to done/ and failed/ wait in a queue and go first.

// spoolStopWait bounds how long a stopping daemon waits for the spool's
// worker and its queued moves.
const spoolStopWait = 5 * time.Second

// spoolOp is one operation for the worker: a take, or a move.
type spoolOp struct {
	take bool
	move moveReq
}

// moveReq moves a bundle to done/ or failed/; clearStage also empties the
// stage, which the bundle's finished cycle no longer needs.
type moveReq struct {
	name, sub, reason string
	clearStage        bool
}

// spoolResult is the worker's answer to one operation.
type spoolResult struct {
	op    spoolOp
	taken *taken
	moved []moved
	err   error
}

// watchSpool watches the spool folder and the bundle folders in it, from a
// goroutine of its own: nothing on the loop touches the spool.
func (d *daemon) watchSpool(ctx context.Context) {
	go func() {
		if err := os.MkdirAll(d.spool, 0o700); err != nil {
			d.log.Warn("spool folder not watched", "err", err)
			return
		}
		d.watch(ctx, d.spool, true, d.spoolEv)
		poke(d.spoolEv) // bundles dropped while the agent was down
	}()
}

// spoolNext starts what the spool should do next, when the worker is free;
// the loop calls it after every event.
func (d *daemon) spoolNext() {
	if d.ctx.Err() != nil {
		return
	}
	if d.spoolHeld != nil && d.running == nil {
		t := d.spoolHeld
		d.spoolHeld = nil
		d.bundle(t)
	}
	if d.spoolBusy {
		return
	}
	switch {
	case len(d.spoolMoves) > 0:
		m := d.spoolMoves[0]
		d.spoolMoves = d.spoolMoves[1:]
		d.runSpool(spoolOp{move: m})
	case d.spoolWant && d.running == nil && d.spoolHeld == nil:
		d.spoolWant = false
		d.runSpool(spoolOp{take: true})
	}
}

// runSpool runs op in a worker; the answer comes on d.spoolDone.
func (d *daemon) runSpool(op spoolOp) {
	d.spoolBusy = true
	go func() {
		r := spoolResult{op: op}
		if op.take {
			r.taken, r.moved, r.err = d.sfs.take()
		} else {
			r.moved = []moved{d.sfs.move0(op.move)}
		}
		d.spoolDone <- r
	}()
}

// spoolFinished takes the worker's answer.
func (d *daemon) spoolFinished(r spoolResult) {
	d.spoolBusy = false
	for _, m := range r.moved {
		if m.err != nil {
			d.log.Error("spool bundle not moved", "bundle", m.name, "to", m.sub, "err", m.err)
			continue
		}
		if m.sub == spoolDone {
			d.status.SpoolDone++
		} else {
			d.status.SpoolFailed++
		}
		d.log.Info("spool bundle moved", "bundle", m.name, "to", m.sub, "reason", m.reason)
	}
	if r.err != nil {
		d.log.Error("spool not read", "dir", d.spool, "err", r.err)
	}
	if len(r.moved) > 0 && r.op.take {
		d.spoolWant = true // what the move made room for
	}
	if r.taken == nil {
		return
	}
	if d.ctx.Err() != nil {
		// Not verified, so no sequence number spent: the next start
		// takes it again.
		d.log.Info("spool bundle left for the next start", "bundle", r.taken.name)
		return
	}
	d.spoolHeld = r.taken // spoolNext starts it when no cycle runs
}

// queueMove queues a bundle's move to done/ or failed/.
func (d *daemon) queueMove(m moveReq) {
	d.spoolMoves = append(d.spoolMoves, m)
	d.spoolWant = true // then look for the next bundle
}

// flushSpool, on the way out, waits for the worker and does the queued
// moves, for at most spoolStopWait.
func (d *daemon) flushSpool() {
	deadline := time.NewTimer(spoolStopWait)
	defer deadline.Stop()
	for d.spoolBusy || len(d.spoolMoves) > 0 {
		if !d.spoolBusy {
			m := d.spoolMoves[0]
			d.spoolMoves = d.spoolMoves[1:]
			d.runSpool(spoolOp{move: m})
		}
		select {
		case r := <-d.spoolDone:
			d.spoolFinished(r)
		case <-deadline.C:
			d.log.Warn("stopping without waiting longer for the spool", "waited", spoolStopWait, "moves_left", len(d.spoolMoves))
			return
		}
	}
}

// bundle verifies a taken bundle and starts its cycle; a bundle that is
// refused, or has nothing to apply now, is moved out of the way.
func (d *daemon) bundle(t *taken) {
	if d.ver == nil {
		d.log.Warn("spool bundle refused: standalone without notice_key, no plan can be verified", "bundle", t.name)
		d.queueMove(moveReq{name: t.name, sub: spoolFail, reason: bundlePlan + ": no notice_key pinned: a standalone agent verifies spool plans only against the configuration's notice_key", clearStage: true})
		return
	}
	n, err := d.ver.Verify(t.msg, notice.KindPlan, d.deviceID)
	if err != nil {
		d.log.Warn("spool bundle refused", "bundle", t.name, "err", err)
		d.queueMove(moveReq{name: t.name, sub: spoolFail, reason: fmt.Sprintf("%s: %v", bundlePlan, err), clearStage: true})
		return
	}
	var p protocol.Plan
	if err := json.Unmarshal(n.Body, &p); err != nil {
		d.queueMove(moveReq{name: t.name, sub: spoolFail, reason: fmt.Sprintf("%s: body: %v", bundlePlan, err), clearStage: true})
		return
	}
	dec := policy.DecidePlan(&p, d.policyFor(&p), d.now(), policy.PlanOptions{})
	var held []string
	for _, h := range dec.Held {
		held = append(held, h.ID+": "+h.Action+", "+h.Reason)
	}
	ids := dec.Apply
	for _, h := range held {
		d.log.Info("spool bundle advisory not applied", "bundle", t.name, "why", h)
	}
	if len(ids) == 0 {
		d.queueMove(moveReq{name: t.name, sub: spoolDone, reason: "nothing to apply now:\n" + strings.Join(held, "\n"), clearStage: true})
		return
	}
	d.log.Info("spool bundle verified", "bundle", t.name, "seq", n.Seq, "advisories", ids)
	d.startCycle(cycleJob{kind: cycleBundle, label: "bundle " + t.name, bundle: t.name, ids: ids}, update.Options{
		Repos: []string{t.repo}, Select: update.Selection{IDs: ids}, Pins: dec.Pins,
	})
}

// bundleDone moves a bundle whose cycle ended.
func (d *daemon) bundleDone(name string, c *update.Cycle, err error) {
	switch {
	case err != nil && d.ctx.Err() != nil:
		// Stopped: the next start's settle finishes the cycle, from the
		// stage, which stays for it; the plan, already accepted, would be
		// refused as a repeat, so the bundle is marked here.
		d.queueMove(moveReq{name: name, sub: spoolFail, reason: "the agent stopped during its cycle; the cycle resumes at the next start: " + err.Error()})
	case err != nil:
		d.queueMove(moveReq{name: name, sub: spoolFail, reason: err.Error(), clearStage: true})
	case c == nil:
		d.queueMove(moveReq{name: name, sub: spoolDone, reason: "nothing to apply: every package is already up to date", clearStage: true})
	default:
		d.queueMove(moveReq{name: name, sub: spoolDone, reason: fmt.Sprintf("cycle %d %s", c.ID, c.Phase), clearStage: true})
	}
}

// move0 does one queued move, in the worker.
func (s *spoolFS) move0(m moveReq) moved {
	sp, err := s.open()
	if err != nil {
		return moved{name: m.name, sub: m.sub, reason: m.reason, err: err}
	}
	defer sp.Close()
	mv := s.move(sp, m.name, m.sub, m.reason)
	if m.clearStage {
		if err := s.clearStage(); err != nil {
			s.log.Warn("spool stage not emptied", "dir", s.stage, "err", err)
		}
	}
	return mv
}

// stagePath is where a state dir keeps the spool's stage.
func stagePath(stateDir string) string { return filepath.Join(stateDir, stageDir) }
