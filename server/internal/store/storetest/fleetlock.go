package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Issue 13's story of the FleetLock reboot slots.

// testFleetLockSlots: a group's slots are a counting semaphore with owned,
// recursive locks and expiry; five holders racing for one slot never both
// get it (on PostgreSQL, the group row's lock is what makes that true).
func testFleetLockSlots(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	exp := t0.Add(time.Hour)
	lock := func(holder string, now time.Time) bool {
		t.Helper()
		ok, err := s.LockSlot(ctx, "default", holder, 1, now, now.Add(time.Hour))
		if err != nil {
			t.Fatalf("LockSlot %s: %v", holder, err)
		}
		return ok
	}
	if !lock("a", t0) {
		t.Fatal("a could not take the free slot")
	}
	if lock("b", t0) {
		t.Error("b took the slot a holds")
	}
	if !lock("a", t0.Add(time.Minute)) {
		t.Error("a could not take its own slot again (locks are recursive)")
	}
	if sl, err := s.Slots(ctx, t0); err != nil || len(sl) != 1 || sl[0].ID != "a" || !sl[0].Expires.Equal(exp.Add(time.Minute)) {
		t.Errorf("Slots = %+v, %v; want a's, renewed to %v", sl, err, exp.Add(time.Minute))
	}
	if ok, err := s.UnlockSlot(ctx, "default", "b"); err != nil || ok {
		t.Errorf("b freed a slot it does not hold: %v, %v", ok, err)
	}
	if ok, err := s.UnlockSlot(ctx, "default", "a"); err != nil || !ok {
		t.Errorf("a could not free its slot: %v, %v", ok, err)
	}
	if !lock("b", t0) {
		t.Error("b could not take the slot a freed")
	}
	// b never comes back: its slot frees itself at its expiry.
	if lock("c", t0.Add(59*time.Minute)) {
		t.Error("c took b's slot before it expired")
	}
	if !lock("c", t0.Add(61*time.Minute)) {
		t.Error("c could not take b's expired slot")
	}
	if sl, _ := s.Slots(ctx, t0.Add(61*time.Minute)); len(sl) != 1 || sl[0].ID != "c" {
		t.Errorf("after expiry, slots = %+v; want c's only", sl)
	}
	// Another group has slots of its own.
	if ok, err := s.LockSlot(ctx, "workers", "a", 2, t0, exp); err != nil || !ok {
		t.Errorf("a in workers: %v, %v", ok, err)
	}

	// Five holders race for the one slot of a group, many times. The
	// group exists before the race: a fresh group's first insert would
	// serialize the racers by itself, and hide a missing lock.
	const group = "race"
	if _, err := s.LockSlot(ctx, group, "warm-up", 1, t0, exp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UnlockSlot(ctx, group, "warm-up"); err != nil {
		t.Fatal(err)
	}
	for round := range 50 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var got []string
		for i := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := fmt.Sprint("h", i)
				ok, err := s.LockSlot(ctx, group, h, 1, t0, exp)
				if err != nil {
					t.Errorf("LockSlot %s: %v", h, err)
				}
				if ok {
					mu.Lock()
					got = append(got, h)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(got) != 1 {
			t.Fatalf("round %d: %v hold the one slot", round, got)
		}
		if ok, err := s.UnlockSlot(ctx, group, got[0]); err != nil || !ok {
			t.Fatalf("round %d: %s unlocks: %v, %v", round, got[0], ok, err)
		}
	}
}
