package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Issue 14's story of the webhook outbox.

// testDeliveries: a delivery is stored once per webhook and key, claimed
// by one server at a time (also by four racing), due again when its claim
// lapses, recorded attempt by attempt, listed newest first and filtered,
// and pruned only once finished.
func testDeliveries(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	d := func(id, hook, key string, created time.Time) store.Delivery {
		return store.Delivery{ID: id, Webhook: hook, Event: protocol.WebhookRollback, EventID: "ev-" + key, Key: key,
			Body: []byte(`{"type":"rollback","id":"` + id + `"}`), Created: created, Next: created}
	}
	n, err := s.AddDeliveries(ctx, []store.Delivery{d("d1", "ops", "k1", t0), d("d2", "chat", "k1", t0.Add(time.Second)),
		d("d3", "ops", "k2", t0.Add(2*time.Second)), d("d4", "ops", "k1", t0.Add(3*time.Second))})
	if err != nil || n != 3 {
		t.Fatalf("AddDeliveries = %d, %v; want 3 (d4 repeats ops's k1)", n, err)
	}
	if n, err := s.AddDeliveries(ctx, []store.Delivery{d("d5", "chat", "k1", t0)}); err != nil || n != 0 {
		t.Errorf("AddDeliveries of chat's k1 again = %d, %v; want 0", n, err)
	}

	lease := t0.Add(time.Minute)
	got, err := s.ClaimDeliveries(ctx, t0.Add(time.Second), lease, 10)
	if err != nil {
		t.Fatal(err)
	}
	if ids := deliveryIDs(got); !slices.Equal(ids, []string{"d1", "d2"}) {
		t.Fatalf("claimed %v at t0+1s; want d1, d2 (d3 is not due yet)", ids)
	}
	if string(got[0].Body) != `{"type":"rollback","id":"d1"}` || got[0].Key != "k1" || got[0].Webhook != "ops" || !got[0].Next.Equal(lease) {
		t.Errorf("claimed %+v; want d1 with its body, key, webhook and Next at the lease", got[0])
	}
	if again, err := s.ClaimDeliveries(ctx, t0.Add(30*time.Second), lease, 10); err != nil || !slices.Equal(deliveryIDs(again), []string{"d3"}) {
		t.Errorf("second claim before the lease = %v, %v; want only d3", deliveryIDs(again), err)
	}
	// d1 fails once and is due again in two seconds; d2 is delivered.
	rec := got[0]
	rec.Attempts, rec.HTTPStatus, rec.LastError, rec.Updated, rec.Next = 1, 503, "notify: answered 503", t0.Add(2*time.Second), t0.Add(4*time.Second)
	if err := s.RecordDelivery(ctx, rec); err != nil {
		t.Fatal(err)
	}
	ok := got[1]
	ok.Status, ok.Attempts, ok.HTTPStatus, ok.Updated = protocol.DeliveryDelivered, 1, 204, t0.Add(2*time.Second)
	if err := s.RecordDelivery(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDelivery(ctx, store.Delivery{ID: "nope", Status: protocol.DeliveryFailed}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordDelivery of an unknown id = %v; want ErrNotFound", err)
	}
	if again, err := s.ClaimDeliveries(ctx, t0.Add(5*time.Second), t0.Add(2*time.Minute), 10); err != nil || !slices.Equal(deliveryIDs(again), []string{"d1"}) {
		t.Errorf("claim after d1's retry is due = %v, %v; want d1 (d3's claim holds until its lease)", deliveryIDs(again), err)
	}
	if again, err := s.ClaimDeliveries(ctx, lease, lease.Add(time.Minute), 10); err != nil || !slices.Equal(deliveryIDs(again), []string{"d3"}) {
		t.Errorf("claim once d3's lease lapsed = %v, %v; want d3 again (its sender died)", deliveryIDs(again), err)
	}

	all, err := s.ListDeliveries(ctx, store.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if ids := deliveryIDs(all); !slices.Equal(ids, []string{"d3", "d2", "d1"}) {
		t.Errorf("ListDeliveries = %v; want newest first d3, d2, d1", ids)
	}
	for _, x := range all {
		if x.Body != nil {
			t.Errorf("ListDeliveries carries %s's body", x.ID)
		}
		if x.ID == "d1" && (x.Attempts != 1 || x.HTTPStatus != 503 || x.LastError != "notify: answered 503" || x.Status != protocol.DeliveryPending) {
			t.Errorf("d1 listed as %+v; want pending after 1 attempt answered 503", x)
		}
	}
	if l, err := s.ListDeliveries(ctx, store.DeliveryFilter{Status: protocol.DeliveryDelivered}); err != nil || !slices.Equal(deliveryIDs(l), []string{"d2"}) {
		t.Errorf("delivered = %v, %v; want d2", deliveryIDs(l), err)
	}
	if l, err := s.ListDeliveries(ctx, store.DeliveryFilter{Webhook: "ops", Limit: 1}); err != nil || !slices.Equal(deliveryIDs(l), []string{"d3"}) {
		t.Errorf("ops's newest = %v, %v; want d3", deliveryIDs(l), err)
	}

	if n, err := s.PruneDeliveries(ctx, t0.Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("PruneDeliveries = %d, %v; want 1 (d2; pending ones stay)", n, err)
	}
	if l, _ := s.ListDeliveries(ctx, store.DeliveryFilter{}); !slices.Equal(deliveryIDs(l), []string{"d3", "d1"}) {
		t.Errorf("after pruning: %v; want d3, d1", deliveryIDs(l))
	}

	// Four servers claim twenty due deliveries at once: each is sent once.
	var many []store.Delivery
	for i := range 20 {
		many = append(many, d(fmt.Sprintf("m%02d", i), "ops", fmt.Sprintf("m%02d", i), t0))
	}
	if _, err := s.AddDeliveries(ctx, many); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // guards claimed
	claimed := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				got, err := s.ClaimDeliveries(ctx, t0.Add(10*time.Second), t0.Add(time.Hour), 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, g := range got {
					claimed[g.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, m := range many {
		if claimed[m.ID] != 1 {
			t.Errorf("%s claimed %d times; want once", m.ID, claimed[m.ID])
		}
	}
}

func deliveryIDs(ds []store.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// testSilentDevices: the devices whose last report, or enrolment when
// they never reported, falls in the range asked, revoked ones left out.
func testSilentDevices(t *testing.T, b Backend) {
	f := newFleet(t, b)
	ctx := t.Context()
	for _, n := range []string{"pi-quiet", "pi-never", "pi-lost"} {
		f.enroll(n)
	}
	f.report("dev-pi-quiet", full("r1", f.ubi)) // seen at t0+1m
	if _, _, err := f.s.RevokeDevice(ctx, "pi-lost", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	names := func(from, to time.Time) []string {
		t.Helper()
		ds, err := f.s.SilentDevices(ctx, from, to, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range ds {
			out = append(out, d.Name)
			if d.Name == "pi-quiet" && !d.LastSeen.Equal(t0.Add(time.Minute)) {
				t.Errorf("pi-quiet last seen %v; want %v", d.LastSeen, t0.Add(time.Minute))
			}
			if d.Name == "pi-never" && (!d.LastSeen.IsZero() || !d.Enrolled.Equal(t0)) {
				t.Errorf("pi-never: last seen %v, enrolled %v; want never, %v", d.LastSeen, d.Enrolled, t0)
			}
		}
		return out
	}
	if got := names(t0.Add(-time.Hour), t0.Add(time.Hour)); !slices.Equal(got, []string{"pi-never", "pi-quiet"}) {
		t.Errorf("silent in the hour around t0: %v; want pi-never, pi-quiet (pi-lost is revoked)", got)
	}
	if got := names(t0, t0.Add(time.Hour)); !slices.Equal(got, []string{"pi-quiet"}) {
		t.Errorf("silent in (t0, t0+1h]: %v; want pi-quiet (pi-never's enrolment is at t0)", got)
	}
	if got := names(t0.Add(-time.Hour), t0.Add(30*time.Second)); !slices.Equal(got, []string{"pi-never"}) {
		t.Errorf("silent in (t0-1h, t0+30s]: %v; want pi-never (pi-quiet reported after)", got)
	}
}
