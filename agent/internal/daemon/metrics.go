package daemon

import (
	"github.com/rpmfleet/rpmfleet/agent/internal/metrics"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// metricsState is what the textfile counts across status changes.
type metricsState struct {
	cycles     map[string]uint64
	lastCycle  int
	snap       metrics.Snapshot
	lastFailed bool
}

// writeMetrics writes [metrics] textfile for a changed status: cycles are
// counted once each, when the newest cycle is seen final.
func (d *daemon) writeMetrics(st protocol.DeviceState) {
	path := d.cfg.Metrics.Textfile
	if path == "" {
		return
	}
	m := &d.metrics
	if m.cycles == nil {
		m.cycles = map[string]uint64{}
	}
	if c := st.LastCycle; c != nil && c.ID != m.lastCycle {
		var ph update.Phase
		if ph.UnmarshalText([]byte(c.Phase)) == nil && ph.Final() {
			m.lastCycle = c.ID
			outcome := map[update.Phase]string{update.Committed: "success", update.RolledBack: "rolled-back", update.Failed: "failed"}[ph]
			m.cycles[outcome]++
			if ph == update.Committed {
				m.snap.LastSuccess = d.now()
			}
		}
	}
	sev := map[string]string{}
	if d.plan != nil {
		for _, pa := range d.plan.Plan.Advisories {
			sev[pa.ID] = pa.Severity
		}
	}
	pending := map[string]int{}
	for _, p := range st.Pending {
		s := sev[p.ID]
		if s == "" {
			s = "None"
		}
		pending[s]++
	}
	n := st.Notices
	m.snap.Cycles = m.cycles
	m.snap.Pending = pending
	m.snap.NoticesRefused = map[string]uint64{
		"malformed": n.Malformed, "unknown_key": n.UnknownKey, "bad_signature": n.BadSignature, "wrong_kind": n.WrongKind,
		"wrong_device": n.WrongDevice, "expired": n.Expired, "not_yet_valid": n.NotYetValid, "replayed": n.Replayed, "other": n.Other,
	}
	m.snap.Queued = st.Queued
	if err := metrics.Write(path, m.snap); err != nil {
		if !m.lastFailed {
			d.log.Warn("metrics textfile not written", "path", path, "err", err)
		}
		m.lastFailed = true
		return
	}
	m.lastFailed = false
}
