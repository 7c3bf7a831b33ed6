package broker

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// The tests run the real broker on a loopback port and talk to it with real
// paho clients, the library the agent uses.

type account struct {
	password  string
	principal Principal
}

// staticAuth is a fixed table of credentials.
type staticAuth map[string]account

func (a staticAuth) Authenticate(username, password string) (Principal, bool) {
	acc, ok := a[username]
	if !ok || acc.password != password {
		return Principal{}, false
	}
	return acc.principal, true
}

var testAccounts = staticAuth{
	"dev-a":  {"secret-a", Principal{DeviceID: "dev-a"}},
	"dev-b":  {"secret-b", Principal{DeviceID: "dev-b"}},
	"server": {"secret-s", Principal{Server: true}},
	"broken": {"secret-x", Principal{}},
	"both":   {"secret-y", Principal{Server: true, DeviceID: "dev-a"}},
	"slash":  {"secret-z", Principal{DeviceID: "dev/b"}},
}

const waitFor = 5 * time.Second

func startBroker(t testing.TB) *Broker {
	t.Helper()
	b, err := New(Options{Listen: "127.0.0.1:0", Auth: testAccounts})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

type conn struct {
	paho.Client
	msgs chan paho.Message
	raw  chan net.Conn // the TCP connection, so a test can cut it
}

type connOpts struct {
	clientID, user, pass string
	willTopic            string
	// from is the loopback address to connect from ("127.0.0.2"); empty
	// means the system's choice.
	from string
}

// dial connects a paho client without auto-reconnect; every message that
// arrives, on any subscription, lands on msgs.
func dial(t testing.TB, b *Broker, o connOpts) (*conn, error) {
	t.Helper()
	c := &conn{msgs: make(chan paho.Message, 1000), raw: make(chan net.Conn, 1)}
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + b.Addr()).
		SetClientID(o.clientID).
		SetAutoReconnect(false).
		SetConnectTimeout(waitFor).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m }).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			var d net.Dialer
			if o.from != "" {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(o.from)}
			}
			nc, err := d.Dial("tcp", u.Host)
			if err == nil {
				select { // paho may dial twice (3.1.1, then 3.1)
				case <-c.raw:
				default:
				}
				c.raw <- nc
			}
			return nc, err
		})
	if o.user != "" {
		opts.SetUsername(o.user).SetPassword(o.pass)
	}
	if o.willTopic != "" {
		opts.SetWill(o.willTopic, protocol.PayloadOffline, 1, true)
	}
	c.Client = paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(waitFor) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func mustDial(t testing.TB, b *Broker, id, pass string) *conn {
	t.Helper()
	c, err := dial(t, b, connOpts{clientID: id, user: id, pass: pass})
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c
}

// subscribe subscribes at QoS 1 and returns the SUBACK return code.
func (c *conn) subscribe(t testing.TB, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func (c *conn) publish(t testing.TB, topic, payload string, qos byte, retain bool) {
	t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// next returns the next message, failing the test if none comes.
func (c *conn) next(t testing.TB) paho.Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitFor):
		t.Fatal("no message arrived")
		return nil
	}
}

// until returns the topics and payloads of every message up to and
// including the first on marker. Messages on one connection arrive in the
// order the broker handled them, so anything published before the marker
// and not listed here was not delivered.
func (c *conn) until(t testing.TB, marker string) []string {
	t.Helper()
	var got []string
	for {
		m := c.next(t)
		got = append(got, m.Topic()+"="+string(m.Payload()))
		if m.Topic() == marker {
			return got
		}
	}
}

const subackFailure = 0x80 // MQTT 3.1.1 SUBACK "Failure"

func TestDeviceReceivesFeedAndOwnCommands(t *testing.T) {
	b := startBroker(t)
	// The feed notice is retained: a device that connects later still
	// gets the latest one.
	if err := b.Publish(protocol.TopicAdvisoryFeed, []byte("notice-1"), true); err != nil {
		t.Fatal(err)
	}
	a := mustDial(t, b, "dev-a", "secret-a")
	for _, f := range []string{protocol.TopicAdvisoryFeed, protocol.DeviceCommandTopic("dev-a")} {
		if rc := a.subscribe(t, f); rc != 1 {
			t.Fatalf("subscribe %s: SUBACK code %#x, want granted QoS 1", f, rc)
		}
	}
	if m := a.next(t); m.Topic() != protocol.TopicAdvisoryFeed || string(m.Payload()) != "notice-1" || !m.Retained() {
		t.Fatalf("first message = %s %q retained=%v, want the retained feed notice", m.Topic(), m.Payload(), m.Retained())
	}
	if err := b.Publish(protocol.DeviceCommandTopic("dev-a"), []byte("check"), false); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(protocol.TopicAdvisoryFeed, []byte("notice-2"), true); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(a.until(t, protocol.TopicAdvisoryFeed), " ")
	want := protocol.DeviceCommandTopic("dev-a") + "=check " + protocol.TopicAdvisoryFeed + "=notice-2"
	if got != want {
		t.Fatalf("received %s, want %s", got, want)
	}
}

func TestDeviceCannotReadOtherTopics(t *testing.T) {
	b := startBroker(t)
	a := mustDial(t, b, "dev-a", "secret-a")
	if rc := a.subscribe(t, protocol.DeviceCommandTopic("dev-a")); rc != 1 {
		t.Fatalf("own command topic: SUBACK %#x", rc)
	}
	for _, filter := range []string{
		protocol.DeviceCommandTopic("dev-b"),
		protocol.DeviceStateTopic("dev-b"),
		protocol.DeviceOnlineTopic("dev-b"),
		protocol.DeviceStateTopic("dev-a"), // its own state is write-only
		protocol.TopicPrefix + "device/+/command",
		protocol.TopicPrefix + "#",
		"#",
		"$SYS/#",
	} {
		t.Run(filter, func(t *testing.T) {
			if rc := a.subscribe(t, filter); rc != subackFailure {
				t.Fatalf("SUBACK code %#x, want %#x (refused)", rc, subackFailure)
			}
		})
	}
	// Even so, what the server sends to B must not reach A: publish to B,
	// then to A; A's first message must be its own.
	for _, topic := range []string{protocol.DeviceCommandTopic("dev-b"), protocol.DeviceStateTopic("dev-b")} {
		if err := b.Publish(topic, []byte("for-b"), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(protocol.DeviceCommandTopic("dev-a"), []byte("for-a"), false); err != nil {
		t.Fatal(err)
	}
	got := a.until(t, protocol.DeviceCommandTopic("dev-a"))
	if want := protocol.DeviceCommandTopic("dev-a") + "=for-a"; len(got) != 1 || got[0] != want {
		t.Fatalf("device A received %q, want only %q", got, want)
	}
}

func TestDeviceCannotWriteOtherTopics(t *testing.T) {
	b := startBroker(t)
	observer := mustDial(t, b, "server", "secret-s")
	if rc := observer.subscribe(t, protocol.TopicPrefix+"#"); rc != 1 {
		t.Fatalf("server principal subscribing to everything: SUBACK %#x", rc)
	}
	a := mustDial(t, b, "dev-a", "secret-a")
	for _, topic := range []string{
		protocol.DeviceStateTopic("dev-b"),
		protocol.DeviceOnlineTopic("dev-b"),
		protocol.DeviceCommandTopic("dev-b"),
		protocol.DeviceCommandTopic("dev-a"), // only the server commands
		protocol.TopicAdvisoryFeed,
	} {
		a.publish(t, topic, "forged", 0, true)
	}
	// The allowed ones are not retained: see TestLastWillOnCutConnection.
	a.publish(t, protocol.DeviceOnlineTopic("dev-a"), protocol.PayloadOnline, 0, false)
	a.publish(t, protocol.DeviceStateTopic("dev-a"), "state-a", 0, false)
	got := observer.until(t, protocol.DeviceStateTopic("dev-a"))
	want := []string{
		protocol.DeviceOnlineTopic("dev-a") + "=online",
		protocol.DeviceStateTopic("dev-a") + "=state-a",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("server saw %q, want only %q", got, want)
	}
	// Nothing forged was retained either: a fresh subscriber to the feed
	// gets no retained notice.
	late := mustDial(t, b, "dev-b", "secret-b")
	late.subscribe(t, protocol.TopicAdvisoryFeed)
	late.subscribe(t, protocol.DeviceCommandTopic("dev-b"))
	if err := b.Publish(protocol.DeviceCommandTopic("dev-b"), []byte("marker"), false); err != nil {
		t.Fatal(err)
	}
	if got := late.until(t, protocol.DeviceCommandTopic("dev-b")); len(got) != 1 {
		t.Fatalf("device B received %q: a forged message was retained", got)
	}
}

// A QoS 1 publication outside the ACL cannot be answered with a negative
// PUBACK in MQTT 3.1.1, so mochi disconnects the client; the message is
// dropped all the same.
func TestForbiddenQoS1PublishDisconnects(t *testing.T) {
	b := startBroker(t)
	observer := mustDial(t, b, "server", "secret-s")
	observer.subscribe(t, protocol.TopicPrefix+"#")
	a := mustDial(t, b, "dev-a", "secret-a")
	a.Publish(protocol.TopicAdvisoryFeed, 1, false, "forged").WaitTimeout(time.Second)
	deadline := time.Now().Add(waitFor)
	for a.IsConnectionOpen() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if a.IsConnectionOpen() {
		t.Fatal("client still connected after a forbidden QoS 1 publish")
	}
	if err := b.Publish(protocol.DeviceStateTopic("dev-a"), []byte("marker"), false); err != nil {
		t.Fatal(err)
	}
	if got := observer.until(t, protocol.DeviceStateTopic("dev-a")); len(got) != 1 {
		t.Fatalf("server saw %q, want only the marker", got)
	}
}

func TestConnectRefused(t *testing.T) {
	b := startBroker(t)
	for _, tc := range []struct {
		name string
		o    connOpts
	}{
		{"anonymous", connOpts{clientID: "dev-a"}},
		{"wrong password", connOpts{clientID: "dev-a", user: "dev-a", pass: "secret-b"}},
		{"unknown user", connOpts{clientID: "dev-c", user: "dev-c", pass: "secret-a"}},
		{"empty password", connOpts{clientID: "dev-a", user: "dev-a"}},
		{"client id of another device", connOpts{clientID: "dev-b", user: "dev-a", pass: "secret-a"}},
		{"last will on another device's topic", connOpts{clientID: "dev-a", user: "dev-a", pass: "secret-a", willTopic: protocol.DeviceOnlineTopic("dev-b")}},
		{"last will on the feed", connOpts{clientID: "dev-a", user: "dev-a", pass: "secret-a", willTopic: protocol.TopicAdvisoryFeed}},
		{"principal neither server nor device", connOpts{clientID: "broken", user: "broken", pass: "secret-x"}},
		{"principal both server and device", connOpts{clientID: "dev-a", user: "both", pass: "secret-y"}},
		{"device id with a slash", connOpts{clientID: "dev/b", user: "slash", pass: "secret-z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dial(t, b, tc.o)
			if err == nil {
				c.Disconnect(0)
				t.Fatal("connection accepted")
			}
			// mochi answers MQTT 3.1.1 clients with return code 5.
			if !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) {
				t.Fatalf("error %q, want the CONNACK refusal %q", err, pahopackets.ErrorRefusedNotAuthorised)
			}
		})
	}
	// The refusals leave the right credentials working.
	mustDial(t, b, "dev-a", "secret-a")
}

func TestLastWillOnCutConnection(t *testing.T) {
	b := startBroker(t)
	observer := mustDial(t, b, "server", "secret-s")
	online := protocol.DeviceOnlineTopic("dev-a")
	observer.subscribe(t, online)

	a, err := dial(t, b, connOpts{clientID: "dev-a", user: "dev-a", pass: "secret-a", willTopic: online})
	if err != nil {
		t.Fatal(err)
	}
	// Not retained: mochi sends retained messages to a new subscription
	// after its SUBACK, so a retained "online" could reach the observer
	// twice.
	a.publish(t, online, protocol.PayloadOnline, 1, false)
	if m := observer.next(t); string(m.Payload()) != protocol.PayloadOnline {
		t.Fatalf("got %q, want online", m.Payload())
	}
	// Cut the TCP connection under the client, as a power cut or a lost
	// link would: no DISCONNECT packet reaches the broker.
	(<-a.raw).Close()
	if m := observer.next(t); m.Topic() != online || string(m.Payload()) != protocol.PayloadOffline {
		t.Fatalf("got %s %q, want the last will %q", m.Topic(), m.Payload(), protocol.PayloadOffline)
	}
	// The will is retained, so whoever looks later sees the device offline.
	late, err := dial(t, b, connOpts{clientID: "server-late", user: "server", pass: "secret-s"})
	if err != nil {
		t.Fatal(err)
	}
	late.subscribe(t, online)
	if m := late.next(t); string(m.Payload()) != protocol.PayloadOffline || !m.Retained() {
		t.Fatalf("late subscriber got %q retained=%v, want retained %q", m.Payload(), m.Retained(), protocol.PayloadOffline)
	}
}

func TestOptions(t *testing.T) {
	t.Run("no authenticator", func(t *testing.T) {
		if _, err := New(Options{Listen: "127.0.0.1:0"}); !errors.Is(err, ErrNoAuthenticator) {
			t.Fatalf("err = %v, want ErrNoAuthenticator", err)
		}
	})
	t.Run("off", func(t *testing.T) {
		b, err := New(Options{Listen: ListenOff, Auth: testAccounts})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if b.Addr() != "" {
			t.Fatalf("Addr = %q with the listener off", b.Addr())
		}
		if err := b.Publish(protocol.TopicAdvisoryFeed, []byte("n"), true); err != nil {
			t.Fatalf("Publish with the listener off: %v", err)
		}
	})
	t.Run("port in use", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, err = New(Options{Listen: l.Addr().String(), Auth: testAccounts})
		if err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
			t.Fatalf("err = %v, want one naming %s", err, l.Addr())
		}
	})
	t.Run("bad publish topics", func(t *testing.T) {
		b := startBroker(t)
		for _, topic := range []string{"other/topic", protocol.TopicPrefix + "#", protocol.TopicPrefix + "device/+/command", ""} {
			if err := b.Publish(topic, nil, false); !errors.Is(err, ErrBadTopic) {
				t.Errorf("Publish(%q) = %v, want ErrBadTopic", topic, err)
			}
		}
	})
}

func TestServerSubscribeSeesPresenceAndState(t *testing.T) {
	b := startBroker(t)
	got := make(chan Message, 100)
	if err := b.Subscribe(protocol.TopicPrefix+"device/+/online", func(m Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe(protocol.TopicPrefix+"device/+/state", func(m Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe("elsewhere/#", func(Message) {}); !errors.Is(err, ErrBadTopic) {
		t.Fatalf("Subscribe outside the prefix = %v, want ErrBadTopic", err)
	}
	a, err := dial(t, b, connOpts{clientID: "dev-a", user: "dev-a", pass: "secret-a", willTopic: protocol.DeviceOnlineTopic("dev-a")})
	if err != nil {
		t.Fatal(err)
	}
	a.publish(t, protocol.DeviceOnlineTopic("dev-a"), protocol.PayloadOnline, 1, true)
	a.publish(t, protocol.DeviceStateTopic("dev-b"), "forged", 0, true) // dropped
	a.publish(t, protocol.DeviceStateTopic("dev-a"), "state-a", 1, true)
	(<-a.raw).Close()
	want := []string{
		protocol.DeviceOnlineTopic("dev-a") + "=online",
		protocol.DeviceStateTopic("dev-a") + "=state-a",
		protocol.DeviceOnlineTopic("dev-a") + "=offline",
	}
	for _, w := range want {
		select {
		case m := <-got:
			if s := m.Topic + "=" + string(m.Payload); s != w {
				t.Fatalf("server got %s, want %s", s, w)
			}
		case <-time.After(waitFor):
			t.Fatalf("server never got %s", w)
		}
	}
	// A subscription made later starts with the retained messages.
	late := make(chan Message, 10)
	if err := b.Subscribe(protocol.DeviceStateTopic("dev-a"), func(m Message) { late <- m }); err != nil {
		t.Fatal(err)
	}
	if m := <-late; string(m.Payload) != "state-a" || !m.Retained {
		t.Fatalf("late subscription got %q retained=%v, want retained state-a", m.Payload, m.Retained)
	}
}

func TestOversizedPublishDropped(t *testing.T) {
	b := startBroker(t)
	got := make(chan Message, 10)
	if err := b.Subscribe(protocol.DeviceStateTopic("dev-a"), func(m Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	a := mustDial(t, b, "dev-a", "secret-a")
	a.Publish(protocol.DeviceStateTopic("dev-a"), 0, true, make([]byte, MaxPacketSize)).WaitTimeout(waitFor)
	deadline := time.Now().Add(waitFor)
	for a.IsConnectionOpen() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if a.IsConnectionOpen() {
		t.Fatal("client still connected after an oversized packet")
	}
	a2 := mustDial(t, b, "dev-a", "secret-a")
	a2.publish(t, protocol.DeviceStateTopic("dev-a"), "small", 1, true)
	if m := <-got; string(m.Payload) != "small" {
		t.Fatalf("server got a %d-byte state first, want the small one", len(m.Payload))
	}
}

// TestNoTCPKeepAliveProbes: the broker's side of a connection runs no TCP
// keepalive timer. Go's default probes every idle connection every 15 s,
// which on a device's permanent MQTT connection cost more than half a
// megabyte a day; MQTT's own keepalive finds dead clients. The kernel's
// view (/proc/net/tcp, timer 2 = keepalive) of the accepted socket is
// read, since the socket itself lives inside mochi.
func TestNoTCPKeepAliveProbes(t *testing.T) {
	b := startBroker(t)
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, port, _ := net.SplitHostPort(b.Addr())
	p, _ := strconv.Atoi(port)
	local := fmt.Sprintf(":%04X", p)
	deadline := time.Now().Add(5 * time.Second)
	for {
		tab, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(tab), "\n")[1:] {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when ...
			f := strings.Fields(line)
			if len(f) < 6 || !strings.HasSuffix(f[1], local) || f[3] != "01" {
				continue // not an established connection on the broker's port
			}
			if strings.HasPrefix(f[5], "02:") {
				t.Fatalf("the broker's socket %s runs a keepalive timer (%s)", f[1], f[5])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no established connection on port %d in /proc/net/tcp", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
