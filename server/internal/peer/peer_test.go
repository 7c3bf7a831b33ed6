package peer

import (
	"sync"
	"testing"
)

func TestOf(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"192.0.2.7:1883", "192.0.2.7/32"},
		{"[::ffff:192.0.2.7]:1883", "192.0.2.7/32"},
		{"[2001:db8:1:2:aaaa::1]:1883", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:1883", "fe80::/64"},
	} {
		if got := Of(tt.addr).String(); got != tt.want {
			t.Errorf("Of(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
	if got := Of("/run/rpmfleet.sock"); got.IsValid() {
		t.Errorf("a unix address counted as %v", got)
	}
}

// TestCounter: no peer holds more than Max, others are not held out by
// it, what is given back can be taken again, and concurrent takes never
// pass the cap.
func TestCounter(t *testing.T) {
	c := &Counter{Max: 3}
	a, b := Of("192.0.2.1:1"), Of("192.0.2.2:1")
	for i := range 3 {
		if !c.Take(a) {
			t.Fatalf("take %d of 3 refused", i+1)
		}
	}
	if c.Take(a) {
		t.Fatal("a fourth taken")
	}
	if !c.Take(b) {
		t.Fatal("another peer held out")
	}
	c.Give(a)
	if !c.Take(a) {
		t.Fatal("what was given back cannot be taken")
	}
	c.Give(b)
	if n := c.Peers(); n != 1 {
		t.Errorf("%d peers hold something, want 1 (b gave all back)", n)
	}

	c = &Counter{Max: 10}
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for range 100 {
		wg.Go(func() {
			if c.Take(a) {
				mu.Lock()
				taken++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if taken != 10 {
		t.Errorf("%d taken at once, want the cap, 10", taken)
	}
	if (&Counter{}).Take(a) {
		t.Error("the zero Counter let something be taken")
	}
}
