package broker

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// These tests hold connections open the way an outsider would (raw TCP
// sockets that send nothing, or a CONNECT one byte at a time, or a huge
// one) against the real broker, and check that a real device, a paho
// client as the agent uses, still logs in.

// syncLog is a log buffer safe for the broker's goroutines.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startLimited(t *testing.T, timeout time.Duration, maxPending int) (*Broker, *syncLog) {
	t.Helper()
	logs := &syncLog{}
	b, err := New(Options{Listen: "127.0.0.1:0", Auth: testAccounts, LoginTimeout: timeout, MaxPending: maxPending,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, logs
}

func rawDial(t *testing.T, b *Broker) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedBy reports whether the broker closed c before deadline: a read
// that ends in EOF or a reset, not in the client's own timeout.
func closedBy(c net.Conn, deadline time.Time) bool {
	c.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

// waitCounters waits until ok holds for the broker's counters.
func waitCounters(t *testing.T, b *Broker, what string, ok func(Counters) bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !ok(b.Counters()) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: counters %+v", what, b.Counters())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSilentAndDrippingConnectionsClosedAtTheLoginDeadline(t *testing.T) {
	const timeout = time.Second
	b, _ := startLimited(t, timeout, 100)
	var socks []net.Conn
	for range 20 {
		socks = append(socks, rawDial(t, b)) // never send a byte
	}
	// Five send a CONNECT header announcing 100 bytes, then drip them one
	// every 100 ms: each byte arrives well inside any per-read timeout,
	// and the whole would take 10 s.
	stop := make(chan struct{})
	var drips sync.WaitGroup
	for range 5 {
		c := rawDial(t, b)
		socks = append(socks, c)
		drips.Add(1)
		go func() {
			defer drips.Done()
			if _, err := c.Write([]byte{0x10, 100}); err != nil {
				return
			}
			for range 100 {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := c.Write([]byte{0}); err != nil {
					return // closed by the broker
				}
			}
		}()
	}
	defer func() { close(stop); drips.Wait() }()
	waitCounters(t, b, "25 connections waiting", func(c Counters) bool { return c.Pending == 25 })

	// A device logs in while they are held.
	dev := mustDial(t, b, "dev-a", "secret-a")
	if got := b.Counters().Pending; got != 25 {
		t.Errorf("after the device logged in, %d connections waiting; want 25 (a logged-in one is not counted)", got)
	}

	// Every held connection is closed by the broker, the dripping ones
	// too: the deadline counts from accept, not from the last byte.
	giveUp := time.Now().Add(timeout + waitFor)
	for i, c := range socks {
		if !closedBy(c, giveUp) {
			t.Fatalf("connection %d still open %v after the login deadline", i, waitFor)
		}
	}
	waitCounters(t, b, "every held connection timed out", func(c Counters) bool { return c.Pending == 0 && c.TimedOut == 25 })
	if !dev.IsConnectionOpen() {
		t.Errorf("the logged-in device was disconnected with the held connections")
	}
	dev.publish(t, "rpmfleet/v1/device/dev-a/state", "still here", 1, false)
}

func TestFirstPacketChecked(t *testing.T) {
	// The login deadline is long, so a connection closed at once was
	// closed for what it sent.
	b, _ := startLimited(t, time.Minute, 100)
	tests := []struct {
		name string
		send []byte
	}{
		// 200,000 bytes is under MaxPacketSize (256 KB): mochi alone
		// would allocate it and wait for it.
		{"CONNECT announcing 200 KB", []byte{0x10, 0xc0, 0x9a, 0x0c}},
		{"CONNECT one byte over the limit", []byte{0x10, 0x81, 0x20}},
		{"PUBLISH before CONNECT", []byte{0x30, 0x05, 0, 1, 'a', 'x', 'y'}},
		{"malformed length", []byte{0x10, 0x80, 0x80, 0x80, 0x80, 0x01}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rawDial(t, b)
			if _, err := c.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			if !closedBy(c, time.Now().Add(waitFor)) {
				t.Errorf("still open %v after sending % x", waitFor, tt.send)
			}
		})
	}
	waitCounters(t, b, "no connection waiting", func(c Counters) bool { return c.Pending == 0 })
	if got := b.Counters().TimedOut; got != 0 {
		t.Errorf("%d connections counted as timed out; they were refused for what they sent", got)
	}
	// A real CONNECT is well under the bound.
	mustDial(t, b, "dev-a", "secret-a")
}

func TestConnectHeader(t *testing.T) {
	tests := []struct {
		name   string
		in     []byte
		length int
		err    error
	}{
		{"short", []byte{0x10, 0x20}, 0x20, nil},
		{"two length bytes", []byte{0x10, 0x80, 0x01}, 128, nil},
		{"exactly the limit", []byte{0x10, 0x80, 0x20}, MaxConnectSize, nil},
		{"over the limit", []byte{0x10, 0x81, 0x20}, 0, errConnectTooLarge},
		{"huge", []byte{0x10, 0xff, 0xff, 0xff, 0x7f}, 0, errConnectTooLarge},
		{"SUBSCRIBE", []byte{0x82, 0x01}, 0, errNotConnect},
		{"CONNECT with flags set", []byte{0x11, 0x01}, 0, errNotConnect},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Fed a byte at a time, as a slow sender delivers it.
			var h connectHeader
			var err error
			for i := 0; i < len(tt.in) && err == nil; i++ {
				err = h.feed(tt.in[i : i+1])
			}
			if !errors.Is(err, tt.err) || (tt.err == nil && (!h.done || h.length != tt.length)) {
				t.Errorf("feed(% x) = %v, done %v, length %d; want %v, length %d", tt.in, err, h.done, h.length, tt.err, tt.length)
			}
		})
	}
}

func TestPendingConnectionsCapped(t *testing.T) {
	b, logs := startLimited(t, time.Minute, 5)
	var held []net.Conn
	for range 5 {
		held = append(held, rawDial(t, b))
	}
	waitCounters(t, b, "5 connections waiting", func(c Counters) bool { return c.Pending == 5 })

	// Beyond the cap, each new connection is closed at once (the login
	// deadline is a minute away), counted, and logged once for the lot.
	for i := range 10 {
		c := rawDial(t, b)
		if !closedBy(c, time.Now().Add(waitFor)) {
			t.Fatalf("connection %d beyond the cap still open after %v", i, waitFor)
		}
	}
	waitCounters(t, b, "10 refused and 5 waiting", func(c Counters) bool { return c.Refused == 10 && c.Pending == 5 })
	if n := strings.Count(logs.String(), "too many waiting to log in"); n != 1 {
		t.Errorf("the refusals were logged %d times, want once:\n%s", n, logs)
	}
	// So is a device while the cap is reached: the cap is what keeps the
	// broker alive, and the agent retries.
	if _, err := dial(t, b, connOpts{clientID: "dev-a", user: "dev-a", pass: "secret-a"}); err == nil {
		t.Errorf("a device logged in past the cap")
	}

	// Once the held ones go, devices log in again.
	for _, c := range held {
		c.Close()
	}
	waitCounters(t, b, "the held connections gone", func(c Counters) bool { return c.Pending == 0 })
	mustDial(t, b, "dev-a", "secret-a")
	mustDial(t, b, "dev-b", "secret-b")
	if got := b.Counters().Pending; got != 0 {
		t.Errorf("%d waiting after two logins, want 0", got)
	}
}

// TestPendingConnectionsCappedPerAddress: one address holding its share
// of waiting connections is refused more at once, while devices from other
// addresses still log in; the whole cap is far away.
func TestPendingConnectionsCappedPerAddress(t *testing.T) {
	logs := &syncLog{}
	b, err := New(Options{Listen: "127.0.0.1:0", Auth: testAccounts, LoginTimeout: time.Minute, MaxPending: 100,
		MaxPendingPerAddress: 4, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	rawFrom := func(ip string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var held []net.Conn
	for range 4 {
		held = append(held, rawFrom("127.0.0.1"))
	}
	waitCounters(t, b, "4 connections waiting", func(c Counters) bool { return c.Pending == 4 })
	for i := range 3 {
		if c := rawFrom("127.0.0.1"); !closedBy(c, time.Now().Add(waitFor)) {
			t.Fatalf("connection %d beyond the address's share still open after %v", i, waitFor)
		}
	}
	waitCounters(t, b, "3 refused", func(c Counters) bool { return c.Refused == 3 && c.Pending == 4 })
	if !strings.Contains(logs.String(), "too many from one address waiting to log in") {
		t.Errorf("the refusals were not logged as per address:\n%s", logs)
	}
	if _, err := dial(t, b, connOpts{clientID: "dev-a", user: "dev-a", pass: "secret-a"}); err == nil {
		t.Errorf("a device logged in from the address whose share is taken")
	}
	// Other addresses are not held out, silent ones included.
	other := rawFrom("127.0.0.2")
	waitCounters(t, b, "the other address's connection waiting", func(c Counters) bool { return c.Pending == 5 })
	if _, err := dial(t, b, connOpts{clientID: "dev-b", user: "dev-b", pass: "secret-b", from: "127.0.0.3"}); err != nil {
		t.Fatalf("a device from another address: %v", err)
	}
	// A login frees its address's slot, as a close does.
	other.Close()
	held[0].Close()
	waitCounters(t, b, "two waiting connections gone", func(c Counters) bool { return c.Pending == 3 })
	mustDial(t, b, "dev-a", "secret-a")
	if got := b.Counters().Pending; got != 3 {
		t.Errorf("%d waiting after a login, want 3", got)
	}
}

func TestDisconnectDevice(t *testing.T) {
	b := startBroker(t)
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("dev-a").
		SetUsername("dev-a").SetPassword("secret-a").SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	a := paho.NewClient(opts)
	if tok := a.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("connect dev-a: %v", tok.Error())
	}
	defer a.Disconnect(0)
	other := mustDial(t, b, "dev-b", "secret-b")
	server := mustDial(t, b, "server", "secret-s")
	if rc := server.subscribe(t, "rpmfleet/v1/device/+/online"); rc != 1 {
		t.Fatalf("server subscribe: %#x", rc)
	}

	b.DisconnectDevice("dev-a")
	select {
	case <-lost:
	case <-time.After(waitFor):
		t.Fatal("dev-a's open connection was not closed")
	}
	// Its credential still checks out with the authenticator (a race
	// with the store), but the broker refuses the device from now on.
	if _, err := dial(t, b, connOpts{clientID: "dev-a", user: "dev-a", pass: "secret-a"}); err == nil {
		t.Errorf("dev-a logged in again after DisconnectDevice")
	}
	if !other.IsConnectionOpen() {
		t.Errorf("dev-b was disconnected too")
	}
	other.publish(t, "rpmfleet/v1/device/dev-b/online", "online", 1, true)
	if m := server.next(t); m.Topic() != "rpmfleet/v1/device/dev-b/online" {
		t.Errorf("server received %s, want dev-b's presence", m.Topic())
	}
}
