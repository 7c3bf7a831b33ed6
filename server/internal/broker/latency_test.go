package broker

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// fleetAuth accepts devices "dev-N" whose password is "pw-dev-N".
type fleetAuth struct{}

func (fleetAuth) Authenticate(user, pass string) (Principal, bool) {
	if !strings.HasPrefix(user, "dev-") || pass != "pw-"+user {
		return Principal{}, false
	}
	return Principal{DeviceID: user}, true
}

// pushRig is the embedded broker with n real paho devices subscribed to
// the advisory feed; every notice carries its send time, and each device
// records how long it took to arrive.
type pushRig struct {
	b         *Broker
	mu        sync.Mutex // guards latencies and wg's adds
	latencies []time.Duration
	wg        sync.WaitGroup
}

func newPushRig(tb testing.TB, n int) *pushRig {
	tb.Helper()
	b, err := New(Options{Listen: "127.0.0.1:0", Auth: fleetAuth{}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := b.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	r := &pushRig{b: b}
	for i := range n {
		id := fmt.Sprintf("dev-%d", i)
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).
			SetClientID(id).SetUsername(id).SetPassword("pw-" + id).
			SetProtocolVersion(4).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			tb.Fatalf("connect %s: %v", id, tok.Error())
		}
		tb.Cleanup(func() { c.Disconnect(0) })
		tok := c.Subscribe(protocol.TopicAdvisoryFeed, 1, func(_ paho.Client, m paho.Message) {
			if m.Retained() {
				return // the previous round's notice, on subscribe
			}
			d := time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(m.Payload()))))
			r.mu.Lock()
			r.latencies = append(r.latencies, d)
			r.mu.Unlock()
			r.wg.Done()
		})
		if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			tb.Fatalf("subscribe %s: %v", id, tok.Error())
		}
	}
	return r
}

// push publishes one retained notice and waits until all n devices have it.
func (r *pushRig) push(tb testing.TB, n int) {
	r.wg.Add(n)
	payload := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
	if err := r.b.Publish(protocol.TopicAdvisoryFeed, payload, true); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitFor):
		tb.Fatalf("notice did not reach all %d devices", n)
	}
}

func (r *pushRig) quantile(q float64) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := slices.Clone(r.latencies)
	slices.Sort(l)
	return l[min(len(l)-1, int(q*float64(len(l))))]
}

// TestPushLatency100 holds the target for the broker's part of a
// push: 100 connected devices, p99 from Publish to delivery under 1 s on
// loopback.
func TestPushLatency100(t *testing.T) {
	const devices, rounds = 100, 10
	r := newPushRig(t, devices)
	for range rounds {
		r.push(t, devices)
	}
	p50, p99 := r.quantile(0.5), r.quantile(0.99)
	t.Logf("%d notices to %d devices: p50 %v, p99 %v", rounds, devices, p50, p99)
	if p99 > time.Second {
		t.Fatalf("p99 %v, want under 1 s", p99)
	}
}

// BenchmarkPush100 measures one notice reaching 100 devices; it reports
// the per-delivery p50 and p99 latency.
func BenchmarkPush100(b *testing.B) {
	const devices = 100
	r := newPushRig(b, devices)
	for b.Loop() {
		r.push(b, devices)
	}
	b.ReportMetric(float64(r.quantile(0.5).Microseconds()), "p50-µs")
	b.ReportMetric(float64(r.quantile(0.99).Microseconds()), "p99-µs")
}
