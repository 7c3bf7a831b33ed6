package mqtt

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/internal/mqtttest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// The client is tested against a real Mosquitto, started by internal/mqtttest
// with a password file and rpmfleet's ACL: the external-broker setup. The
// embedded broker's own tests (server/internal/broker) drive it with paho,
// the same library.

const waitFor = 10 * time.Second

var users = map[string]string{"dev-a": "secret-a", "dev-b": "secret-b", "server": "secret-s"}

func startMosquitto(t *testing.T) *mqtttest.Mosquitto {
	t.Helper()
	return mqtttest.Start(t, mqtttest.Options{Users: users, ACL: mqtttest.FleetACL("server")})
}

// observer is the server's side: a paho client that sees every rpmfleet
// topic and publishes notices and commands.
type observer struct {
	paho.Client
	msgs chan paho.Message
}

func newObserver(t *testing.T, m *mqtttest.Mosquitto) *observer {
	t.Helper()
	o := &observer{msgs: make(chan paho.Message, 100)}
	o.Client = paho.NewClient(paho.NewClientOptions().
		AddBroker(m.URL()).SetClientID("server").SetUsername("server").SetPassword(users["server"]).
		SetAutoReconnect(true).SetMaxReconnectInterval(100 * time.Millisecond).
		SetOnConnectHandler(func(c paho.Client) {
			c.Subscribe(protocol.TopicPrefix+"#", 1, func(_ paho.Client, msg paho.Message) { o.msgs <- msg })
		}))
	if tok := o.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	t.Cleanup(func() { o.Disconnect(0) })
	return o
}

// expect waits for topic to carry payload, skipping other messages.
func (o *observer) expect(t *testing.T, topic, payload string) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case m := <-o.msgs:
			if m.Topic() == topic && string(m.Payload()) == payload {
				return
			}
		case <-deadline:
			t.Fatalf("server never saw %s = %q", topic, payload)
		}
	}
}

func (o *observer) publish(t *testing.T, topic, payload string, retain bool) {
	t.Helper()
	if tok := o.Publish(topic, 1, retain, payload); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("observer publish %s: %v", topic, tok.Error())
	}
}

func newClient(t *testing.T, m *mqtttest.Mosquitto, device string, mod func(*Options)) *Client {
	t.Helper()
	opts := Options{
		Broker: m.URL(), DeviceID: device, Credential: users[device],
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil)),
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// tWriter sends the client's logs to the test's log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func next(t *testing.T, c *Client) Message {
	t.Helper()
	select {
	case m := <-c.Messages():
		return m
	case <-time.After(waitFor):
		t.Fatal("no message arrived")
		return Message{}
	}
}

func TestClientAgainstMosquitto(t *testing.T) {
	m := startMosquitto(t)
	obs := newObserver(t, m)
	// A notice published before the device connects waits, retained.
	obs.publish(t, protocol.TopicAdvisoryFeed, "notice-1", true)

	a := newClient(t, m, "dev-a", nil)
	a.PublishState([]byte("state-0")) // before connecting: sent on connect
	a.Start()
	obs.expect(t, protocol.DeviceOnlineTopic("dev-a"), protocol.PayloadOnline)
	obs.expect(t, protocol.DeviceStateTopic("dev-a"), "state-0")
	if got := next(t, a); got.Topic != protocol.TopicAdvisoryFeed || string(got.Payload) != "notice-1" || !got.Retained {
		t.Fatalf("first message %+v, want the retained feed notice", got)
	}

	obs.publish(t, protocol.DeviceCommandTopic("dev-b"), "for-b", false)
	obs.publish(t, protocol.DeviceCommandTopic("dev-a"), "check-now", false)
	if got := next(t, a); got.Topic != protocol.DeviceCommandTopic("dev-a") || string(got.Payload) != "check-now" || got.Retained {
		t.Fatalf("got %+v, want the live command for dev-a (and nothing for dev-b)", got)
	}

	a.PublishState([]byte("state-1"))
	obs.expect(t, protocol.DeviceStateTopic("dev-a"), "state-1")

	a.Close()
	obs.expect(t, protocol.DeviceOnlineTopic("dev-a"), protocol.PayloadOffline)
	if a.Connected() {
		t.Fatal("Connected after Close")
	}
}

func TestLastWillAndReconnect(t *testing.T) {
	m := startMosquitto(t)
	obs := newObserver(t, m)
	link := newLink(t, m.Addr)
	a := newClient(t, m, "dev-a", func(o *Options) { o.Broker = "tcp://" + link.addr })
	a.Start()
	obs.expect(t, protocol.DeviceOnlineTopic("dev-a"), protocol.PayloadOnline)
	a.PublishState([]byte("state-1"))

	// Cut the link: no DISCONNECT reaches the broker, so it publishes the
	// last will; the client sees the connection end and comes back.
	link.cut()
	obs.expect(t, protocol.DeviceOnlineTopic("dev-a"), protocol.PayloadOffline)
	obs.expect(t, protocol.DeviceOnlineTopic("dev-a"), protocol.PayloadOnline)
	obs.expect(t, protocol.DeviceStateTopic("dev-a"), "state-1")

	// The broker itself goes away and comes back empty (no persistence):
	// the client reconnects, subscribes again and restores its state.
	m.Restart()
	obs.expect(t, protocol.DeviceOnlineTopic("dev-a"), protocol.PayloadOnline)
	obs.expect(t, protocol.DeviceStateTopic("dev-a"), "state-1")
	deadline := time.Now().Add(waitFor)
	for !a.Connected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	obs.publish(t, protocol.DeviceCommandTopic("dev-a"), "after-restart", false)
	if got := next(t, a); string(got.Payload) != "after-restart" {
		t.Fatalf("got %+v after the broker restart", got)
	}
}

// TestLinkLostDuringPublish: a publish under way when the link dies must
// not keep the device offline. paho can hold such a publish for its own
// 30 s; the onPublish seam holds it here instead (the race that leads
// paho there cannot be made on purpose), until the test lets it go.
func TestLinkLostDuringPublish(t *testing.T) {
	m := startMosquitto(t)
	obs := newObserver(t, m)
	link := newLink(t, m.Addr)
	held, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	a := newClient(t, m, "dev-a", func(o *Options) { o.Broker = "tcp://" + link.addr })
	a.onPublish = func(topic string, payload []byte) {
		if string(payload) == "state-held" && first.CompareAndSwap(false, true) {
			close(held)
			<-release
		}
	}
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	a.Start()
	obs.expect(t, protocol.DeviceOnlineTopic("dev-a"), protocol.PayloadOnline)
	a.PublishState([]byte("state-held"))
	<-held

	link.cut()
	obs.expect(t, protocol.DeviceOnlineTopic("dev-a"), protocol.PayloadOffline)
	obs.expect(t, protocol.DeviceOnlineTopic("dev-a"), protocol.PayloadOnline)
	obs.expect(t, protocol.DeviceStateTopic("dev-a"), "state-held")
	a.PublishState([]byte("state-2"))
	obs.expect(t, protocol.DeviceStateTopic("dev-a"), "state-2")

	// The held publish now goes out on the new connection, late: the
	// client sends the latest state after it, so state-2 stays retained.
	close(release)
	obs.expect(t, protocol.DeviceStateTopic("dev-a"), "state-held")
	obs.expect(t, protocol.DeviceStateTopic("dev-a"), "state-2")
	deadline := time.Now().Add(waitFor)
	for {
		got := retainedPayload(t, m, protocol.DeviceStateTopic("dev-a"))
		if got == "state-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retained state %q, want state-2", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// retainedPayload is what a new subscriber to topic gets from the broker.
func retainedPayload(t *testing.T, m *mqtttest.Mosquitto, topic string) string {
	t.Helper()
	got := make(chan string, 1)
	c := paho.NewClient(paho.NewClientOptions().
		AddBroker(m.URL()).SetClientID("server-look").SetUsername("server").SetPassword(users["server"]))
	if tok := c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	tok := c.Subscribe(topic, 1, func(_ paho.Client, msg paho.Message) {
		select {
		case got <- string(msg.Payload()):
		default:
		}
	})
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case p := <-got:
		return p
	case <-time.After(waitFor):
		t.Fatalf("nothing retained on %s", topic)
		return ""
	}
}

// link is a TCP relay between the client and the broker that a test can
// cut, as a lost link would: both ends see the connection end, and neither
// sent a DISCONNECT.
type link struct {
	addr string
	mu   sync.Mutex // guards open
	open []net.Conn
}

func newLink(t *testing.T, target string) *link {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	k := &link{addr: l.Addr().String()}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			k.mu.Lock()
			k.open = append(k.open, in, out)
			k.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(k.cut)
	return k
}

func (k *link) cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.open {
		c.Close()
	}
	k.open = nil
}

func TestWrongCredentialNeverConnects(t *testing.T) {
	m := startMosquitto(t)
	obs := newObserver(t, m)
	a := newClient(t, m, "dev-a", func(o *Options) { o.Credential = "wrong" })
	a.Start()
	time.Sleep(500 * time.Millisecond) // several attempts at 20-200 ms backoff
	if a.Connected() {
		t.Fatal("connected with a wrong credential")
	}
	// Nothing was published as dev-a: a real device's marker is the first
	// dev-a message the server sees.
	b := newClient(t, m, "dev-b", nil)
	b.Start()
	select {
	case got := <-obs.msgs:
		if got.Topic() != protocol.DeviceOnlineTopic("dev-b") {
			t.Fatalf("server saw %s = %q first, want dev-b coming online", got.Topic(), got.Payload())
		}
	case <-time.After(waitFor):
		t.Fatal("dev-b never came online")
	}
}

func TestDaemonBusyDropsAndCounts(t *testing.T) {
	m := startMosquitto(t)
	obs := newObserver(t, m)
	a := newClient(t, m, "dev-a", func(o *Options) { o.Buffer = 2 })
	a.Start()
	obs.expect(t, protocol.DeviceOnlineTopic("dev-a"), protocol.PayloadOnline)
	for range 5 {
		obs.publish(t, protocol.DeviceCommandTopic("dev-a"), "cmd", false)
	}
	deadline := time.Now().Add(waitFor)
	for a.Dropped() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := a.Dropped(); got != 3 {
		t.Fatalf("Dropped = %d, want 3 (5 sent, buffer 2, nothing read)", got)
	}
	if len(a.Messages()) != 2 {
		t.Fatalf("%d messages waiting, want 2", len(a.Messages()))
	}
}

// TestIdleBytes measures what an idle connection sends and receives per
// keepalive, the figure the package comment's bandwidth table builds on,
// and checks that TCP keepalive probes are off.
func TestIdleBytes(t *testing.T) {
	m := startMosquitto(t)
	conns := make(chan net.Conn, 10)
	a := newClient(t, m, "dev-a", func(o *Options) { o.KeepAlive = time.Second })
	a.onDial = func(nc net.Conn) { conns <- nc }
	a.Start()
	deadline := time.Now().Add(waitFor)
	for !a.Connected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	nc := <-conns
	raw, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ka int
	var serr error
	raw.Control(func(fd uintptr) { ka, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) })
	if serr != nil || ka != 0 {
		t.Fatalf("SO_KEEPALIVE = %d (%v), want 0: TCP keepalive probes cost more than MQTT's", ka, serr)
	}

	time.Sleep(300 * time.Millisecond) // let the connect's publishes settle
	s0, r0 := a.Bytes()
	const idle = 3500 * time.Millisecond
	time.Sleep(idle)
	s1, r1 := a.Bytes()
	sent, recvd := s1-s0, r1-r0
	pings := sent / 2
	t.Logf("idle %v at keepalive 1s: sent %d bytes, received %d: %d pings of 2+2 MQTT bytes", idle, sent, recvd, pings)
	// How many pings paho sends in the window depends on its timers and on
	// the machine's load; what must hold is that idle traffic is pings
	// only, 2+2 bytes each, at least one and no more than one a keepalive.
	if sent != recvd || sent%2 != 0 || pings < 1 || pings > 4 {
		t.Fatalf("idle traffic sent %d received %d bytes, want only 2+2-byte pings, 1 to 4 of them", sent, recvd)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	good := Options{Broker: "tcp://127.0.0.1:1883", DeviceID: "dev-a", Credential: "c"}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{"no device id", func(o *Options) { o.DeviceID = "" }},
		{"no credential", func(o *Options) { o.Credential = "" }},
		{"unknown scheme", func(o *Options) { o.Broker = "http://127.0.0.1" }},
		{"no host", func(o *Options) { o.Broker = "tcp://" }},
		{"unparsable url", func(o *Options) { o.Broker = "tcp://[::1" }},
		{"keepalive under a second", func(o *Options) { o.KeepAlive = time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.mod(&o)
			if _, err := New(o); !errors.Is(err, ErrBadOptions) {
				t.Fatalf("New = %v, want ErrBadOptions", err)
			}
		})
	}
	for _, tc := range []struct{ url, host string }{
		{"tcp://broker.example", "broker.example:1883"},
		{"mqtts://broker.example", "broker.example:8883"},
		{"ssl://broker.example:9999", "broker.example:9999"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			o := good
			o.Broker = tc.url
			c, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			if c.broker.Host != tc.host {
				t.Fatalf("host %s, want %s", c.broker.Host, tc.host)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	const min, max = time.Second, time.Minute
	top := func(n int64) int64 { return n - 1 }
	bottom := func(int64) int64 { return 0 }
	for _, tc := range []struct {
		name     string
		failures int
		randN    func(int64) int64
		want     time.Duration
	}{
		{"no failure", 0, top, 0},
		{"first failure at most 2 min", 1, top, 2 * min},
		{"second failure at most 4 min", 2, top, 4 * min},
		{"fourth failure at most 16 min", 4, top, 16 * min},
		{"jitter reaches down to min", 4, bottom, min},
		{"capped at max", 30, top, max},
		{"huge failure count does not overflow", 1 << 20, top, max},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Backoff(tc.failures, min, max, tc.randN); got != tc.want {
				t.Fatalf("Backoff(%d) = %v, want %v", tc.failures, got, tc.want)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	m := mqtttest.Start(t, mqtttest.Options{Users: users, ACL: mqtttest.FleetACL("server"), TLS: true})

	t.Run("pinned root", func(t *testing.T) {
		a := newClient(t, m, "dev-a", func(o *Options) { o.TLS = &tls.Config{RootCAs: m.RootCAs()} })
		a.Start()
		waitConnected(t, a)
		// TLS 1.3 wraps a 4-byte PUBACK in a 26-byte record: 22 bytes of
		// overhead, so a 2-byte ping is the 24 bytes the package
		// comment's bandwidth table assumes.
		s0, r0 := a.Bytes()
		a.PublishState([]byte("x"))
		for deadline := time.Now().Add(waitFor); ; time.Sleep(10 * time.Millisecond) {
			if _, r := a.Bytes(); r > r0 || time.Now().After(deadline) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond) // anything more would show
		s1, r1 := a.Bytes()
		t.Logf("a 1-byte retained state over TLS: %d bytes sent, %d received", s1-s0, r1-r0)
		if r1-r0 != 4+22 {
			t.Fatalf("PUBACK took %d bytes over TLS, want 26 (TLS 1.3 record overhead 22)", r1-r0)
		}
	})
	t.Run("unknown authority", func(t *testing.T) {
		var logs strings.Builder
		var mu sync.Mutex
		a := newClient(t, m, "dev-b", func(o *Options) {
			o.Logger = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				return logs.Write(p)
			}), nil))
		})
		a.Start()
		logged := func() string {
			mu.Lock()
			defer mu.Unlock()
			return logs.String()
		}
		for deadline := time.Now().Add(waitFor); !strings.Contains(logged(), "certificate signed by unknown authority"); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("logs do not say why the connection failed:\n%s", logged())
			}
		}
		if a.Connected() {
			t.Fatal("connected to a broker whose certificate no configured root signs")
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func waitConnected(t *testing.T, c *Client) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !c.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("client never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With the real random source a fleet's retries spread over the whole
// window instead of landing together.
func TestBackoffSpreads(t *testing.T) {
	const base, ceiling = time.Second, time.Minute
	seen := map[time.Duration]bool{}
	lo, hi := ceiling, time.Duration(0)
	for range 1000 {
		d := Backoff(3, base, ceiling, rand.Int64N)
		if d < base || d > 8*base {
			t.Fatalf("Backoff(3) = %v, outside [%v, %v]", d, base, 8*base)
		}
		seen[d] = true
		lo, hi = min(lo, d), max(hi, d)
	}
	if len(seen) < 900 || lo > 2*base || hi < 7*base {
		t.Fatalf("1000 draws: %d distinct, range [%v, %v]: not spread over [1s, 8s]", len(seen), lo, hi)
	}
}

// TestCloseOnAFrozenBroker: the broker stops answering while the
// connection stays open (SIGSTOP: what a partition that holds the packets
// looks like), and a state is being published when the agent is stopped.
// Close returns within a few seconds: the publish in flight ends with the
// client's context and the goodbye waits at most shutdownWait. It used to
// wait out the publish's 30 s and then 30 s more for the goodbye, so a
// partitioned agent outlived systemd's stop timeout (found by
// TestFaultNetworkPartition).
func TestCloseOnAFrozenBroker(t *testing.T) {
	m := startMosquitto(t)
	a := newClient(t, m, "dev-a", nil)
	a.Start()
	deadline := time.Now().Add(waitFor)
	for !a.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("never connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.Freeze()
	t.Cleanup(m.Thaw) // before the broker is stopped
	a.PublishState([]byte("state-during-the-partition"))
	time.Sleep(300 * time.Millisecond) // the publish is waiting for its PUBACK
	start := time.Now()
	a.Close()
	if took := time.Since(start); took > shutdownWait+2*time.Second {
		t.Errorf("Close took %v on a frozen broker, want at most about %v", took, shutdownWait)
	}
	if a.Connected() {
		t.Error("Connected after Close")
	}
}
