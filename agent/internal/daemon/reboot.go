package daemon

import (
	"context"
	"os/exec"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
)

// rebootStep is where a needed reboot is; rebootT fires for the step.
type rebootStep int

const (
	// rebootNone: no reboot is scheduled.
	rebootNone rebootStep = iota
	// rebootWaitWindow: waiting for the next maintenance window to open;
	// then rebootAskSlot, or rebootWarned without a reboot lock.
	rebootWaitWindow
	// rebootWarned: users are warned; the reboot follows the grace
	// period (rebootlock.go's rebootNow), then rebootNone.
	rebootWarned
	// rebootAskSlot: asking the FleetLock server for a reboot slot
	// (rebootlock.go); then rebootWarned, or back to rebootWaitWindow
	// when the window closed meanwhile.
	rebootAskSlot
)

// scheduleReboot reboots inside a maintenance window: a broadcast warning
// now and the reboot after the grace period, or, outside every window, the
// same at the next window's start. Without any window the agent never
// reboots on its own (policy.RebootAllowed).
func (d *daemon) scheduleReboot() {
	now := d.now()
	pol := d.currentPolicy()
	if pol.Reboot != policy.RebootWhenNeeded {
		d.rebootStage, d.status.RebootAt = rebootNone, time.Time{}
		d.rebootT.Stop()
		d.rebootCancel()
		return
	}
	if pol.RebootAllowed(now) {
		d.rebootDue() // slot, warning, then the timer (rebootlock.go)
		return
	}
	next := pol.NextWindow(now)
	if next.IsZero() {
		d.log.Warn("reboot needed, but no maintenance window is set: left to the admin")
		return
	}
	d.log.Info("reboot needed: scheduled for the maintenance window", "at", next)
	d.rebootStage = rebootWaitWindow
	d.status.RebootAt = next
	d.rebootT.Stop()
	d.rebootT.Reset(next.Sub(now))
}

func (d *daemon) rebootTimer() {
	switch d.rebootStage {
	case rebootWaitWindow:
		d.scheduleReboot()
	case rebootWarned:
		if d.running != nil {
			d.rebootT.Reset(time.Minute) // not in the middle of a cycle
			return
		}
		d.rebootNow()
	}
}

// command runs argv (plus args) in the background, logging a failure.
func (d *daemon) command(argv []string, args ...string) {
	if len(argv) == 0 {
		return
	}
	argv = append(append([]string(nil), argv...), args...)
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			d.log.Error("command failed", "command", argv[0], "err", err, "output", strings.TrimSpace(string(out)))
		}
	}()
}
