package daemon

import (
	"slices"
	"strings"

	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// Download mode: the advisories the policy holds at "download" are
// fetched and verified into the state dir by update.Prefetch, in the
// cycle worker (one job at a time, as a cycle), so that the apply that
// follows (a window under a wider policy, a forced apply) fetches no
// package again. The same set of advisories is fetched once per daemon
// run: prefetchedFor remembers it, and a failed prefetch is tried again
// at the next plan.

// prefetch starts a download-only job for ids (and the allow-listed
// names plain, allowlist.go) unless the same set was fetched already.
func (d *daemon) prefetch(ids []string, pins map[rpmver.Key]string, plain []string) {
	ids = slices.Sorted(slices.Values(ids))
	key := strings.Join(ids, ",")
	if len(plain) > 0 {
		key = cycleLabel(key, plain)
	}
	if key == d.prefetchedFor {
		return
	}
	o := d.updateOptions(update.Options{Select: update.Selection{IDs: ids, Packages: plain}, Pins: pins})
	job := cycleJob{kind: cyclePrefetch, label: key, ids: ids}
	d.running = &job
	d.status.State = protocol.StateDownloading
	d.log.Info("prefetch starting", "for", key)
	ctx := d.ctx
	go func() {
		p, err := update.Prefetch(ctx, o)
		d.cycleDone <- cycleResult{job: job, prefetched: p, err: err}
	}()
}

// prefetchFinished records a download-only job's outcome and moves on.
func (d *daemon) prefetchFinished(r cycleResult) {
	d.running = nil
	d.status.State = protocol.StateIdle
	switch {
	case r.err != nil && d.ctx.Err() != nil:
		return
	case r.err != nil:
		d.log.Warn("prefetch failed", "for", r.job.label, "err", r.err)
	default:
		d.prefetchedFor = r.job.label
		n := 0
		if r.prefetched != nil && r.prefetched.Plan != nil {
			n = len(r.prefetched.Plan.Packages)
		}
		d.log.Info("prefetch finished; packages verified and kept for the apply", "for", r.job.label, "packages", n)
		for i, p := range d.status.Pending {
			if p.Action == "download" && slices.Contains(r.job.ids, p.ID) {
				d.status.Pending[i].Reason = strings.TrimSuffix(p.Reason, "; downloading") + "; downloaded and verified"
			}
		}
	}
	if d.planDirty {
		d.planDirty = false
		d.act()
	}
}
