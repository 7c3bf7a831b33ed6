package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Rollouts (issue 13; protocol/rollout.go says what they mean to an
// admin). A rollout's state lives in the store, so a restarted server
// takes it up where it was. Step judges every running rollout once;
// RunRollouts calls it on every tick of its clock. Every move is written
// with the time the rollout was last updated as a guard
// (store.UpdateRollout), so two servers sharing a database, or a step and
// an admin's pause, never both move it: the later one gets ErrConflict and
// the next tick judges again.

// Bounds on what a device's cycle error (its own words, up to a report's
// size) may add to a rollout's view and its pause reason.
const (
	maxCycleError    = 512
	maxReasonError   = 200
	maxReasonDevices = 10
)

// clip cuts s to at most n bytes, on a character boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// DefaultPhases are the phases of a rollout whose request names none.
var DefaultPhases = []string{"1", "10%", "50%", "100%"}

// CreateRollout starts a rollout of req.Advisory (or of every security
// advisory affecting a device of the group) to req.Group: its first phase
// is released at once, and each device of it is told to check its plan.
func (s *Service) CreateRollout(ctx context.Context, req protocol.RolloutRequest, by string) (protocol.Rollout, error) {
	phases, err := parsePhases(req.Phases)
	if err != nil {
		return protocol.Rollout{}, err
	}
	soak := protocol.DefaultRolloutSoak
	if req.Soak != "" {
		soak, err = time.ParseDuration(req.Soak)
		if err != nil || soak < 0 {
			return protocol.Rollout{}, fmt.Errorf("%w: soak: %q is not a duration of 0 or more", ErrBadRequest, req.Soak)
		}
	}
	if req.MaxFailureRate < 0 || req.MaxFailureRate > 1 || math.IsNaN(req.MaxFailureRate) {
		return protocol.Rollout{}, fmt.Errorf("%w: max_failure_rate: %v is not from 0 to 1", ErrBadRequest, req.MaxFailureRate)
	}
	g, err := s.st.Group(ctx, req.Group)
	if errors.Is(err, store.ErrNotFound) {
		return protocol.Rollout{}, fmt.Errorf("%w: group: unknown group %q", ErrBadRequest, req.Group)
	}
	if err != nil {
		return protocol.Rollout{}, err
	}
	var advs []string
	switch req.Advisory {
	case "":
		return protocol.Rollout{}, fmt.Errorf("%w: advisory: empty; name an advisory or %s", ErrBadRequest, protocol.AllPendingSecurity)
	case protocol.AllPendingSecurity:
		as, err := s.st.AdvisoriesFor(ctx, advisory.SeverityNone, g.Selector)
		if err != nil {
			return protocol.Rollout{}, err
		}
		for _, a := range as {
			if a.Type == string(advisory.Security) && a.Affected+a.Failed > 0 {
				advs = append(advs, a.ID)
			}
		}
		if len(advs) > protocol.MaxRolloutAdvisories {
			return protocol.Rollout{}, fmt.Errorf("%w: advisory: %d pending security advisories, at most %d in one rollout", ErrBadRequest, len(advs), protocol.MaxRolloutAdvisories)
		}
	default:
		s.mu.RLock()
		_, known := s.advs[req.Advisory]
		s.mu.RUnlock()
		if !known {
			return protocol.Rollout{}, fmt.Errorf("%w: advisory: unknown advisory %q", ErrBadRequest, req.Advisory)
		}
		advs = []string{req.Advisory}
	}
	if len(advs) == 0 {
		return protocol.Rollout{}, fmt.Errorf("%w: advisory: no security advisory affects a device of group %s", ErrBadRequest, g.Name)
	}
	slices.Sort(advs)
	exposed, err := s.st.Exposed(ctx, g.Selector, advs)
	if err != nil {
		return protocol.Rollout{}, err
	}
	if len(exposed) == 0 {
		return protocol.Rollout{}, fmt.Errorf("%w: group: no device of group %s is exposed to %s", ErrBadRequest, g.Name, strings.Join(advs, ", "))
	}
	now := s.opts.Now().UTC()
	r := store.Rollout{ID: newID(), Group: g.Name, Advisories: advs, Phases: phases, Soak: soak, MaxFailure: req.MaxFailureRate,
		State: protocol.RolloutRunning, Total: len(exposed), PhaseStarted: now, CreatedBy: by, Created: now, Updated: now}
	first := pick(r.ID, exposed, nil, target(phases[0], r.Total))
	if err := s.st.CreateRollout(ctx, r, ids(first)); err != nil {
		return protocol.Rollout{}, err
	}
	s.log.Info("rollout created", "rollout", r.ID, "group", r.Group, "advisories", len(advs), "devices", r.Total, "first", len(first))
	s.nudge(ctx, first)
	return s.RolloutView(ctx, r.ID)
}

// parsePhases checks the phases: the first a count or a percentage, the
// others rising percentages, the last made 100%.
func parsePhases(in []string) ([]string, error) {
	if len(in) == 0 {
		return slices.Clone(DefaultPhases), nil
	}
	if len(in) > protocol.MaxRolloutPhases {
		return nil, fmt.Errorf("%w: phases: %d phases, at most %d allowed", ErrBadRequest, len(in), protocol.MaxRolloutPhases)
	}
	out := make([]string, 0, len(in)+1)
	last := 0.0
	for i, p := range in {
		p = strings.TrimSpace(p)
		field := fmt.Sprintf("phases[%d]", i)
		if pct, ok := strings.CutSuffix(p, "%"); ok {
			v, err := strconv.ParseFloat(pct, 64)
			if err != nil || v <= 0 || v > 100 || math.IsNaN(v) {
				return nil, fmt.Errorf("%w: %s: %q is not a percentage above 0 and at most 100", ErrBadRequest, field, p)
			}
			if v <= last {
				return nil, fmt.Errorf("%w: %s: %q does not rise above the phase before", ErrBadRequest, field, p)
			}
			last = v
		} else {
			n, err := strconv.Atoi(p)
			if i > 0 {
				return nil, fmt.Errorf("%w: %s: %q: only the first phase may be a count; give a percentage", ErrBadRequest, field, p)
			}
			if err != nil || n < 1 {
				return nil, fmt.Errorf("%w: %s: %q is neither a count of at least 1 nor a percentage", ErrBadRequest, field, p)
			}
		}
		out = append(out, p)
	}
	if last < 100 {
		out = append(out, "100%")
	}
	return out, nil
}

// target is how many devices a phase reaches in all, of total.
func target(phase string, total int) int {
	if pct, ok := strings.CutSuffix(phase, "%"); ok {
		v, _ := strconv.ParseFloat(pct, 64)
		return min(total, max(1, int(math.Ceil(float64(total)*v/100-1e-9))))
	}
	n, _ := strconv.Atoi(phase)
	return min(total, n)
}

// pick chooses up to want-len(have) devices of exposed not in have, in an
// order fixed by the rollout's id (a hash), so a phase is spread over the
// fleet and the same on every server.
func pick(rolloutID string, exposed []store.DeviceRef, have map[string]bool, want int) []store.DeviceRef {
	n := want - len(have)
	if n <= 0 {
		return nil
	}
	type keyed struct {
		key [sha256.Size]byte
		d   store.DeviceRef
	}
	var cand []keyed
	for _, d := range exposed {
		if !have[d.ID] {
			cand = append(cand, keyed{sha256.Sum256([]byte(rolloutID + "\x00" + d.ID)), d})
		}
	}
	slices.SortFunc(cand, func(a, b keyed) int { return bytes.Compare(a.key[:], b.key[:]) })
	out := make([]store.DeviceRef, 0, min(n, len(cand)))
	for _, c := range cand[:min(n, len(cand))] {
		out = append(out, c.d)
	}
	return out
}

func ids(ds []store.DeviceRef) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// nudge tells devices to check their plan now; without a broker they find
// it at their next poll.
func (s *Service) nudge(ctx context.Context, ds []store.DeviceRef) {
	if s.opts.Publisher == nil || s.opts.Signer == nil {
		return
	}
	for _, d := range ds {
		if _, err := s.Command(ctx, d.Name, protocol.Command{Verb: protocol.CommandCheck}); err != nil {
			s.log.Warn("rollout could not nudge a device", "device", d.Name, "err", err)
		}
	}
}

// RolloutView returns a rollout with its devices and their results.
func (s *Service) RolloutView(ctx context.Context, id string) (protocol.Rollout, error) {
	r, err := s.st.Rollout(ctx, id)
	if err != nil {
		return protocol.Rollout{}, err
	}
	ev, err := s.judge(ctx, r)
	if errors.Is(err, store.ErrNotFound) && (r.State == protocol.RolloutAborted || r.State == protocol.RolloutCompleted) {
		// An ended rollout outlives its group, deleted since: it is
		// shown as stored, without its devices' results, which were
		// judged against the group's selector.
		v := view(r)
		v.GroupDeleted = true
		return v, nil
	}
	if err != nil {
		return protocol.Rollout{}, err
	}
	v := view(r)
	v.Devices = ev.devices
	return v, nil
}

// Rollouts lists every rollout, newest first, without their devices.
func (s *Service) Rollouts(ctx context.Context) ([]protocol.Rollout, error) {
	rs, err := s.st.Rollouts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]protocol.Rollout, 0, len(rs))
	for _, r := range rs {
		out = append(out, view(r))
	}
	return out, nil
}

func view(r store.Rollout) protocol.Rollout {
	return protocol.Rollout{ID: r.ID, Group: r.Group, Advisories: r.Advisories, Phases: r.Phases, Soak: r.Soak.String(),
		MaxFailureRate: r.MaxFailure, State: r.State, Phase: r.Phase, Total: r.Total, PhaseStarted: r.PhaseStarted,
		Reason: r.Reason, CreatedBy: r.CreatedBy, Created: r.Created, Updated: r.Updated}
}

// evaluation is what a rollout's current phase shows.
type evaluation struct {
	devices []protocol.RolloutDevice
	members map[string]bool
	// phase counts the current phase's devices, failed those failing, and
	// done those with a result.
	phase, failed, done int
	failures            []string
	exposed             []store.DeviceRef
	group               store.Group
}

// judge reads where every device of the rollout stands: the last cycle
// touching the rollout's advisories that it reported since its phase
// started (or since the current phase was resumed, for that phase), and
// whether it is still exposed.
func (s *Service) judge(ctx context.Context, r store.Rollout) (evaluation, error) {
	var ev evaluation
	g, err := s.st.Group(ctx, r.Group)
	if err != nil {
		return ev, fmt.Errorf("rollout %s: %w", r.ID, err)
	}
	ev.group = g
	members, err := s.st.RolloutMembers(ctx, r.ID)
	if err != nil {
		return ev, err
	}
	ev.exposed, err = s.st.Exposed(ctx, g.Selector, r.Advisories)
	if err != nil {
		return ev, err
	}
	exposed := map[string]bool{}
	for _, d := range ev.exposed {
		exposed[d.ID] = true
	}
	since := r.Created
	var memberIDs []string
	ev.members = map[string]bool{}
	for _, m := range members {
		memberIDs = append(memberIDs, m.DeviceID)
		ev.members[m.DeviceID] = true
	}
	cycles, err := s.st.Cycles(ctx, memberIDs, since)
	if err != nil {
		return ev, err
	}
	type last struct {
		at  time.Time
		cyc protocol.CycleResult
	}
	// Allow-listed plain updates ride along with the rollout (a device
	// gets them once a phase reaches it: allowlist.go): a cycle of only
	// those that failed counts against the phase as a failed advisory
	// cycle does, so a kernel that fails its health check pauses the
	// rollout too. One that applied says nothing of the rollout's
	// advisories.
	latest := map[string]last{}
	for _, c := range cycles {
		ours := slices.ContainsFunc(c.Cycle.Advisories, func(a string) bool { return slices.Contains(r.Advisories, a) })
		plainFailed := len(c.Cycle.Advisories) == 0 && c.Cycle.Outcome != protocol.OutcomeApplied
		if !ours && !plainFailed {
			continue
		}
		latest[c.DeviceID] = last{c.Received, c.Cycle}
	}
	for _, m := range members {
		d := protocol.RolloutDevice{Device: m.Name, Phase: m.Phase, Result: protocol.ResultPending}
		l, ok := latest[m.DeviceID]
		// The current phase counts only what was reported since it
		// started or was resumed: a failure an admin resumed past is
		// judged again.
		if ok && m.Phase == r.Phase && l.at.Before(r.PhaseStarted) {
			ok = false
		}
		switch {
		case ok && l.cyc.Outcome == protocol.OutcomeApplied:
			d.Result = protocol.ResultApplied
		case ok:
			d.Result, d.Error = protocol.ResultFailed, clip(l.cyc.Error, maxCycleError)
			if d.Error == "" {
				d.Error = string(l.cyc.Outcome)
			}
		case !exposed[m.DeviceID]:
			d.Result = protocol.ResultPatched
		}
		if m.Phase == r.Phase {
			ev.phase++
			if d.Result != protocol.ResultPending {
				ev.done++
			}
			if d.Result == protocol.ResultFailed {
				ev.failed++
				if len(ev.failures) < maxReasonDevices {
					ev.failures = append(ev.failures, fmt.Sprintf("%s: %s", m.Name, clip(d.Error, maxReasonError)))
				}
			}
		}
		ev.devices = append(ev.devices, d)
	}
	return ev, nil
}

// Step judges every running rollout once: a phase whose failure rate is
// above its rollout's threshold pauses it; one whose devices all have a
// result and whose soak has passed starts the next phase (or completes
// the rollout).
func (s *Service) Step(ctx context.Context) error {
	rs, err := s.st.Rollouts(ctx, protocol.RolloutRunning)
	if err != nil {
		return fmt.Errorf("rollout step: %w", err)
	}
	var errs []error
	for _, r := range rs {
		if err := s.stepOne(ctx, r); err != nil && !errors.Is(err, store.ErrConflict) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) stepOne(ctx context.Context, r store.Rollout) error {
	ev, err := s.judge(ctx, r)
	if err != nil {
		return err
	}
	now := s.opts.Now().UTC()
	if ev.failed > 0 && float64(ev.failed)/float64(max(ev.phase, 1)) > r.MaxFailure {
		reason := fmt.Sprintf("phase %d: %d of %d devices failed (above %.0f%%): %s", r.Phase+1, ev.failed, ev.phase,
			100*r.MaxFailure, strings.Join(ev.failures, "; "))
		if ev.failed > len(ev.failures) {
			reason += fmt.Sprintf("; and %d more", ev.failed-len(ev.failures))
		}
		return s.move(ctx, r, protocol.RolloutPaused, r.Phase, reason, now, nil, "rollout.auto-pause")
	}
	if ev.done < ev.phase || now.Before(r.PhaseStarted.Add(r.Soak)) {
		return nil
	}
	if r.Phase+1 >= len(r.Phases) {
		return s.move(ctx, r, protocol.RolloutCompleted, r.Phase, "every phase done", now, nil, "rollout.complete")
	}
	next := r.Phase + 1
	add := pick(r.ID, ev.exposed, ev.members, target(r.Phases[next], r.Total))
	return s.move(ctx, r, protocol.RolloutRunning, next, "", now, add, "rollout.phase")
}

// move writes a rollout's new state, adds devices to its phase, records
// the move in the audit log when the server made it (action != ""), and
// nudges the added devices.
func (s *Service) move(ctx context.Context, r store.Rollout, state protocol.RolloutState, phase int, reason string, now time.Time, add []store.DeviceRef, action string) error {
	prev := r.Updated
	if !now.After(prev) {
		now = prev.Add(time.Microsecond)
	}
	if phase != r.Phase || state == protocol.RolloutRunning && r.State != protocol.RolloutRunning {
		r.PhaseStarted = now
	}
	r.State, r.Phase, r.Reason, r.Updated = state, phase, reason, now
	if err := s.st.UpdateRollout(ctx, r, prev, ids(add)); err != nil {
		return err
	}
	s.log.Info("rollout moved", "rollout", r.ID, "state", state, "phase", phase+1, "added", len(add), "reason", reason)
	if state == protocol.RolloutPaused {
		s.notifyPaused(ctx, r, action != "")
	}
	if action != "" {
		detail := fmt.Sprintf("state %s, phase %d of %d", state, phase+1, len(r.Phases))
		if len(add) > 0 {
			detail += fmt.Sprintf(", %d devices added", len(add))
		}
		if reason != "" {
			detail += ": " + reason
		}
		s.Audit(ctx, protocol.AuditEntry{Time: now, ActorID: protocol.ActorSystem, Actor: protocol.ActorSystem, Action: action,
			Target: r.ID, Detail: detail})
	}
	s.nudge(ctx, add)
	return nil
}

// ActRollout applies an admin's action to a rollout: pause, resume,
// abort or approve (start the next phase now).
func (s *Service) ActRollout(ctx context.Context, id, action string) (protocol.Rollout, error) {
	r, err := s.st.Rollout(ctx, id)
	if err != nil {
		return protocol.Rollout{}, err
	}
	now := s.opts.Now().UTC()
	bad := func() (protocol.Rollout, error) {
		return protocol.Rollout{}, fmt.Errorf("%w: action: cannot %s a rollout that is %s", ErrBadRequest, action, r.State)
	}
	switch action {
	case protocol.RolloutPause:
		if r.State != protocol.RolloutRunning {
			return bad()
		}
		err = s.move(ctx, r, protocol.RolloutPaused, r.Phase, "paused by an admin", now, nil, "")
	case protocol.RolloutResume:
		if r.State != protocol.RolloutPaused {
			return bad()
		}
		err = s.move(ctx, r, protocol.RolloutRunning, r.Phase, "", now, nil, "")
		if err == nil {
			// The devices of the phase check their plan again: one
			// whose cycle failed tries again (the agent's own attempt
			// limit still holds).
			var cur []store.DeviceRef
			ms, merr := s.st.RolloutMembers(ctx, r.ID)
			if merr != nil {
				return protocol.Rollout{}, merr
			}
			for _, m := range ms {
				if m.Phase == r.Phase {
					cur = append(cur, store.DeviceRef{ID: m.DeviceID, Name: m.Name})
				}
			}
			s.nudge(ctx, cur)
		}
	case protocol.RolloutAbort:
		if r.State != protocol.RolloutRunning && r.State != protocol.RolloutPaused {
			return bad()
		}
		err = s.move(ctx, r, protocol.RolloutAborted, r.Phase, "aborted by an admin", now, nil, "")
	case protocol.RolloutApprove:
		if r.State != protocol.RolloutRunning && r.State != protocol.RolloutPaused {
			return bad()
		}
		if r.Phase+1 >= len(r.Phases) {
			err = s.move(ctx, r, protocol.RolloutCompleted, r.Phase, "approved past its last phase by an admin", now, nil, "")
			break
		}
		var ev evaluation
		if ev, err = s.judge(ctx, r); err != nil {
			return protocol.Rollout{}, err
		}
		next := r.Phase + 1
		add := pick(r.ID, ev.exposed, ev.members, target(r.Phases[next], r.Total))
		err = s.move(ctx, r, protocol.RolloutRunning, next, "", now, add, "")
	default:
		return protocol.Rollout{}, fmt.Errorf("%w: action: %q is not pause, resume, abort or approve", ErrBadRequest, action)
	}
	if errors.Is(err, store.ErrConflict) {
		return protocol.Rollout{}, fmt.Errorf("%w: %w; try again", ErrBadRequest, err)
	}
	if err != nil {
		return protocol.Rollout{}, err
	}
	return s.RolloutView(ctx, id)
}

// RunRollouts calls Step on every tick until ctx ends; a failed step is
// logged and tried again at the next tick. It is run by the rollouts
// leader, so it starts when a replica takes the lead: it first nudges
// again the devices still pending in each running rollout's phase, since
// a leader killed just after a step may have died before its nudges went
// out, and a device whose MQTT session is up polls only rarely.
func (s *Service) RunRollouts(ctx context.Context, tick <-chan time.Time) {
	if err := s.NudgePending(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("rollout nudge failed", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if err := s.Step(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("rollout step failed", "err", err)
			}
		}
	}
}

// NudgePending sends a check command to every device of a running
// rollout's current phase that has no result yet. A check is harmless
// twice: the device fetches its plan and finds it unchanged.
func (s *Service) NudgePending(ctx context.Context) error {
	rs, err := s.st.Rollouts(ctx, protocol.RolloutRunning)
	if err != nil {
		return fmt.Errorf("rollout nudge: %w", err)
	}
	for _, r := range rs {
		ev, err := s.judge(ctx, r)
		if err != nil {
			return fmt.Errorf("rollout nudge: %w", err)
		}
		var pending []store.DeviceRef
		for _, d := range ev.devices {
			if d.Phase == r.Phase && d.Result == protocol.ResultPending {
				pending = append(pending, store.DeviceRef{Name: d.Device})
			}
		}
		if len(pending) > 0 {
			s.log.Info("rollout devices nudged again", "rollout", r.ID, "phase", r.Phase+1, "devices", len(pending))
			s.nudge(ctx, pending)
		}
	}
	return nil
}
