package daemon

import (
	"slices"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// cycleKind is what a job of the cycle worker is for.
type cycleKind int

const (
	// cycleApply applies advisories of the plan.
	cycleApply cycleKind = iota
	// cycleSettle settles, at start, a cycle a crash or a stop left half
	// done; it is no apply of the daemon's own, so the status does not
	// say applying.
	cycleSettle
	// cycleBundle applies a spool bundle (spool.go).
	cycleBundle
	// cyclePrefetch downloads and verifies only (download.go).
	cyclePrefetch
)

// cycleJob says what a running cycle is for.
type cycleJob struct {
	kind cycleKind
	// label names the job in the logs and the status: the advisories, or
	// the bundle.
	label  string
	bundle string // the spool bundle's name, for a spool cycle
	ids    []string
}

type cycleResult struct {
	job cycleJob
	res *update.Result
	// prefetched is a download-only job's answer.
	prefetched *update.Prefetched
	err        error
}

// updateOptions fills what every cycle shares from the configuration.
func (d *daemon) updateOptions(o update.Options) update.Options {
	c := d.cfg
	o.StateDir, o.Root = c.StateDir, c.Root
	o.HealthChecks = c.Policy.HealthChecks
	// The device's own, whatever the server's policy says
	// (policy.Narrow): every cycle (an apply, a bundle, the settle of a
	// cycle a crash cut) prunes kernels to the same limit.
	o.InstallonlyLimit = installonlyLimit(&c.Policy)
	o.Log = d.o.Log
	keys := map[string]bool{}
	for _, r := range c.Repos {
		for _, k := range r.GPGKeys {
			if !keys[k] {
				keys[k] = true
				o.Keys = append(o.Keys, k)
			}
		}
	}
	// A spool cycle brings its own repository; the others use the
	// configured ones, or the device's .repo files when there are none.
	if o.Repos == nil {
		for _, r := range c.Repos {
			if r.Enabled {
				o.Repos = append(o.Repos, r.BaseURL)
			}
		}
	}
	return o
}

// startCycle runs update.Run in a worker.
func (d *daemon) startCycle(job cycleJob, o update.Options) {
	o = d.updateOptions(o)
	d.running = &job
	if job.kind != cycleSettle {
		d.status.State = protocol.StateApplying
		d.status.Applying = job.label
		d.log.Info("update cycle starting", "for", job.label)
	}
	ctx := d.ctx
	go func() {
		res, err := update.Run(ctx, o)
		d.cycleDone <- cycleResult{job: job, res: res, err: err}
	}()
}

// cycleFinished records a cycle's outcome, queues its report and moves on.
func (d *daemon) cycleFinished(r cycleResult) {
	if r.job.kind == cyclePrefetch {
		d.prefetchFinished(r)
		return
	}
	d.running = nil
	d.status.State = protocol.StateIdle
	d.status.Applying = ""
	var c *update.Cycle
	if r.res != nil {
		c = r.res.Cycle
		if c == nil {
			c = r.res.Recovered
		}
	}
	if c != nil {
		s := &protocol.CycleSummary{ID: c.ID, Phase: c.Phase.String(), Error: c.Error, Reboot: c.Reboot.Needed}
		for _, a := range c.Advisories {
			s.Advisories = append(s.Advisories, a.ID)
		}
		d.status.LastCycle = s
		if c.Phase == update.Committed {
			// What the cycle applied is no longer pending, whatever the
			// plan held says until the next fetch.
			d.status.Pending = slices.DeleteFunc(d.status.Pending, func(p protocol.PendingAdvisory) bool { return slices.Contains(s.Advisories, p.ID) })
		}
	}
	switch {
	case r.err != nil && d.ctx.Err() != nil:
		d.log.Info("update cycle stopped; it resumes at the next start", "for", r.job.label, "err", r.err)
	case r.err != nil:
		d.log.Warn("update cycle failed", "for", r.job.label, "err", r.err)
	case c != nil:
		d.log.Info("update cycle finished", "for", r.job.label, "cycle", c.ID, "phase", c.Phase, "reboot_needed", c.Reboot.Needed)
	}
	if r.err == nil && c == nil && r.job.kind == cycleApply && len(r.job.ids) == 0 {
		d.lookedForPlain() // allowlist.go
		return
	}
	if r.job.bundle != "" {
		d.bundleDone(r.job.bundle, c, r.err)
	}
	// The cycle's report carries its results and the inventory change it
	// made, so the rpm database watcher has nothing left to say about it.
	d.debounceT.Stop()
	d.enqueue("cycle report")
	if c != nil && c.Phase == update.Committed && c.Reboot.Needed && d.currentPolicy().Reboot == policy.RebootWhenNeeded {
		d.scheduleReboot()
	}
	if d.ctx.Err() != nil {
		return
	}
	if d.standalone && r.job.kind != cycleSettle && (r.err != nil || c == nil || c.Phase != update.Committed) {
		d.retryAfter = d.now().Add(d.cfg.Poll.Interval)
	}
	if d.standalone && (d.checkAfter || r.job.kind != cycleSettle) {
		// What is pending changed with what the cycle installed.
		d.checkAfter = false
		d.planDirty = false
		d.fetch()
	}
	if d.planDirty {
		d.planDirty = false
		d.act()
	}
	d.spoolWant = true // bundles that came during the cycle
}

// enqueue queues what changed. A failure (the rpm database read while rpm
// writes it) is tried again after the debounce delay: nothing is marked
// reported until it is queued.
// Retries double their wait, up to 1024 times the delay, so a database
// that stays unreadable is not read in a tight loop.
func (d *daemon) enqueue(what string) {
	if d.rep == nil {
		// Standalone: the rpm database changed (a cycle, or dnf); what is
		// pending may have too.
		if what != "cycle report" {
			d.fetch()
		}
		return
	}
	if _, err := d.rep.Enqueue(false); err != nil {
		d.enqueueFailures++
		wait := d.o.Debounce << min(d.enqueueFailures-1, 10)
		d.log.Warn("report not queued; trying again", "what", what, "retry_in", wait, "err", err)
		d.debounceT.Reset(wait)
		return
	}
	d.enqueueFailures = 0
}
