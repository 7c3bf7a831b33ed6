package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres"
)

// openCluster opens n replicas' clusters on one fresh database.
func openCluster(t *testing.T, n int) []*postgres.Cluster {
	t.Helper()
	ctx := context.Background()
	url := pg.NewDatabase(t)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var cs []*postgres.Cluster
	for i := range n {
		c, err := postgres.OpenCluster(ctx, url, fmt.Sprintf("r%d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Retry = 100 * time.Millisecond
		t.Cleanup(c.Close)
		cs = append(cs, c)
	}
	return cs
}

// TestNextSeqSharedAndAboveTheClock: two replicas drawing sequence numbers
// at once never draw the same one, each one's numbers increase, and all
// are above the clock in nanoseconds when the database was made, which a
// server signing with its clock (notice's default) handed out before.
func TestNextSeqSharedAndAboveTheClock(t *testing.T) {
	before := uint64(time.Now().UnixNano())
	cs := openCluster(t, 2)
	var mu sync.Mutex
	seen := map[uint64]string{}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			var last uint64
			for range 200 {
				n, err := c.NextSeq(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if n <= last {
					t.Errorf("%s: %d after %d", c.ID(), n, last)
				}
				if n <= before {
					t.Errorf("%s: %d is not above the clock %d", c.ID(), n, before)
				}
				last = n
				mu.Lock()
				if other, ok := seen[n]; ok {
					t.Errorf("%d drawn by %s and %s", n, other, c.ID())
				}
				seen[n] = c.ID()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 400 {
		t.Errorf("%d distinct numbers, want 400", len(seen))
	}
}

// TestListenDeliversOthersMessages: a message one replica publishes
// reaches the other through the notification with its row; its own is not
// handed back; an advisories-changed notice arrives with no message.
func TestListenDeliversOthersMessages(t *testing.T) {
	cs := openCluster(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan postgres.Notification, 10)
	connected := make(chan struct{}, 10)
	go cs[1].Listen(ctx, func(context.Context) { connected <- struct{}{} },
		func(_ context.Context, n postgres.Notification) { got <- n })
	<-connected
	if _, err := cs[1].Publish(ctx, "own/topic", []byte("own"), false, time.Now()); err != nil {
		t.Fatal(err)
	}
	id, err := cs[0].Publish(ctx, "rpmfleet/feed", []byte("signed"), true, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().Add(-time.Second).Truncate(time.Microsecond)
	if err := cs[0].AdvisoriesChanged(ctx, started); err != nil {
		t.Fatal(err)
	}
	n := recv(t, got)
	if n.Origin != "r0" || n.Message != id {
		t.Fatalf("first notification = %+v, want r0's message %d (r1's own is not handed back)", n, id)
	}
	m, err := cs[1].Message(ctx, n.Message)
	if err != nil || m.Topic != "rpmfleet/feed" || string(m.Payload) != "signed" || !m.Retained || m.Origin != "r0" {
		t.Fatalf("message = %+v, %v", m, err)
	}
	if n := recv(t, got); n.Origin != "r0" || n.Message != 0 || !n.Import.Equal(started) {
		t.Fatalf("second notification = %+v, want r0's advisories changed by an import started at %v", n, started)
	}
}

// TestListenCatchesUpAfterLostConnection: when the listening connection is
// killed (pg_terminate_backend, as a PostgreSQL restart does), Listen
// connects again and calls connected again, and Since gives what was
// published meanwhile.
func TestListenCatchesUpAfterLostConnection(t *testing.T) {
	cs := openCluster(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	connected := make(chan struct{}, 10)
	go cs[1].Listen(ctx, func(context.Context) { connected <- struct{}{} }, func(context.Context, postgres.Notification) {})
	<-connected
	last, err := cs[1].Last(ctx)
	if err != nil {
		t.Fatal(err)
	}
	terminate(t, ctx, cs[0], "LISTEN")
	id, err := cs[0].Publish(ctx, "rpmfleet/device/x/command", []byte("cmd"), false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not connect again after its connection was killed")
	}
	ms, err := cs[1].Since(ctx, last, time.Now().Add(-time.Minute), 100)
	if err != nil || len(ms) != 1 || ms[0].ID != id {
		t.Fatalf("Since(%d) = %+v, %v; want message %d", last, ms, err, id)
	}
}

// terminate kills the backends of this database running a statement
// starting with what (LISTEN, or the lock's query).
func terminate(t *testing.T, ctx context.Context, c *postgres.Cluster, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := c.Terminate(ctx, what)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no backend running %q to terminate", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRetainedAndPrune: Retained gives the newest retained message of
// each topic; Prune deletes old messages but keeps those.
func TestRetainedAndPrune(t *testing.T) {
	cs := openCluster(t, 1)
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	for i, m := range []struct {
		topic    string
		retained bool
	}{{"feed", true}, {"feed", true}, {"cmd", false}, {"other", true}} {
		if _, err := cs[0].Publish(ctx, m.topic, []byte{byte('0' + i)}, m.retained, old); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		ms, err := cs[0].Retained(ctx)
		if err != nil || len(ms) != 2 || ms[0].Topic != "feed" || string(ms[0].Payload) != "1" || ms[1].Topic != "other" {
			t.Fatalf("%s: Retained = %+v, %v; want feed's second and other's", when, ms, err)
		}
	}
	check("before prune")
	n, err := cs[0].Prune(ctx, time.Now().Add(-24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want the first feed and the command deleted", n, err)
	}
	check("after prune")
}

// TestLeadOnceAndFailover: three replicas race for one job; it runs on
// one at a time; when the leader's lock connection dies (pg_terminate_backend)
// its job is stopped and another replica takes it.
func TestLeadOnceAndFailover(t *testing.T) {
	cs := openCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running, most atomic.Int32
	started := make(chan string, 10)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			c.Lead(ctx, "job", func(jctx context.Context) {
				n := running.Add(1)
				if n > most.Load() {
					most.Store(n)
				}
				started <- c.ID()
				<-jctx.Done()
				running.Add(-1)
			})
		})
	}
	first := <-started
	select {
	case other := <-started:
		t.Fatalf("job started on %s while %s held the lock", other, first)
	case <-time.After(500 * time.Millisecond):
	}
	terminate(t, ctx, cs[0], "SELECT pg_try_advisory_lock")
	var second string
	select {
	case second = <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no replica took the job after the leader's connection was killed")
	}
	cancel()
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("the job ran on %d replicas at once", most.Load())
	}
	t.Logf("leader %s, then %s", first, second)
}

// TestParseNotificationRefuses names what a malformed payload is.
func TestParseNotificationRefuses(t *testing.T) {
	for _, tc := range []struct{ name, payload string }{
		{"empty", ""},
		{"unknown kind", "x:r1"},
		{"advisories without origin", "a::1733400000000000"},
		{"advisories without start", "a:r1"},
		{"advisories start not a number", "a:r1:noon"},
		{"message without origin", "m:12"},
		{"message id not a number", "m:twelve:r1"},
		{"message id zero", "m:0:r1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := postgres.ParseNotification(tc.payload); !errors.Is(err, postgres.ErrBadNotification) {
				t.Errorf("ParseNotification(%q) = %v, want ErrBadNotification", tc.payload, err)
			}
		})
	}
}

func recv(t *testing.T, c <-chan postgres.Notification) postgres.Notification {
	t.Helper()
	select {
	case n := <-c:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10 s")
		return postgres.Notification{}
	}
}
