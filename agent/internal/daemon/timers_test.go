package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/config"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// The daemon's timer logic on synctest's fake clock: what takes hours on a
// device takes no time here, and the instants are exact. The tests that run
// the whole daemon (real rpm, HTTP, fsnotify, a broker) cannot use it: the
// fake clock moves only when every goroutine is blocked on something other
// than I/O.

// TestReportWait: report delivery's backoff waits its time, ends at once
// when a plan fetch shows the server back, and ends with the context.
func TestReportWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		d := &daemon{serverBack: make(chan struct{}, 1)}
		ctx := context.Background()

		start := time.Now()
		if err := d.reportWait(ctx, time.Hour); err != nil || time.Since(start) != time.Hour {
			t.Errorf("reportWait(1h) = %v after %v, want nil after exactly 1h", err, time.Since(start))
		}

		start = time.Now()
		go func() {
			time.Sleep(10 * time.Minute)
			poke(d.serverBack)
		}()
		if err := d.reportWait(ctx, time.Hour); err != nil || time.Since(start) != 10*time.Minute {
			t.Errorf("reportWait(1h) with the server back after 10m = %v after %v, want nil after 10m", err, time.Since(start))
		}

		start = time.Now()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if err := d.reportWait(cctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 5*time.Minute {
			t.Errorf("reportWait(1h) with a context ending after 5m = %v after %v, want its error after 5m", err, time.Since(start))
		}
	})
}

// TestStateHeartbeatOverADay: a device polling every 10 minutes for a day,
// nothing else changing: the retained state goes out with the first
// last_check at once and then once an hour (the heartbeat) with a fresh
// one, never during a fetch and not at every poll; a change goes out at
// once.
func TestStateHeartbeatOverADay(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const poll, beat = 10 * time.Minute, time.Hour
		d := &daemon{cfg: &config.Config{Poll: config.Poll{Interval: poll, ConnectedInterval: beat}}, now: time.Now}
		var sent []protocol.DeviceState
		look := func(st protocol.DeviceState) {
			if b, ok := d.stateUpdate(st); ok {
				var got protocol.DeviceState
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, got)
			}
		}
		st := protocol.DeviceState{Version: protocol.StateVersion, State: protocol.StateStarting, MQTT: true}
		look(st)
		if len(sent) != 1 || sent[0].State != protocol.StateStarting {
			t.Fatalf("at start published %+v, want the starting state", sent)
		}
		sent = nil
		start := time.Now()
		for range 24 * 6 {
			d.fetching, st.State = true, protocol.StateChecking
			look(st) // the fetch is on its way: nothing new to say
			d.fetching = false
			st.State, st.LastCheck, st.NextPoll = protocol.StateIdle, time.Now(), time.Now().Add(poll)
			look(st)
			time.Sleep(poll)
		}
		// The first fetch's state, shown idle, has no last_check yet; the
		// first last_check follows at once.
		if len(sent) != 25 || !sent[0].LastCheck.IsZero() || sent[0].State != protocol.StateIdle {
			t.Fatalf("%d states over a day of polls every %v, want 25: the first fetch's, its last_check, then one an hour; the first: %+v", len(sent), poll, sent[:min(len(sent), 1)])
		}
		for i, s := range sent[1:] {
			if want := start.Add(time.Duration(i) * beat); !s.LastCheck.Equal(want) || s.State != protocol.StateIdle {
				t.Errorf("state %d: %s with last_check %v, want idle with %v", i, s.State, s.LastCheck, want)
			}
		}

		sent = nil
		st.Pending = []protocol.PendingAdvisory{{ID: "RFSA-2026:0001", Action: "notify", Reason: "mode is notify"}}
		look(st)
		if len(sent) != 1 || len(sent[0].Pending) != 1 {
			t.Errorf("a pending advisory published %+v, want it at once", sent)
		}
		look(st)
		if len(sent) != 1 {
			t.Errorf("the same state published %d times, want once", len(sent))
		}
	})
}
