package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink tests read after the queue wrote to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func open(t *testing.T, dir string, opts Options) (*Queue, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q, logs
}

func enqueue(t *testing.T, q *Queue, kind Kind, payload string) string {
	t.Helper()
	id, err := q.Enqueue(kind, []byte(payload))
	if err != nil {
		t.Fatalf("Enqueue(%s, %q): %v", kind, payload, err)
	}
	return id
}

// drainAll peeks and acks until the queue is empty and returns what it saw
// as "kind:payload".
func drainAll(t *testing.T, q *Queue) []string {
	t.Helper()
	var got []string
	for {
		it, err := q.Peek()
		if errors.Is(err, ErrEmpty) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s:%s", it.Kind, it.Payload))
		if err := q.Ack(it.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOrderKeptAcrossReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q, _ := open(t, dir, Options{})
	want := []string{"full:{\"n\":1}", "delta:{\"n\":2}", "cycle:{\"n\":3}", "delta:{\"n\":4}", "cycle:{\"n\":5}"}
	var ids []string
	for _, w := range want {
		kind, payload, _ := strings.Cut(w, ":")
		ids = append(ids, enqueue(t, q, Kind(kind), payload))
	}
	// The oldest report is delivered and acknowledged before the restart.
	it, err := q.Peek()
	if err != nil || it.ID != ids[0] || string(it.Payload) != `{"n":1}` {
		t.Fatalf("Peek = %+v, %v; want the first report", it, err)
	}
	if err := q.Ack(it.ID); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(it.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Ack: err = %v, want ErrNotFound", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q, _ = open(t, dir, Options{})
	if q.Len() != 4 || q.Bytes() != int64(4*len(`{"n":2}`)) {
		t.Fatalf("after reopen Len = %d Bytes = %d", q.Len(), q.Bytes())
	}
	it, err = q.Peek()
	if err != nil || it.ID != ids[1] {
		t.Fatalf("after reopen Peek = %+v, %v; want id %s", it, err, ids[1])
	}
	// New reports go after the old ones, not over them.
	enqueue(t, q, KindCycle, `{"n":6}`)
	got := drainAll(t, q)
	if want := append(want[1:], `cycle:{"n":6}`); !slices.Equal(got, want) {
		t.Errorf("delivered %q, want %q", got, want)
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	q, _ := open(t, t.TempDir(), Options{})
	seen := map[string]bool{}
	for range 50 {
		id := enqueue(t, q, KindDelta, "x")
		if len(id) != 32 || seen[id] {
			t.Fatalf("id %q: not 32 hex digits, or repeated", id)
		}
		seen[id] = true
	}
}

func TestOpenLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: err = %v, want ErrLocked", err)
	}
}

func TestEnqueueRefusesUnknownKind(t *testing.T) {
	t.Parallel()
	q, _ := open(t, t.TempDir(), Options{})
	for _, k := range []Kind{KindResync, "", "state"} {
		want := fmt.Sprintf("enqueue: kind %q is not one of cycle, delta, full", k)
		if _, err := q.Enqueue(k, nil); err == nil || err.Error() != want {
			t.Errorf("Enqueue(%q): err = %v, want %s", k, err, want)
		}
	}
	if n := q.Len(); n != 0 {
		t.Errorf("after refused kinds the queue holds %d reports, want 0", n)
	}
}

// TestRecovery plays what a crash or a bad disk leaves in the folder.
func TestRecovery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// damage changes the folder holding cycle 1, delta 2, cycle 3.
		damage func(t *testing.T, dir string)
		want   []string
		// bad is the reason logged and written for an entry moved aside,
		// "" when none is.
		bad string
	}{
		{
			name: "temp file of a write cut before rename",
			damage: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, ".tmp-00000000000000000004-cycle.json-123"), `{"version":1,"id":"`)
			},
			want: []string{"cycle:1", "delta:2", "cycle:3"},
		},
		{
			name: "torn final entry",
			damage: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "00000000000000000003-cycle.json")
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				write(t, p, string(b[:len(b)/2]))
			},
			want: []string{"cycle:1", "delta:2"},
			bad:  "00000000000000000003-cycle.json: offset",
		},
		{
			name: "payload bit flipped",
			damage: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "00000000000000000001-cycle.json")
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				// "MQ==" is base64 of "1"; "Mg==" is "2".
				write(t, p, strings.Replace(string(b), `"MQ=="`, `"Mg=="`, 1))
			},
			want: []string{"delta:2", "cycle:3"},
			bad:  "00000000000000000001-cycle.json: payload sha256",
		},
		{
			name: "renamed to another kind",
			damage: func(t *testing.T, dir string) {
				if err := os.Rename(filepath.Join(dir, "00000000000000000002-delta.json"), filepath.Join(dir, "00000000000000000002-cycle.json")); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"cycle:1", "cycle:3"},
			bad:  "not what its name says",
		},
		{
			name: "empty entry",
			damage: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "00000000000000000009-delta.json"), "")
			},
			want: []string{"cycle:1", "delta:2", "cycle:3"},
			bad:  "00000000000000000009-delta.json: offset 0: EOF",
		},
		{
			name: "a stranger's file",
			damage: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "README"), "mine")
			},
			want: []string{"cycle:1", "delta:2", "cycle:3"},
		},
		{
			name: "collapse cut after the marker was written",
			damage: func(t *testing.T, dir string) {
				// What collapse writes first: a marker at the oldest
				// delta's place, before removing the delta.
				q, _ := open(t, dir, Options{})
				q.mu.Lock()
				err := q.write(entry{seq: 2, kind: KindResync, id: strings.Repeat("ab", 16)}, nil)
				q.mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
				q.Close()
			},
			want: []string{"cycle:1", "resync:", "cycle:3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			q, _ := open(t, dir, Options{})
			enqueue(t, q, KindCycle, "1")
			enqueue(t, q, KindDelta, "2")
			enqueue(t, q, KindCycle, "3")
			q.Close()
			tt.damage(t, dir)

			q, logs := open(t, dir, Options{})
			if got := drainAll(t, q); !slices.Equal(got, tt.want) {
				t.Errorf("delivered %q, want %q", got, tt.want)
			}
			bad, err := os.ReadDir(filepath.Join(dir, badDir))
			if err != nil {
				t.Fatal(err)
			}
			if tt.bad == "" {
				if len(bad) != 0 {
					t.Errorf("bad/ holds %v, want nothing", bad)
				}
			} else {
				if len(bad) != 2 || !strings.HasSuffix(bad[1].Name(), ".reason") {
					t.Fatalf("bad/ holds %v, want the entry and its .reason", bad)
				}
				reason, err := os.ReadFile(filepath.Join(dir, badDir, bad[1].Name()))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(reason), tt.bad) || !strings.Contains(logs.String(), tt.bad) {
					t.Errorf("reason %q, log %q: want both to say %q", reason, logs, tt.bad)
				}
			}
			des, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, de := range des {
				if strings.HasPrefix(de.Name(), ".tmp-") {
					t.Errorf("temp file %s left after recovery", de.Name())
				}
			}
		})
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFullCollapsesDeltasKeepsCycles fills a queue of 5 and checks that
// inventory reports give way, in place, to one resync, while every cycle
// result stays.
func TestFullCollapsesDeltasKeepsCycles(t *testing.T) {
	t.Parallel()
	q, logs := open(t, t.TempDir(), Options{MaxEntries: 5})
	steps := []struct {
		kind    Kind
		payload string
		full    bool // Enqueue refuses it with ErrFull
		queue   []string
	}{
		{KindCycle, "c1", false, []string{"cycle:c1"}},
		{KindDelta, "d1", false, []string{"cycle:c1", "delta:d1"}},
		{KindCycle, "c2", false, []string{"cycle:c1", "delta:d1", "cycle:c2"}},
		{KindFull, "f1", false, []string{"cycle:c1", "delta:d1", "cycle:c2", "full:f1"}},
		{KindDelta, "d2", false, []string{"cycle:c1", "delta:d1", "cycle:c2", "full:f1", "delta:d2"}},
		// Full: d1, f1 and d2 become one resync at d1's place.
		{KindCycle, "c3", false, []string{"cycle:c1", "resync:", "cycle:c2", "cycle:c3"}},
		{KindDelta, "d3", false, []string{"cycle:c1", "resync:", "cycle:c2", "cycle:c3", "delta:d3"}},
		// Full again: d3 joins the existing resync.
		{KindCycle, "c4", false, []string{"cycle:c1", "resync:", "cycle:c2", "cycle:c3", "cycle:c4"}},
		// Only cycle results and the resync: a delta is refused...
		{KindDelta, "d4", true, []string{"cycle:c1", "resync:", "cycle:c2", "cycle:c3", "cycle:c4"}},
		// ... a cycle result never is.
		{KindCycle, "c5", false, []string{"cycle:c1", "resync:", "cycle:c2", "cycle:c3", "cycle:c4", "cycle:c5"}},
	}
	for _, st := range steps {
		_, err := q.Enqueue(st.kind, []byte(st.payload))
		if st.full != errors.Is(err, ErrFull) || (!st.full && err != nil) {
			t.Fatalf("Enqueue(%s %s): err = %v, want ErrFull %v", st.kind, st.payload, err, st.full)
		}
		if got := list(t, q); !slices.Equal(got, st.queue) {
			t.Fatalf("after %s %s the queue holds %q, want %q", st.kind, st.payload, got, st.queue)
		}
	}
	if !strings.Contains(logs.String(), "collapsed inventory reports into a full resync") || !strings.Contains(logs.String(), "beyond the bound") {
		t.Errorf("log does not tell of the collapse and the overflow:\n%s", logs)
	}
}

// TestFullOfCyclesStillRecordsResync: a delta refused by a queue holding
// only cycle results leaves a resync, so the change is not lost.
func TestFullOfCyclesStillRecordsResync(t *testing.T) {
	t.Parallel()
	q, _ := open(t, t.TempDir(), Options{MaxEntries: 2})
	enqueue(t, q, KindCycle, "c1")
	enqueue(t, q, KindCycle, "c2")
	if _, err := q.Enqueue(KindDelta, []byte("d1")); !errors.Is(err, ErrFull) {
		t.Fatalf("Enqueue delta: err = %v, want ErrFull", err)
	}
	// The next collapse keeps that one marker, in its place.
	if _, err := q.Enqueue(KindDelta, []byte("d2")); !errors.Is(err, ErrFull) {
		t.Fatalf("Enqueue delta: err = %v, want ErrFull", err)
	}
	if got, want := list(t, q), []string{"cycle:c1", "cycle:c2", "resync:"}; !slices.Equal(got, want) {
		t.Errorf("queue holds %q, want %q", got, want)
	}
}

func TestMaxBytes(t *testing.T) {
	t.Parallel()
	q, _ := open(t, t.TempDir(), Options{MaxBytes: 10})
	enqueue(t, q, KindDelta, "123456")
	enqueue(t, q, KindCycle, "1234")
	// 10 bytes queued: a 1-byte cycle result collapses the delta.
	enqueue(t, q, KindCycle, "x")
	if got, want := list(t, q), []string{"resync:", "cycle:1234", "cycle:x"}; !slices.Equal(got, want) || q.Bytes() != 5 {
		t.Errorf("queue holds %q (%d bytes), want %q (5 bytes)", got, q.Bytes(), want)
	}
}

// list returns the queue's reports as "kind:payload" without removing them.
func list(t *testing.T, q *Queue) []string {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	var got []string
	for _, e := range q.entries {
		rec, err := q.read(e.name())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s:%s", rec.Kind, rec.Payload))
	}
	return got
}

// TestDrainRetriesWithSameID: a report that fails to send is sent again,
// with the same id, after a growing, jittered wait, also after a restart;
// and nothing behind it overtakes it.
func TestDrainRetriesWithSameID(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var slept []time.Duration
	opts := Options{Backoff: Backoff{
		Min: time.Second, Max: 5 * time.Second,
		Jitter: func(n int64) int64 { return n - 1 }, // the longest wait
		Sleep: func(ctx context.Context, d time.Duration) error {
			slept = append(slept, d)
			return nil
		},
	}}
	q, _ := open(t, dir, opts)
	first := enqueue(t, q, KindCycle, "c1")
	second := enqueue(t, q, KindDelta, "d1")

	var sent []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The server is down for 5 attempts, then up; then the agent restarts.
	err := q.Drain(ctx, func(it *Item) error {
		sent = append(sent, it.ID)
		if len(sent) <= 5 {
			return errors.New("connection refused")
		}
		cancel()
		return errors.New("connection refused")
	})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	q, _ = open(t, dir, opts)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	err = q.Drain(ctx, func(it *Item) error {
		sent = append(sent, it.ID)
		if q.Len() == 1 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{first, first, first, first, first, first, first, second}
	if !slices.Equal(sent, want) {
		t.Errorf("sent ids %q, want %q", sent, want)
	}
	d := func(s float64) time.Duration { return time.Duration(s*float64(time.Second)) - 1 }
	if wantSlept := []time.Duration{d(1), d(2), d(4), d(5), d(5), d(5)}; !slices.Equal(slept, wantSlept) {
		t.Errorf("waited %v, want %v", slept, wantSlept)
	}
	if q.Len() != 0 {
		t.Errorf("Len = %d after everything was delivered", q.Len())
	}
}

// TestDrainWaitsForNewReports: an empty queue's Drain wakes on Enqueue.
func TestDrainWaitsForNewReports(t *testing.T) {
	t.Parallel()
	q, _ := open(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 10)
	done := make(chan error)
	go func() {
		done <- q.Drain(ctx, func(it *Item) error { got <- string(it.Payload); return nil })
	}()
	for _, p := range []string{"a", "b", "c"} {
		enqueue(t, q, KindCycle, p)
		select {
		case g := <-got:
			if g != p {
				t.Errorf("sent %q, want %q", g, p)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("report %q not sent within 10 s", p)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Drain = %v, want nil when its context is cancelled", err)
	}
}

func TestDrainRejected(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q, logs := open(t, dir, Options{})
	enqueue(t, q, KindCycle, "bad")
	enqueue(t, q, KindCycle, "good")
	ctx, cancel := context.WithCancel(context.Background())
	var sent []string
	err := q.Drain(ctx, func(it *Item) error {
		sent = append(sent, string(it.Payload))
		if string(it.Payload) == "bad" {
			return fmt.Errorf("server said 400: cycles[0].id: missing: %w", ErrRejected)
		}
		cancel()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sent, []string{"bad", "good"}) || q.Len() != 0 {
		t.Errorf("sent %q, Len %d", sent, q.Len())
	}
	bad, _ := os.ReadDir(filepath.Join(dir, badDir))
	if len(bad) != 2 || !strings.Contains(logs.String(), "cycles[0].id: missing") {
		t.Errorf("bad/ = %v, log %s: want the rejected report set aside with the server's reason", bad, logs)
	}
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := Backoff{Min: time.Second, Max: time.Minute, Jitter: func(n int64) int64 { return n }}
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {6, 32 * time.Second}, {7, time.Minute}, {1000, time.Minute}} {
		if got := b.Delay(tt.n); got != tt.want {
			t.Errorf("Delay(%d) ceiling = %v, want %v", tt.n, got, tt.want)
		}
	}
	// The real jitter stays below the ceiling and is spread out.
	b.Jitter = nil
	seen := map[time.Duration]bool{}
	for range 100 {
		d := b.Delay(3)
		if d < 0 || d >= 4*time.Second {
			t.Fatalf("Delay(3) = %v, outside [0, 4s)", d)
		}
		seen[d] = true
	}
	if len(seen) < 50 {
		t.Errorf("100 delays took only %d values: not jittered", len(seen))
	}
}

// TestConcurrentEnqueueWhileDraining: writers racing the sender lose
// nothing, deliver nothing twice, and keep each writer's order.
func TestConcurrentEnqueueWhileDraining(t *testing.T) {
	t.Parallel()
	q, _ := open(t, t.TempDir(), Options{})
	const writers, each = 4, 40
	ctx, cancel := context.WithCancel(context.Background())
	var sent []string
	done := make(chan error)
	go func() {
		done <- q.Drain(ctx, func(it *Item) error {
			sent = append(sent, string(it.Payload))
			if len(sent) == writers*each {
				cancel()
			}
			return nil
		})
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := q.Enqueue(KindCycle, fmt.Appendf(nil, "%d/%03d", w, i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("only %d of %d reports sent in 30 s", len(sent), writers*each)
	}
	last := map[string]string{}
	for _, s := range sent {
		w, i, _ := strings.Cut(s, "/")
		if i <= last[w] && last[w] != "" {
			t.Fatalf("writer %s: report %s sent after %s", w, i, last[w])
		}
		last[w] = i
	}
	if len(sent) != writers*each || q.Len() != 0 {
		t.Errorf("sent %d, %d left queued; want %d sent, none left", len(sent), q.Len(), writers*each)
	}
}

// BenchmarkEnqueueAck is the cost of one report through the queue: two
// fsynced file operations and two folder fsyncs.
func BenchmarkEnqueueAck(b *testing.B) {
	q, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	payload := bytes.Repeat([]byte("x"), 2048)
	for b.Loop() {
		id, err := q.Enqueue(KindDelta, payload)
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Ack(id); err != nil {
			b.Fatal(err)
		}
	}
}
