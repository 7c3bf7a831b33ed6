package fleet

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/notify"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// receiver is a webhook receiver on loopback that checks each request's
// signature as a real one would (notify.Verify) and keeps what it got.
type receiver struct {
	srv    *httptest.Server
	secret []byte

	mu sync.Mutex // guards the fields below
	// fail answers 503 to this many more requests.
	fail int
	got  []received
	bad  []string
}

type received struct {
	event, delivery string
	body            protocol.WebhookEvent
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{secret: []byte(secret)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := notify.Verify(r.secret, req.Header.Get(notify.SignatureHeader), body, time.Now(), notify.DefaultTolerance); err != nil {
			r.bad = append(r.bad, err.Error())
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.fail > 0 {
			r.fail--
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var ev protocol.WebhookEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			r.bad = append(r.bad, err.Error())
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		r.got = append(r.got, received{event: req.Header.Get(notify.EventHeader), delivery: req.Header.Get(notify.DeliveryHeader), body: ev})
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// take returns and forgets what arrived, failing the test on a bad
// signature.
func (r *receiver) take(t *testing.T) []received {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Errorf("the receiver refused requests: %v", r.bad)
	}
	got := r.got
	r.got, r.bad = nil, nil
	return got
}

func (r *receiver) hook(name string, events ...string) Webhook {
	return Webhook{Name: name, URL: r.srv.URL + "/hook", Secret: r.secret, Events: events, MinSeverity: advisory.Important, SilentAfter: time.Hour}
}

// newNotifyFleet is an opsFleet whose service notifies hooks.
func newNotifyFleet(t *testing.T, hooks ...Webhook) *opsFleet {
	f := newOpsFleet(t)
	f.opts.Webhooks = hooks
	f.opts.WebhookOptions = WebhookOptions{Backoff: time.Minute, Attempts: 3, Timeout: 5 * time.Second}
	var err error
	if f.svc, err = New(t.Context(), f.st, f.opts); err != nil {
		t.Fatal(err)
	}
	return f
}

// send sends whatever is due now, as RunWebhooks does.
func send(t *testing.T, s *Service) int {
	t.Helper()
	n, err := s.sendDue(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var allEvents = []string{protocol.WebhookExposure, protocol.WebhookRollback, protocol.WebhookSilent, protocol.WebhookRolloutPaused}

// TestWebhookEvents: each of the four events is noticed where it happens,
// reaches the webhooks that asked for it signed, once, and at or above
// the webhook's severity; a webhook that asked for rollbacks only gets
// nothing else.
func TestWebhookEvents(t *testing.T) {
	ops := newReceiver(t, "ops-secret-0123456789")
	chat := newReceiver(t, "chat-secret-0123456789")
	f := newNotifyFleet(t, ops.hook("ops", allEvents...), chat.hook("chat", protocol.WebhookRollback))
	ctx := t.Context()
	if _, err := f.svc.Import(ctx, []advisory.Advisory{
		opsAdvisory("RFSA-I", advisory.Security, advisory.Important, "imp-lib", day0),
		opsAdvisory("RFSA-L", advisory.Security, advisory.Low, "bug-lib", day0)}); err != nil {
		t.Fatal(err)
	}
	if n := send(t, f.svc); n != 0 {
		t.Errorf("an import exposing no device queued %d deliveries", n)
	}

	// A device's first inventory exposes it to both; only the Important
	// one is at ops's severity.
	f.enroll(t, "pi-a", map[string]string{"site": "field"})
	send(t, f.svc)
	got := ops.take(t)
	if len(got) != 1 || got[0].event != protocol.WebhookExposure || got[0].body.Exposure == nil {
		t.Fatalf("ops got %+v after pi-a's first report; want one exposure event", got)
	}
	ev := got[0].body
	if ev.Version != protocol.WebhookVersion || ev.Type != protocol.WebhookExposure || ev.Exposure.Cause != "report" || ev.Exposure.Total != 1 ||
		!reflect.DeepEqual(ev.Exposure.Exposures[0], protocol.NewExposure{Device: "pi-a", DeviceID: f.ids["pi-a"], Advisory: "RFSA-I", Severity: "Important", Title: "RFSA-I"}) {
		t.Errorf("exposure event = %+v %+v; want pi-a newly exposed to RFSA-I only", ev, ev.Exposure)
	}
	if c := chat.take(t); len(c) != 0 {
		t.Errorf("chat, rollbacks only, got %+v", c)
	}
	// The same packages again: nothing new.
	f.reportPkgs(t, "pi-a", "r-again", opsPkgs, nil)
	f.enroll(t, "pi-b", map[string]string{"site": "field"})
	send(t, f.svc)
	if got := ops.take(t); len(got) != 1 || got[0].body.Exposure.Exposures[0].Device != "pi-b" {
		t.Errorf("after pi-a's unchanged report and pi-b's first: %+v; want pi-b's exposure only", got)
	}

	// A Critical advisory arrives: one import event names both devices.
	if _, err := f.svc.Import(ctx, []advisory.Advisory{opsAdvisory("RFSA-C", advisory.Security, advisory.Critical, "crit-lib", day0)}); err != nil {
		t.Fatal(err)
	}
	send(t, f.svc)
	got = ops.take(t)
	if len(got) != 1 || got[0].body.Exposure == nil || got[0].body.Exposure.Cause != "import" || got[0].body.Exposure.Total != 2 {
		t.Fatalf("after importing RFSA-C: %+v; want one import event for two devices", got)
	}
	for i, dev := range []string{"pi-a", "pi-b"} {
		if x := got[0].body.Exposure.Exposures[i]; x.Device != dev || x.Advisory != "RFSA-C" || x.Severity != "Critical" {
			t.Errorf("import exposure %d = %+v; want %s to RFSA-C, Critical", i, x, dev)
		}
	}

	// A rollout of RFSA-C: its canary rolls back, the rollout pauses.
	if _, err := f.svc.PutGroup(ctx, "field", protocol.GroupRequest{Selector: map[string]string{"site": "field"}}); err != nil {
		t.Fatal(err)
	}
	r, err := f.svc.CreateRollout(ctx, protocol.RolloutRequest{Advisory: "RFSA-C", Group: "field", Phases: []string{"1"}, Soak: "1h"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	canary := r.Devices[0].Device
	f.clock.Add(time.Minute)
	rb := protocol.CycleResult{ID: 7, Advisories: []string{"RFSA-C"}, Outcome: protocol.OutcomeRolledBack, Error: "health check demo-health: exit status 1",
		Started: day0, Finished: day0.Add(time.Minute)}
	f.reportPkgs(t, canary, "r-rb", opsPkgs, []protocol.CycleResult{rb})
	// The agent sends the same cycle again under a new report id (killed
	// between queueing and noting it): still one rollback event.
	f.reportPkgs(t, canary, "r-rb-again", opsPkgs, []protocol.CycleResult{rb})
	if err := f.svc.Step(ctx); err != nil {
		t.Fatal(err)
	}
	send(t, f.svc)
	byType := map[string][]protocol.WebhookEvent{}
	for _, g := range ops.take(t) {
		if g.event != g.body.Type {
			t.Errorf("header %s, body type %s", g.event, g.body.Type)
		}
		byType[g.event] = append(byType[g.event], g.body)
	}
	if rbs := byType[protocol.WebhookRollback]; len(rbs) != 1 || rbs[0].Rollback.Device != canary || rbs[0].Rollback.Cycle != 7 ||
		rbs[0].Rollback.Error != rb.Error || !slices.Equal(rbs[0].Rollback.Advisories, []string{"RFSA-C"}) {
		t.Errorf("ops's rollback events = %+v; want one, of %s's cycle 7", rbs, canary)
	}
	if ps := byType[protocol.WebhookRolloutPaused]; len(ps) != 1 || !ps[0].RolloutPaused.Automatic || ps[0].RolloutPaused.Rollout != r.ID ||
		ps[0].RolloutPaused.Phase != 1 || !strings.Contains(ps[0].RolloutPaused.Reason, "exit status 1") {
		t.Errorf("ops's paused events = %+v; want the automatic pause of %s", ps, r.ID)
	}
	if c := chat.take(t); len(c) != 1 || c[0].event != protocol.WebhookRollback || c[0].body.ID != byType[protocol.WebhookRollback][0].ID {
		t.Errorf("chat got %+v; want the same rollback event (same id) only", c)
	}

	// An admin resumes and pauses it again.
	if _, err := f.svc.ActRollout(ctx, r.ID, protocol.RolloutResume); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Second)
	if _, err := f.svc.ActRollout(ctx, r.ID, protocol.RolloutPause); err != nil {
		t.Fatal(err)
	}
	send(t, f.svc)
	if got := ops.take(t); len(got) != 1 || got[0].body.RolloutPaused == nil || got[0].body.RolloutPaused.Automatic ||
		got[0].body.RolloutPaused.Reason != "paused by an admin" {
		t.Errorf("after an admin's pause: %+v; want one paused event, not automatic", got)
	}

	// Silence: pi-b last reported at day0; pi-a (the canary or not) at
	// day0+1m at the latest. The looks move with the clock.
	look := f.clock.Now()
	f.clock.Add(2 * time.Hour)
	f.svc.LookSilent(ctx, look, f.clock.Now())
	send(t, f.svc)
	got = ops.take(t)
	if len(got) != 1 || got[0].body.Silent == nil || got[0].body.Silent.Total != 2 || got[0].body.Silent.Threshold != "1h0m0s" {
		t.Fatalf("after two hours of silence: %+v; want one silent event of both devices", got)
	}
	for _, d := range got[0].body.Silent.Devices {
		if d.LastSeen.IsZero() || d.DeviceID != f.ids[d.Device] {
			t.Errorf("silent device %+v: want its id and last report", d)
		}
	}
	f.svc.LookSilent(ctx, f.clock.Now(), f.clock.Now().Add(time.Minute))
	if n := send(t, f.svc); n != 0 {
		t.Errorf("the next look notified %d more silences; each is notified once", n)
	}

	ds, err := f.svc.Deliveries(ctx, store.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Status != protocol.DeliveryDelivered || d.Attempts != 1 || d.HTTPStatus != http.StatusNoContent || d.Next != nil {
			t.Errorf("delivery %+v; want delivered at the first attempt", d)
		}
	}
	if len(ds) != 8 {
		t.Errorf("%d deliveries recorded; want 8 (ops: 3 exposures, rollback, 2 pauses, silence; chat: rollback)", len(ds))
	}
}

// TestWebhookRetriesSurviveRestart: a receiver that fails gets the event
// on a later attempt, each attempt recorded with its answer; the pending
// delivery survives a restart of the service over the same database; one
// that never answers well is failed after the attempts; one whose webhook
// left the configuration is failed saying so.
func TestWebhookRetriesSurviveRestart(t *testing.T) {
	rcv := newReceiver(t, "retry-secret-0123456789")
	rcv.fail = 2
	f := newNotifyFleet(t, rcv.hook("ops", protocol.WebhookRollback))
	ctx := t.Context()
	f.enroll(t, "pi-a", nil)
	f.reportPkgs(t, "pi-a", "r1", opsPkgs, []protocol.CycleResult{{ID: 1, Advisories: []string{"RFSA-X"}, Outcome: protocol.OutcomeRolledBack}})
	if n := send(t, f.svc); n != 1 {
		t.Fatalf("first send claimed %d; want 1", n)
	}
	ds, _ := f.svc.Deliveries(ctx, store.DeliveryFilter{})
	if len(ds) != 1 || ds[0].Status != protocol.DeliveryPending || ds[0].Attempts != 1 || ds[0].HTTPStatus != 503 ||
		!strings.Contains(ds[0].LastError, "503") || ds[0].Next == nil || !ds[0].Next.Equal(f.clock.Now().Add(time.Minute)) {
		t.Fatalf("after a 503: %+v; want pending, 1 attempt, due a minute later", ds)
	}
	if n := send(t, f.svc); n != 0 {
		t.Errorf("a delivery not due yet was sent again (%d)", n)
	}
	f.clock.Add(time.Minute)
	send(t, f.svc)
	ds, _ = f.svc.Deliveries(ctx, store.DeliveryFilter{})
	if ds[0].Attempts != 2 || !ds[0].Next.Equal(f.clock.Now().Add(2*time.Minute)) {
		t.Errorf("after the second 503: %+v; want 2 attempts, the next two minutes later (the backoff doubles)", ds[0])
	}

	// The server restarts: a new service over the same database file
	// (the old store stays open for newOpsFleet's cleanup to close).
	st, err := sqlite.Open(ctx, f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.opts.Webhooks = append(f.opts.Webhooks, Webhook{Name: "never", URL: rcv.srv.URL + "/never", Secret: []byte("other-secret-0123456789"),
		Events: []string{protocol.WebhookRollback}})
	svc, err := New(ctx, st, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Add(2 * time.Minute)
	send(t, svc)
	got := rcv.take(t)
	if len(got) != 1 || got[0].body.Rollback == nil || got[0].body.Rollback.Device != "pi-a" || got[0].body.Rollback.DeviceID != f.ids["pi-a"] {
		t.Fatalf("after the restart the receiver got %+v; want the rollback", got)
	}
	ds, _ = svc.Deliveries(ctx, store.DeliveryFilter{Webhook: "ops"})
	if ds[0].Status != protocol.DeliveryDelivered || ds[0].Attempts != 3 || ds[0].HTTPStatus != 204 || ds[0].LastError != "" || ds[0].ID != got[0].delivery {
		t.Errorf("delivered: %+v; want 3 attempts, 204, no error, the id sent", ds[0])
	}

	// A webhook whose signature the receiver refuses: 401 three times,
	// then failed.
	f.reportPkgs2(t, svc, "pi-a", "r2", []protocol.CycleResult{{ID: 2, Advisories: []string{"RFSA-X"}, Outcome: protocol.OutcomeRolledBack}})
	for range 3 {
		send(t, svc)
		f.clock.Add(10 * time.Minute)
	}
	rcv.mu.Lock()
	refused := len(rcv.bad)
	rcv.bad = nil
	rcv.mu.Unlock()
	if refused != 3 {
		t.Errorf("the receiver refused %d requests signed with the wrong secret; want 3", refused)
	}
	never, _ := svc.Deliveries(ctx, store.DeliveryFilter{Webhook: "never"})
	if len(never) != 1 || never[0].Status != protocol.DeliveryFailed || never[0].Attempts != 3 || never[0].HTTPStatus != 401 {
		t.Errorf("never's delivery: %+v; want failed after 3 attempts answered 401", never)
	}

	// The configuration loses "ops" while a delivery to it is pending.
	rcv.fail = 1
	f.reportPkgs2(t, svc, "pi-a", "r3", []protocol.CycleResult{{ID: 3, Advisories: []string{"RFSA-X"}, Outcome: protocol.OutcomeRolledBack}})
	send(t, svc)
	rcv.mu.Lock()
	rcv.got, rcv.bad = nil, nil // never's refused one again
	rcv.mu.Unlock()
	opts := f.opts
	opts.Webhooks = opts.Webhooks[1:]
	svc2, err := New(ctx, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Hour)
	send(t, svc2)
	gone, _ := svc2.Deliveries(ctx, store.DeliveryFilter{Webhook: "ops", Limit: 1})
	if len(gone) != 1 || gone[0].Status != protocol.DeliveryFailed || !strings.Contains(gone[0].LastError, "no longer configured") {
		t.Errorf("a delivery to a removed webhook: %+v; want failed, saying so", gone)
	}
}

func (f *opsFleet) reportPkgs2(t *testing.T, svc *Service, name, reportID string, cycles []protocol.CycleResult) {
	t.Helper()
	_, err := svc.ReportNamed(t.Context(), f.ids[name], name, &protocol.Report{ID: reportID, Time: f.clock.Now(),
		Device:    protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64"},
		Inventory: protocol.Inventory{Kind: protocol.InventoryDelta, Digest: protocol.InventoryDigest(opsPkgs)}, Cycles: cycles})
	if err != nil {
		t.Fatal(err)
	}
}
