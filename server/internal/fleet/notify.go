package fleet

// Webhook notifications (issue 14). An event is noticed where it happens
// (an import or a report newly exposing devices, a cycle rolled back, a
// rollout paused; the silent-device job for silences), made into one
// signed body per webhook that asked for it, and stored in the outbox
// (store.Deliveries) before anything is sent. RunWebhooks, on every
// server, claims what is due and sends it, one attempt at a time,
// recording each; a failed attempt is due again after a backoff that
// doubles, until the attempts run out. A server that stops mid-way leaves
// its deliveries pending, and they go out after the restart (or from
// another replica once the claim's lease lapses).

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/notify"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Webhook is one receiver the service notifies.
type Webhook struct {
	// Name names it in logs and delivery records; the URL is never
	// logged (it may hold a token).
	Name   string
	URL    string
	Secret []byte
	// Events are the protocol.Webhook* types it gets.
	Events []string
	// MinSeverity is the least severity of an exposure it is told of.
	MinSeverity advisory.Severity
	// SilentAfter is its silence threshold.
	SilentAfter time.Duration
}

func (w Webhook) wants(event string) bool { return slices.Contains(w.Events, event) }

// WebhookOptions tune delivery; zero values take the defaults.
type WebhookOptions struct {
	// Attempts and Backoff: a delivery is tried Attempts times
	// (notify.DefaultAttempts), the second Backoff after the first
	// (notify.DefaultBackoff), each following wait twice the one before.
	Attempts int
	Backoff  time.Duration
	// Timeout bounds one attempt (notify.DefaultTimeout).
	Timeout time.Duration
	// Poll is how often the outbox is looked at when nothing woke it
	// (DefaultWebhookPoll): for retries, and deliveries another replica
	// queued.
	Poll time.Duration
	// Sender is the notify sender's options (its transport, its clock);
	// its Attempts is always 1, the outbox doing the retries.
	Sender notify.Options
}

// Webhook timings.
const (
	// DefaultWebhookPoll is WebhookOptions.Poll's default.
	DefaultWebhookPoll = time.Second
	// DeliveryRetention is how long a finished delivery is listed.
	DeliveryRetention = 30 * 24 * time.Hour
	// claimBatch bounds the deliveries one claim takes; sendConcurrency
	// how many are sent at once.
	claimBatch      = 16
	sendConcurrency = 4
)

// notifier is the service's webhook state.
type notifier struct {
	hooks  []Webhook
	o      WebhookOptions
	sender *notify.Sender
	// wake tells RunWebhooks something was queued.
	wake chan struct{}
}

func newNotifier(hooks []Webhook, o WebhookOptions) *notifier {
	if o.Attempts <= 0 {
		o.Attempts = notify.DefaultAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = notify.DefaultBackoff
	}
	if o.Timeout <= 0 {
		o.Timeout = notify.DefaultTimeout
	}
	if o.Poll <= 0 {
		o.Poll = DefaultWebhookPoll
	}
	so := o.Sender
	so.Attempts, so.Timeout = 1, o.Timeout
	return &notifier{hooks: hooks, o: o, sender: notify.NewSender(so), wake: make(chan struct{}, 1)}
}

// wants reports whether any webhook gets event.
func (n *notifier) wants(event string) bool {
	for _, w := range n.hooks {
		if w.wants(event) {
			return true
		}
	}
	return false
}

// minSeverity is the least MinSeverity of the webhooks getting exposure
// events.
func (n *notifier) minSeverity() advisory.Severity {
	least, found := advisory.Severity(0), false
	for _, w := range n.hooks {
		if w.wants(protocol.WebhookExposure) && (!found || w.MinSeverity < least) {
			least, found = w.MinSeverity, true
		}
	}
	return least
}

// queue stores one delivery of an event to every webhook that wants it:
// build makes the webhook's event (its event field; false to send it
// nothing). key names what the event is about, for the outbox's dedup. A
// store failure is logged: the report or import that caused the event
// stands.
func (s *Service) queue(ctx context.Context, event, key string, build func(w Webhook) (protocol.WebhookEvent, bool)) {
	n := s.notes
	if n == nil || !n.wants(event) {
		return
	}
	now := s.opts.Now().UTC()
	eventID := newID() + newID()
	var ds []store.Delivery
	for _, w := range n.hooks {
		if !w.wants(event) {
			continue
		}
		ev, ok := build(w)
		if !ok {
			continue
		}
		ev.Version, ev.Type, ev.ID, ev.Time = protocol.WebhookVersion, event, eventID, now
		body, err := json.Marshal(ev)
		if err != nil {
			s.log.Error("webhook event not made", "webhook", w.Name, "event", event, "err", err)
			continue
		}
		ds = append(ds, store.Delivery{ID: newID() + newID(), Webhook: w.Name, Event: event, EventID: eventID, Key: key,
			Body: body, Created: now, Next: now})
	}
	if len(ds) == 0 {
		return
	}
	added, err := s.st.AddDeliveries(context.WithoutCancel(ctx), ds)
	if err != nil {
		s.log.Error("webhook event not queued", "event", event, "key", key, "err", err)
		return
	}
	s.log.Info("webhook event queued", "event", event, "id", eventID, "deliveries", added)
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// RunWebhooks sends the outbox's due deliveries until ctx ends. Every
// server runs it; the claims keep two from sending one delivery.
func (s *Service) RunWebhooks(ctx context.Context) {
	n := s.notes
	if n == nil {
		return
	}
	t := time.NewTicker(n.o.Poll)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			sent, err := s.sendDue(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("webhook outbox not read", "err", err)
				}
				break
			}
			if sent < claimBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-t.C:
		}
	}
}

// sendDue claims a batch of due deliveries and sends them, recording each
// attempt; it returns how many it claimed.
func (s *Service) sendDue(ctx context.Context) (int, error) {
	n := s.notes
	now := s.opts.Now().UTC()
	// The lease outlasts an attempt, so a claim lapses only when its
	// server died.
	ds, err := s.st.ClaimDeliveries(ctx, now, now.Add(2*n.o.Timeout+30*time.Second), claimBatch)
	if err != nil {
		return 0, err
	}
	sem := make(chan struct{}, sendConcurrency)
	var wg sync.WaitGroup
	for _, d := range ds {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.attempt(ctx, d)
		})
	}
	wg.Wait()
	return len(ds), nil
}

// attempt sends d once and records what came of it.
func (s *Service) attempt(ctx context.Context, d store.Delivery) {
	n := s.notes
	i := slices.IndexFunc(n.hooks, func(w Webhook) bool { return w.Name == d.Webhook })
	d.Attempts++
	if i < 0 {
		d.Status, d.LastError = protocol.DeliveryFailed, "webhook "+d.Webhook+" is no longer configured"
	} else {
		w := n.hooks[i]
		start := time.Now()
		r := n.sender.Deliver(ctx, notify.Webhook{URL: w.URL, Secret: w.Secret}, d.Event, d.ID, d.Body)
		defer func() {
			result := map[string]string{protocol.DeliveryDelivered: "delivered", protocol.DeliveryPending: "retrying", protocol.DeliveryFailed: "failed"}[d.Status]
			s.observe(Event{Op: OpWebhook, Took: time.Since(start), Kind: d.Event, Result: result})
		}()
		d.HTTPStatus, d.LastError = r.Status, r.LastError
		switch {
		case r.Delivered:
			d.Status = protocol.DeliveryDelivered
		case d.Attempts >= n.o.Attempts:
			d.Status = protocol.DeliveryFailed
		default:
			d.Status = protocol.DeliveryPending
		}
	}
	now := s.opts.Now().UTC()
	d.Updated, d.Next = now, time.Time{}
	if d.Status == protocol.DeliveryPending {
		d.Next = now.Add(n.o.Backoff << min(d.Attempts-1, 20))
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.st.RecordDelivery(rctx, d); err != nil {
		// The claim lapses and the delivery is tried again: sent twice
		// rather than lost. Receivers drop repeats by the event id.
		s.log.Error("webhook delivery not recorded", "webhook", d.Webhook, "delivery", d.ID, "err", err)
		return
	}
	lvl := "webhook delivered"
	switch d.Status {
	case protocol.DeliveryFailed:
		s.log.Warn("webhook delivery failed", "webhook", d.Webhook, "delivery", d.ID, "event", d.Event, "attempts", d.Attempts, "err", d.LastError)
		return
	case protocol.DeliveryPending:
		lvl = "webhook attempt failed; retrying"
	}
	s.log.Info(lvl, "webhook", d.Webhook, "delivery", d.ID, "event", d.Event, "attempts", d.Attempts, "status", d.HTTPStatus, "err", d.LastError)
}

// Deliveries lists the outbox for the admin API.
func (s *Service) Deliveries(ctx context.Context, f store.DeliveryFilter) ([]protocol.WebhookDelivery, error) {
	ds, err := s.st.ListDeliveries(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]protocol.WebhookDelivery, 0, len(ds))
	for _, d := range ds {
		w := protocol.WebhookDelivery{ID: d.ID, Webhook: d.Webhook, Event: d.Event, EventID: d.EventID, Status: d.Status,
			Attempts: d.Attempts, HTTPStatus: d.HTTPStatus, LastError: d.LastError, Created: d.Created, Updated: d.Updated}
		if d.Status == protocol.DeliveryPending && !d.Next.IsZero() {
			next := d.Next
			w.Next = &next
		}
		out = append(out, w)
	}
	return out, nil
}

// exposures are device and advisory pairs.
type exposures []protocol.NewExposure

// event is the exposure event of the pairs at or above min, most severe
// first, at most protocol.MaxWebhookExposures listed.
func (xs exposures) event(cause string, least advisory.Severity) (protocol.WebhookEvent, bool) {
	var keep []protocol.NewExposure
	for _, x := range xs {
		if sev, _ := advisory.ParseSeverity(x.Severity); sev >= least {
			keep = append(keep, x)
		}
	}
	if len(keep) == 0 {
		return protocol.WebhookEvent{}, false
	}
	slices.SortStableFunc(keep, func(a, b protocol.NewExposure) int {
		sa, _ := advisory.ParseSeverity(a.Severity)
		sb, _ := advisory.ParseSeverity(b.Severity)
		return cmp.Or(cmp.Compare(sb, sa), cmp.Compare(a.Advisory, b.Advisory), cmp.Compare(a.Device, b.Device))
	})
	total := len(keep)
	return protocol.WebhookEvent{Exposure: &protocol.ExposureEvent{Cause: cause, Exposures: keep[:min(total, protocol.MaxWebhookExposures)], Total: total}}, true
}

// exposedBefore is what the device is exposed to before a report that
// changes its packages; nil when no webhook wants exposures or the report
// changes no package.
func (s *Service) exposedBefore(ctx context.Context, deviceID string, r *protocol.Report) map[string]bool {
	if s.notes == nil || !s.notes.wants(protocol.WebhookExposure) {
		return nil
	}
	inv := r.Inventory
	if inv.Kind != protocol.InventoryFull && len(inv.Added) == 0 && len(inv.Removed) == 0 {
		return nil
	}
	plan, err := s.st.DevicePlan(ctx, deviceID)
	if err != nil {
		s.log.Warn("exposure before the report not read; no exposure event for it", "id", deviceID, "err", err)
		return nil
	}
	before := map[string]bool{}
	for _, a := range plan {
		before[a.ID] = true
	}
	return before
}

// notifyReport queues what a stored report tells: the advisories the
// device became exposed to (before is exposedBefore's answer) and its
// rolled-back cycles.
func (s *Service) notifyReport(ctx context.Context, deviceID, name string, r *protocol.Report, before map[string]bool) {
	if s.notes == nil {
		return
	}
	if before != nil {
		plan, err := s.st.DevicePlan(ctx, deviceID)
		if err != nil {
			s.log.Warn("exposure after the report not read; no exposure event for it", "id", deviceID, "err", err)
		}
		var xs exposures
		for _, a := range plan {
			if !before[a.ID] {
				x := protocol.NewExposure{Device: name, DeviceID: deviceID, Advisory: a.ID, Severity: a.Severity}
				if v, ok := s.advs[a.ID]; ok && len(v) > 0 {
					x.Title, x.CVEs = v[0].Title, v[0].CVEs
				}
				xs = append(xs, x)
			}
		}
		if len(xs) > 0 {
			s.queue(ctx, protocol.WebhookExposure, "exposure:report:"+deviceID+":"+r.ID, func(w Webhook) (protocol.WebhookEvent, bool) {
				return xs.event("report", w.MinSeverity)
			})
		}
	}
	for i, c := range r.Cycles {
		if c.Outcome != protocol.OutcomeRolledBack {
			continue
		}
		key := fmt.Sprintf("rollback:%s:%d", deviceID, c.ID)
		if c.ID == 0 {
			key = fmt.Sprintf("rollback:%s:%s:%d", deviceID, r.ID, i)
		}
		ev := protocol.RollbackEvent{Device: name, DeviceID: deviceID, Cycle: c.ID, Advisories: c.Advisories, Error: c.Error,
			Started: c.Started, Finished: c.Finished}
		s.queue(ctx, protocol.WebhookRollback, key, func(Webhook) (protocol.WebhookEvent, bool) {
			return protocol.WebhookEvent{Rollback: &ev}, true
		})
	}
}

// exposedTo returns, for each advisory of ids at or above min, the
// devices exposed to it (affected or failed) by name.
func (s *Service) exposedTo(ctx context.Context, ids []string, least advisory.Severity) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, id := range ids {
		a, err := s.st.Advisory(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			out[id] = map[string]bool{}
			continue
		}
		if err != nil {
			s.log.Warn("exposure of an advisory not read; no exposure event for it", "advisory", id, "err", err)
			continue
		}
		if sev, _ := advisory.ParseSeverity(a.Severity); sev < least {
			continue
		}
		m := map[string]bool{}
		for _, d := range a.Devices {
			if d.Status == protocol.StatusAffected || d.Status == protocol.StatusFailed {
				m[d.Device] = true
			}
		}
		out[id] = m
	}
	return out
}

// notifyImport queues the exposure event of an import: the devices each
// changed advisory exposes now that it did not before.
func (s *Service) notifyImport(ctx context.Context, before map[string]map[string]bool, eventKey string) {
	if len(before) == 0 {
		return
	}
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range before {
			if !yield(id) {
				return
			}
		}
	})
	after := s.exposedTo(ctx, ids, s.notes.minSeverity())
	var xs exposures
	for _, id := range ids {
		// The most severe of the id's variants speaks for it, as the
		// store's advisory row does.
		var title, sev string
		var cves []string
		if vs := s.advs[id]; len(vs) > 0 {
			top := slices.MaxFunc(vs, func(a, b store.Variant) int { return cmp.Compare(a.Severity, b.Severity) })
			title, cves, sev = top.Title, top.CVEs, top.Severity.String()
		}
		for _, dev := range slices.Sorted(func(yield func(string) bool) {
			for d := range after[id] {
				if !yield(d) {
					return
				}
			}
		}) {
			if !before[id][dev] {
				xs = append(xs, protocol.NewExposure{Device: dev, Advisory: id, Severity: sev, Title: title, CVEs: cves})
			}
		}
	}
	if len(xs) > 0 {
		s.queue(ctx, protocol.WebhookExposure, eventKey, func(w Webhook) (protocol.WebhookEvent, bool) {
			return xs.event("import", w.MinSeverity)
		})
	}
}

// notifyPaused queues the event of a rollout just paused.
func (s *Service) notifyPaused(ctx context.Context, r store.Rollout, automatic bool) {
	ev := protocol.RolloutPausedEvent{Rollout: r.ID, Group: r.Group, Advisories: r.Advisories, Phase: r.Phase + 1,
		Automatic: automatic, Reason: r.Reason}
	s.queue(ctx, protocol.WebhookRolloutPaused, fmt.Sprintf("paused:%s:%d", r.ID, r.Updated.UnixMicro()), func(Webhook) (protocol.WebhookEvent, bool) {
		return protocol.WebhookEvent{RolloutPaused: &ev}, true
	})
}

// maxSilentPerLook bounds the devices one look at the silent ones reads
// per webhook.
const maxSilentPerLook = 10000

// RunWebhookJobs is the leader's part of the notifications, on every tick
// until ctx ends: the devices that went silent since the last tick are
// notified, and finished deliveries older than DeliveryRetention
// forgotten (once an hour). The first look covers two ticks back: a
// silence that began while no server ran is not notified.
func (s *Service) RunWebhookJobs(ctx context.Context, tick <-chan time.Time, every time.Duration) {
	if s.notes == nil {
		return
	}
	prev := s.opts.Now().UTC().Add(-2 * every)
	var pruned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		now := s.opts.Now().UTC()
		s.LookSilent(ctx, prev, now)
		prev = now
		if now.Sub(pruned) >= time.Hour {
			if n, err := s.st.PruneDeliveries(ctx, now.Add(-DeliveryRetention)); err != nil {
				s.log.Warn("old webhook deliveries not pruned", "err", err)
			} else if n > 0 {
				s.log.Info("old webhook deliveries pruned", "count", n)
			}
			pruned = now
		}
	}
}

// LookSilent queues, for each webhook getting silent events, the devices
// whose silence crossed its threshold in (from, to].
func (s *Service) LookSilent(ctx context.Context, from, to time.Time) {
	for _, w := range s.notes.hooks {
		if !w.wants(protocol.WebhookSilent) {
			continue
		}
		ds, err := s.st.SilentDevices(ctx, from.Add(-w.SilentAfter), to.Add(-w.SilentAfter), maxSilentPerLook)
		if err != nil {
			s.log.Warn("silent devices not read", "webhook", w.Name, "err", err)
			continue
		}
		if len(ds) == 0 {
			continue
		}
		if len(ds) == maxSilentPerLook {
			s.log.Warn("more devices went silent at once than one event counts", "webhook", w.Name, "counted", len(ds))
		}
		ev := protocol.SilentEvent{Threshold: w.SilentAfter.String(), Total: len(ds)}
		for _, d := range ds[:min(len(ds), protocol.MaxWebhookExposures)] {
			ev.Devices = append(ev.Devices, protocol.SilentDevice{Device: d.Name, DeviceID: d.ID, LastSeen: d.LastSeen, Enrolled: d.Enrolled})
		}
		name := w.Name
		s.queue(ctx, protocol.WebhookSilent, fmt.Sprintf("silent:%d", to.UnixMicro()), func(w Webhook) (protocol.WebhookEvent, bool) {
			return protocol.WebhookEvent{Silent: &ev}, w.Name == name
		})
	}
}
