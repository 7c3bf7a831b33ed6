package daemon

import (
	"slices"
	"strings"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// act decides, with the policy (policy.DecidePlan), what to do with each
// advisory of the plan, and starts one cycle for those to apply now, or a
// prefetch for those to download.
func (d *daemon) act() {
	if d.plan == nil {
		return
	}
	if d.running != nil {
		d.planDirty = true
		return
	}
	now := d.now()
	pol := d.currentPolicy()
	dec := policy.DecidePlan(&d.plan.Plan, pol, now, policy.PlanOptions{Force: d.force, HoldUntil: d.retryAfter})
	d.force = nil
	var pending []protocol.PendingAdvisory
	for _, h := range dec.Held {
		if h.Action == policy.Skip.String() {
			d.log.Debug("advisory skipped", "advisory", h.ID, "reason", h.Reason)
			continue
		}
		if slices.Contains(dec.Download, h.ID) {
			h.Reason += "; downloading"
		}
		pending = append(pending, protocol.PendingAdvisory{ID: h.ID, Action: h.Action, Reason: h.Reason, Excluded: h.Excluded})
		d.log.Debug("advisory not applied now", "advisory", h.ID, "action", h.Action, "reason", h.Reason)
	}
	d.status.Pending = pending
	if len(pending) > 0 {
		// One line per plan; each advisory's reason is at debug level.
		d.log.Info("advisories held back", "held", len(pending), "applying", len(dec.Apply))
	}
	if dec.Waiting {
		if next := pol.NextWindow(now); !next.IsZero() {
			d.windowT.Stop()
			d.windowT.Reset(next.Sub(now))
			d.log.Info("waiting for the maintenance window", "opens", next)
		}
	}
	plain := plainUpdates(pol, now, d.retryAfter) // allowlist.go
	if len(dec.Apply) == 0 && len(plain) == 0 {
		if dl := downloadUpdates(pol); len(dec.Download) > 0 || len(dl) > 0 {
			d.prefetch(dec.Download, dec.DownloadPins, dl)
		}
		return
	}
	d.startCycle(cycleJob{kind: cycleApply, label: cycleLabel(strings.Join(dec.Apply, ","), plain), ids: dec.Apply}, update.Options{
		Select: update.Selection{IDs: dec.Apply, Packages: plain}, Pins: dec.Pins,
	})
}

// windowOpen acts on the plan held when it is still valid, else fetches.
func (d *daemon) windowOpen() {
	// Standalone, a check costs a repomd.xml and makes sure the packages
	// pinned are still what the repositories offer.
	if !d.standalone && d.plan != nil && d.now().Before(d.plan.Expires) {
		d.act()
		return
	}
	d.fetch()
}
