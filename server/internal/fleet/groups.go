package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Labels and groups (issue 13). A device carries labels: those of its
// enrolment token, then whatever an operator sets. A group is a named
// label selector; every query that lists devices or counts them (devices,
// cve, advisories, summary) can be narrowed to a Selection: labels, a
// group, or both.

// Selection narrows a query to the devices carrying every label of
// Labels and selected by Group (when set).
type Selection struct {
	Labels map[string]string
	Group  string
}

// Empty reports whether the selection selects every device.
func (sel Selection) Empty() bool { return len(sel.Labels) == 0 && sel.Group == "" }

// GroupCacheTTL is how long the groups a plan is gated with are kept in
// memory: every plan needs them all, and a fleet polls often. A change made
// through this server is seen at once; one made through another server
// sharing the database, within GroupCacheTTL.
const GroupCacheTTL = 2 * time.Second

// groupCache holds every group for the plans' gate.
type groupCache struct {
	// mu guards groups and read.
	mu     sync.Mutex
	groups []store.Group
	read   time.Time // zero: read them again
}

// cachedGroups returns every group, read again from the store when the
// copy is older than GroupCacheTTL (wall-clock: the injectable clock is the
// policy's, not the cache's).
func (s *Service) cachedGroups(ctx context.Context) ([]store.Group, error) {
	s.gc.mu.Lock()
	defer s.gc.mu.Unlock()
	if !s.gc.read.IsZero() && time.Since(s.gc.read) < GroupCacheTTL {
		return s.gc.groups, nil
	}
	gs, err := s.st.Groups(ctx)
	if err != nil {
		return nil, err
	}
	s.gc.groups, s.gc.read = gs, time.Now()
	return gs, nil
}

// forgetGroups drops the cached groups after a change.
func (s *Service) forgetGroups() {
	s.gc.mu.Lock()
	s.gc.read = time.Time{}
	s.gc.mu.Unlock()
}

// Resolve turns a selection into the labels a device must carry: the
// group's selector and the labels, which must agree. An unknown group is
// store.ErrNotFound; labels that contradict the group's selector select
// nothing, which ok false says.
func (s *Service) Resolve(ctx context.Context, sel Selection) (labels map[string]string, ok bool, err error) {
	if err := protocol.ValidateLabels(sel.Labels); err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	labels = maps.Clone(sel.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if sel.Group == "" {
		return labels, true, nil
	}
	g, err := s.st.Group(ctx, sel.Group)
	if err != nil {
		return nil, false, err
	}
	for k, v := range g.Selector {
		if w, there := labels[k]; there && w != v {
			return nil, false, nil
		}
		labels[k] = v
	}
	return labels, true, nil
}

// SetDeviceLabels replaces the labels of the device called name.
func (s *Service) SetDeviceLabels(ctx context.Context, name string, labels map[string]string) (protocol.DeviceSummary, error) {
	if err := protocol.ValidateLabels(labels); err != nil {
		return protocol.DeviceSummary{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if _, err := s.st.SetDeviceLabels(ctx, name, labels); err != nil {
		return protocol.DeviceSummary{}, err
	}
	d, err := s.st.Device(ctx, name)
	if err != nil {
		return protocol.DeviceSummary{}, err
	}
	s.log.Info("device labels set", "device", name, "labels", len(labels))
	// Its groups, and so its policy and rollouts, may have changed.
	s.nudge(ctx, []store.DeviceRef{{ID: d.ID, Name: d.Name}})
	return d.DeviceSummary, nil
}

// PutGroup creates a group or replaces its selector.
func (s *Service) PutGroup(ctx context.Context, name string, req protocol.GroupRequest) (protocol.Group, error) {
	if err := protocol.ValidateName(name); err != nil {
		return protocol.Group{}, fmt.Errorf("%w: group %w", ErrBadRequest, err)
	}
	if err := protocol.ValidateLabels(req.Selector); err != nil {
		return protocol.Group{}, fmt.Errorf("%w: selector: %w", ErrBadRequest, err)
	}
	gs, err := s.st.Groups(ctx)
	if err != nil {
		return protocol.Group{}, err
	}
	if len(gs) >= protocol.MaxGroups && !slices.ContainsFunc(gs, func(g store.Group) bool { return g.Name == name }) {
		return protocol.Group{}, fmt.Errorf("%w: name: %d groups already, at most %d allowed", ErrBadRequest, len(gs), protocol.MaxGroups)
	}
	now := s.opts.Now().UTC()
	if err := s.st.PutGroup(ctx, store.Group{Name: name, Selector: req.Selector, Created: now, Updated: now}); err != nil {
		return protocol.Group{}, err
	}
	s.forgetGroups()
	s.nudgeGroup(ctx, req.Selector)
	return s.Group(ctx, name)
}

// SetGroupPolicy attaches a policy to a group (nil detaches it).
func (s *Service) SetGroupPolicy(ctx context.Context, name string, p *protocol.Policy) (protocol.Group, error) {
	if p != nil {
		if err := p.Validate(); err != nil {
			return protocol.Group{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
	}
	if err := s.st.SetGroupPolicy(ctx, name, p, s.opts.Now().UTC()); err != nil {
		return protocol.Group{}, err
	}
	s.forgetGroups()
	if g, err := s.st.Group(ctx, name); err == nil {
		s.nudgeGroup(ctx, g.Selector)
	}
	return s.Group(ctx, name)
}

// Group returns a group with how many devices it selects now.
func (s *Service) Group(ctx context.Context, name string) (protocol.Group, error) {
	g, err := s.st.Group(ctx, name)
	if err != nil {
		return protocol.Group{}, err
	}
	return s.groupInfo(ctx, g)
}

func (s *Service) groupInfo(ctx context.Context, g store.Group) (protocol.Group, error) {
	ds, err := s.st.Devices(ctx, store.DeviceFilter{Labels: g.Selector})
	if err != nil {
		return protocol.Group{}, err
	}
	sel := g.Selector
	if sel == nil {
		sel = map[string]string{}
	}
	return protocol.Group{Name: g.Name, Selector: sel, Policy: g.Policy, Devices: len(ds), Created: g.Created, Updated: g.Updated}, nil
}

// Groups lists every group.
func (s *Service) Groups(ctx context.Context) ([]protocol.Group, error) {
	gs, err := s.st.Groups(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]protocol.Group, 0, len(gs))
	for _, g := range gs {
		pg, err := s.groupInfo(ctx, g)
		if err != nil {
			return nil, err
		}
		out = append(out, pg)
	}
	return out, nil
}

// DeleteGroup deletes a group no running or paused rollout goes to.
func (s *Service) DeleteGroup(ctx context.Context, name string) error {
	err := s.st.DeleteGroup(ctx, name)
	s.forgetGroups()
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return err
}

// Devices lists the devices of a selection (and exposed to a CVE, when
// exposedTo is set).
func (s *Service) Devices(ctx context.Context, sel Selection, exposedTo string) ([]protocol.DeviceSummary, error) {
	labels, ok, err := s.Resolve(ctx, sel)
	if err != nil || !ok {
		return []protocol.DeviceSummary{}, err
	}
	return s.st.Devices(ctx, store.DeviceFilter{Labels: labels, ExposedTo: exposedTo})
}

// names returns the names of the selection's devices.
func (s *Service) names(ctx context.Context, sel Selection) (map[string]bool, error) {
	ds, err := s.Devices(ctx, sel, "")
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ds))
	for _, d := range ds {
		out[d.Name] = true
	}
	return out, nil
}

// CVE answers the CVE question for a selection's devices only: the whole
// answer (or a page of it, limit > 0) with the other devices left out.
func (s *Service) CVE(ctx context.Context, cve string, sel Selection, after string, limit int) (protocol.CVEResponse, error) {
	var resp protocol.CVEResponse
	var err error
	if limit > 0 {
		resp, err = s.st.CVEPage(ctx, cve, after, limit)
	} else {
		resp, err = s.st.CVE(ctx, cve)
	}
	if err != nil || sel.Empty() {
		return resp, err
	}
	keep, err := s.names(ctx, sel)
	if err != nil {
		return resp, err
	}
	resp.Exposed = slices.DeleteFunc(resp.Exposed, func(x protocol.CVEExposure) bool { return !keep[x.Device] })
	resp.Patched = slices.DeleteFunc(resp.Patched, func(p protocol.CVEPatched) bool { return !keep[p.Device] })
	return resp, nil
}

// Advisories lists advisories at least as severe as min, counted over a
// selection's devices (those touching none of them left out) or over the
// fleet, each with the releases its id was imported for (Ecosystems).
func (s *Service) Advisories(ctx context.Context, min advisory.Severity, sel Selection) ([]protocol.AdvisorySummary, error) {
	as, err := s.advisories(ctx, min, sel)
	if err != nil {
		return nil, err
	}
	// Each id's releases, from the variants the index holds (an id
	// another replica just imported shows none until it reloads).
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := range as {
		for _, v := range s.advs[as[i].ID] {
			as[i].Ecosystems = append(as[i].Ecosystems, v.Ecosystem)
		}
	}
	return as, nil
}

// advisories is Advisories without the releases: the store's answer.
func (s *Service) advisories(ctx context.Context, min advisory.Severity, sel Selection) ([]protocol.AdvisorySummary, error) {
	if sel.Empty() {
		return s.st.Advisories(ctx, min)
	}
	labels, ok, err := s.Resolve(ctx, sel)
	if err != nil || !ok {
		return []protocol.AdvisorySummary{}, err
	}
	return s.st.AdvisoriesFor(ctx, min, labels)
}

// Summary is the fleet, or a selection of it, at a glance.
func (s *Service) Summary(ctx context.Context, sel Selection) (protocol.Summary, error) {
	if sel.Empty() {
		return s.st.Summary(ctx)
	}
	sum := protocol.Summary{ExposedBySeverity: map[string]int{}}
	ds, err := s.Devices(ctx, sel, "")
	if err != nil {
		return sum, err
	}
	sum.Devices = len(ds)
	for _, d := range ds {
		if d.Affected == 0 {
			sum.FullyPatched++
			continue
		}
		sum.ExposedBySeverity[d.WorstSeverity]++
	}
	if sum.Devices > 0 {
		sum.FullyPatchedShare = float64(sum.FullyPatched) / float64(sum.Devices)
	}
	as, err := s.advisories(ctx, advisory.Critical, sel)
	if err != nil {
		return sum, err
	}
	for i := range as {
		a := &as[i]
		if !strings.EqualFold(a.Severity, "Critical") || a.Affected+a.Failed == 0 {
			continue
		}
		if o := sum.OldestUnpatchedCritical; o == nil || a.Issued.Before(o.Issued) || a.Issued.Equal(o.Issued) && a.ID < o.ID {
			sum.OldestUnpatchedCritical = a
		}
	}
	return sum, nil
}

// Approve approves an advisory by hand, for every group, now.
func (s *Service) Approve(ctx context.Context, id, by string) (protocol.Approval, error) {
	s.mu.RLock()
	_, known := s.advs[id]
	s.mu.RUnlock()
	if !known {
		return protocol.Approval{}, fmt.Errorf("%w: advisory: unknown advisory %q", ErrBadRequest, id)
	}
	a := protocol.Approval{Advisory: id, Approved: s.opts.Now().UTC(), By: by}
	if err := s.st.Approve(ctx, a); err != nil {
		return protocol.Approval{}, err
	}
	s.log.Info("advisory approved", "advisory", id, "by", by)
	// What the advisory means to the plans changed: the agents fetch
	// theirs, as after an import that changed it.
	s.publishFeed(1, []string{id})
	return a, nil
}

// nudgeGroup tells the devices a selector selects to check their plan
// now: a group's policy or selector changed what their plans hold. Without
// a broker they find out at their next poll.
func (s *Service) nudgeGroup(ctx context.Context, selector map[string]string) {
	if s.opts.Publisher == nil || s.opts.Signer == nil {
		return
	}
	ds, err := s.st.Devices(ctx, store.DeviceFilter{Labels: selector})
	if err != nil {
		s.log.Warn("group's devices not nudged; they find the change when they poll", "err", err)
		return
	}
	refs := make([]store.DeviceRef, 0, len(ds))
	for _, d := range ds {
		if d.Revoked == nil {
			refs = append(refs, store.DeviceRef{ID: d.ID, Name: d.Name})
		}
	}
	s.nudge(ctx, refs)
}

// approvedAt says whether a policy approves an advisory at now: by hand,
// or approve-after-days days after it was issued. No policy, or one with
// no approve-after-days, approves everything.
func approvedAt(p *protocol.Policy, a protocol.PlanAdvisory, byHand bool, issued time.Time, now time.Time) bool {
	if byHand || p == nil || len(p.ApproveAfterDays) == 0 {
		return true
	}
	r, ok := protocol.SeverityRank(a.Severity)
	if !ok {
		return false
	}
	days, ok := p.ApproveAfterDays[[]string{"None", "Low", "Moderate", "Important", "Critical"}[r]]
	if !ok || issued.IsZero() {
		return false
	}
	return !now.Before(issued.Add(time.Duration(days) * 24 * time.Hour))
}

// selects reports whether a selector selects a device with these labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if w, ok := labels[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// PolicyFor picks the policy of a device with these labels among groups:
// the policy-holding group whose selector selects it with the most labels,
// ties broken by the smaller name. Nil when none does.
func PolicyFor(groups []store.Group, labels map[string]string) *protocol.Policy {
	var best *store.Group
	for i := range groups {
		g := &groups[i]
		if g.Policy == nil || !selects(g.Selector, labels) {
			continue
		}
		if best == nil || len(g.Selector) > len(best.Selector) || len(g.Selector) == len(best.Selector) && g.Name < best.Name {
			best = g
		}
	}
	if best == nil {
		return nil
	}
	p := *best.Policy
	p.Group = best.Name
	return &p
}

// gatePlan turns the advisories affecting a device into its plan: those a
// rollout holds back from it, and (under a group policy) those the policy
// filters out or has not approved yet, are left out, and the policy goes
// with the plan for the agent.
//
// A rollout releases its advisories to its devices phase by phase: while
// it is running, paused or aborted, a device of its group gets them only
// once a phase reached it; a completed one released them to the whole
// group. When several rollouts take one advisory to a device's groups,
// the newest decides. An advisory a rollout released to the device is in
// its plan whatever the policy says: the rollout was the approval. The
// policy's allow-list (plain updates, allowlist.go) is left out for a
// device a running or paused rollout to one of its groups has not reached.
func (s *Service) gatePlan(ctx context.Context, deviceID string, advs []protocol.PlanAdvisory) (protocol.Plan, error) {
	ids := make([]string, len(advs))
	for i, a := range advs {
		ids[i] = a.ID
	}
	g, err := s.st.PlanGate(ctx, deviceID, ids)
	if err != nil {
		return protocol.Plan{}, err
	}
	groups, err := s.cachedGroups(ctx)
	if err != nil {
		return protocol.Plan{}, err
	}
	member := map[string]bool{}
	for _, gr := range groups {
		if selects(gr.Selector, g.Labels) {
			member[gr.Name] = true
		}
	}
	pol := PolicyFor(groups, g.Labels)
	now := s.opts.Now()
	out := make([]protocol.PlanAdvisory, 0, len(advs))
	for _, a := range advs {
		decided, released := false, false
		for _, r := range g.Rollouts {
			if !member[r.Group] || !slices.Contains(r.Advisories, a.ID) {
				continue
			}
			decided, released = true, r.Released || r.State == protocol.RolloutCompleted
			break
		}
		switch {
		case decided && !released:
			continue
		case decided:
		case pol == nil:
		case pol.SecurityOnly && a.Type != string(advisory.Security):
			continue
		case pol.MinSeverity != "" && !atLeast(a.Severity, pol.MinSeverity):
			continue
		case !approvedAt(pol, a, g.Approved[a.ID], g.Issued[a.ID], now):
			continue
		}
		out = append(out, a)
	}
	plan := protocol.Plan{Advisories: out}
	if pol != nil {
		pol.ApproveAfterDays = nil // the server's business, not the agent's
		if len(pol.AllowUpdates) > 0 {
			hold, err := s.holdAllowList(ctx, deviceID, member)
			if err != nil {
				return protocol.Plan{}, err
			}
			if hold {
				pol.AllowUpdates = nil
			}
		}
		plan.Policy = pol
	}
	return plan, nil
}

func atLeast(sev, min string) bool {
	a, ok1 := protocol.SeverityRank(sev)
	b, ok2 := protocol.SeverityRank(min)
	return ok1 && ok2 && a >= b
}
