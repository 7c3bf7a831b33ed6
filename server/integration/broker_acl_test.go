package integration

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// mqttClient is a plain MQTT client logged in to a broker as someone, that
// records every message it is sent.
type mqttClient struct {
	c paho.Client

	mu  sync.Mutex // guards got
	got []paho.Message
}

// dialMQTT connects to the broker at addr as user with password; it
// returns the connection error instead of failing the test.
func dialMQTT(t *testing.T, addr, clientID, user, password string) (*mqttClient, error) {
	t.Helper()
	m := &mqttClient{}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetUsername(user).SetPassword(password).SetAutoReconnect(false).SetConnectRetry(false).
		SetDefaultPublishHandler(func(_ paho.Client, msg paho.Message) { m.record(msg) })
	m.c = paho.NewClient(opts)
	tok := m.c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect as %s: timed out", user)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { m.c.Disconnect(100) })
	return m, nil
}

func (m *mqttClient) record(msg paho.Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, msg)
}

// subscribe asks for filter and returns the QoS the broker granted (128:
// refused).
func (m *mqttClient) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	tok := m.c.Subscribe(filter, 1, func(_ paho.Client, msg paho.Message) { m.record(msg) })
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("subscribe %s: timed out", filter)
	}
	if err := tok.Error(); err != nil {
		return 128
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

// on lists the payloads received on topic.
func (m *mqttClient) on(topic string) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]byte
	for _, msg := range m.got {
		if msg.Topic() == topic {
			out = append(out, msg.Payload())
		}
	}
	return out
}

// TestDaemonEmbeddedBrokerACL: the embedded broker lets a device in only
// with its own id and credential, and keeps it to its own topics: device A
// cannot read B's commands, even through a wildcard, and cannot publish on
// the fleet's feed topic.
func TestDaemonEmbeddedBrokerACL(t *testing.T) {
	repo := newFleetRepo(t)
	srv, mqttAddr := startPushServer(t, filepath.Join(t.TempDir(), "data"))
	dumpOnFailure(t, srv)
	a := enrollAgent(t, srv, repo, "pi-acl-a", repo.deviceRoot(t))
	b := enrollAgent(t, srv, repo, "pi-acl-b", repo.deviceRoot(t))

	if _, err := dialMQTT(t, mqttAddr, a.id, a.id, b.credential); err == nil {
		t.Errorf("the broker let %s in with %s's credential", a.name, b.name)
	}
	if _, err := dialMQTT(t, mqttAddr, "nobody", "nobody", "guess"); err == nil {
		t.Errorf("the broker let an unknown user in")
	}
	mb, err := dialMQTT(t, mqttAddr, b.id, b.id, b.credential)
	if err != nil {
		t.Fatalf("%s with its own credential: %v", b.name, err)
	}
	ma, err := dialMQTT(t, mqttAddr, a.id, a.id, a.credential)
	if err != nil {
		t.Fatalf("%s with its own credential: %v", a.name, err)
	}
	bCmd := protocol.DeviceCommandTopic(b.id)
	if q := mb.subscribe(t, bCmd); q > 2 {
		t.Fatalf("%s may not read its own command topic (granted %d)", b.name, q)
	}
	if q := mb.subscribe(t, protocol.TopicAdvisoryFeed); q > 2 {
		t.Fatalf("%s may not read the feed (granted %d)", b.name, q)
	}
	qa := ma.subscribe(t, bCmd)
	qw := ma.subscribe(t, protocol.TopicPrefix+"#")
	t.Logf("%s asked for %s's command topic: granted %d; for %s#: granted %d", a.name, b.name, qa, protocol.TopicPrefix, qw)

	forged := []byte("published on the feed by " + a.name)
	ma.c.Publish(protocol.TopicAdvisoryFeed, 1, true, forged).WaitTimeout(5 * time.Second)

	// A genuine command to b: b gets it, a must not.
	must(t, adminEnv(srv), "rpmfleet", "command", b.name, "check")
	waitFor(t, 10*time.Second, b.name+" to receive its command", func() (bool, string) {
		return len(mb.on(bCmd)) == 1, fmt.Sprintf("%d messages", len(mb.on(bCmd)))
	})
	if n := len(ma.on(bCmd)); n != 0 {
		t.Errorf("%s read %d of %s's commands", a.name, n, b.name)
	}
	for _, p := range mb.on(protocol.TopicAdvisoryFeed) {
		if bytes.Equal(p, forged) {
			t.Errorf("%s published on %s and %s received it", a.name, protocol.TopicAdvisoryFeed, b.name)
		}
	}
	// Nor is it the retained feed a new session gets (the broker takes a
	// device's own id as its client id only).
	mb.c.Disconnect(100)
	mc, err := dialMQTT(t, mqttAddr, b.id, b.id, b.credential)
	if err != nil {
		t.Fatal(err)
	}
	mc.subscribe(t, protocol.TopicAdvisoryFeed)
	mc.subscribe(t, bCmd)
	must(t, adminEnv(srv), "rpmfleet", "command", b.name, "report")
	waitFor(t, 10*time.Second, b.name+" to receive its second command", func() (bool, string) {
		return len(mc.on(bCmd)) == 1, fmt.Sprintf("%d messages", len(mc.on(bCmd)))
	})
	for _, p := range mc.on(protocol.TopicAdvisoryFeed) {
		if strings.Contains(string(p), a.name) {
			t.Errorf("the feed's retained message is %s's: %q", a.name, p)
		}
	}
}
