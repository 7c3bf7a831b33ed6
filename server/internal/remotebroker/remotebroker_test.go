package remotebroker

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/internal/mqtttest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

const devID = "0123456789abcdef"

// device connects as a device would (username = client id = device id)
// and returns what arrives on the topics it subscribes to.
func device(t *testing.T, m *mqtttest.Mosquitto, topics ...string) <-chan paho.Message {
	t.Helper()
	got := make(chan paho.Message, 16)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(m.URL()).SetClientID(devID).
		SetUsername(devID).SetPassword("pw-dev").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	for _, topic := range topics {
		tok := c.Subscribe(topic, 1, func(_ paho.Client, msg paho.Message) { got <- msg })
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("device subscribe %s: %v", topic, tok.Error())
		}
	}
	return got
}

func receive(t *testing.T, got <-chan paho.Message, topic, payload string, retained bool) {
	t.Helper()
	select {
	case msg := <-got:
		if msg.Topic() != topic || string(msg.Payload()) != payload || msg.Retained() != retained {
			t.Fatalf("received %s %q retained %v; want %s %q retained %v", msg.Topic(), msg.Payload(), msg.Retained(), topic, payload, retained)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("nothing arrived on %s", topic)
	}
}

func TestPublishThroughMosquitto(t *testing.T) {
	m := mqtttest.Start(t, mqtttest.Options{
		Users: map[string]string{"rpmfleet-server": "pw-server", devID: "pw-dev"},
		ACL:   mqtttest.FleetACL("rpmfleet-server"),
	})
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte("pw-server\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw, err := ReadPassword(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Dial(Options{URL: strings.Replace(m.URL(), "tcp://", "mqtt://", 1), Username: "rpmfleet-server", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// A retained feed notice reaches a device that subscribes later.
	if err := p.Publish(protocol.TopicAdvisoryFeed, []byte("notice-1"), true); err != nil {
		t.Fatal(err)
	}
	got := device(t, m, protocol.TopicAdvisoryFeed, protocol.DeviceCommandTopic(devID))
	receive(t, got, protocol.TopicAdvisoryFeed, "notice-1", true)
	// A command reaches the connected device, not retained.
	if err := p.Publish(protocol.DeviceCommandTopic(devID), []byte("cmd-1"), false); err != nil {
		t.Fatal(err)
	}
	receive(t, got, protocol.DeviceCommandTopic(devID), "cmd-1", false)

	if err := p.Publish("rpmfleet/v1/#", nil, false); !errors.Is(err, ErrBadOptions) {
		t.Fatalf("publish to a wildcard: %v, want ErrBadOptions", err)
	}

	// The broker goes away: publishing fails at once, naming the broker;
	// it comes back: the connection is re-established on its own.
	m.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for p.Publish(protocol.TopicAdvisoryFeed, []byte("lost"), true) == nil {
		if time.Now().After(deadline) {
			t.Fatal("publishing still succeeds with the broker stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.Restart()
	deadline = time.Now().Add(20 * time.Second)
	for {
		err := p.Publish(protocol.TopicAdvisoryFeed, []byte("notice-2"), true)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnection 20 s after the broker came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got = device(t, m, protocol.TopicAdvisoryFeed)
	receive(t, got, protocol.TopicAdvisoryFeed, "notice-2", true)
}

func TestDialRefused(t *testing.T) {
	m := mqtttest.Start(t, mqtttest.Options{
		Users: map[string]string{"rpmfleet-server": "pw-server"},
		ACL:   mqtttest.FleetACL("rpmfleet-server"),
	})
	tlsBroker := mqtttest.Start(t, mqtttest.Options{TLS: true})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	tests := []struct {
		name  string
		opts  Options
		words string
	}{
		{"wrong password", Options{URL: m.URL(), Username: "rpmfleet-server", Password: "nope"}, "connect to"},
		{"http URL", Options{URL: "http://" + m.Addr}, "scheme"},
		{"no host", Options{URL: "mqtt://"}, "not a broker URL"},
		{"nobody listening", Options{URL: "mqtt://127.0.0.1:1", ConnectTimeout: 2 * time.Second}, "connect to"},
		{"TLS broker, unknown CA", Options{URL: tlsBroker.URL(), ConnectTimeout: 5 * time.Second}, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Dial(tt.opts)
			if err == nil {
				p.Close()
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(err.Error(), tt.words) || strings.Contains(err.Error(), "nope") {
				t.Fatalf("Dial: %v, want an error saying %q without the password", err, tt.words)
			}
		})
	}
	// With the broker's CA, TLS works.
	writeCAPEM(t, tlsBroker, caFile)
	pool, err := ReadCA(caFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Dial(Options{URL: tlsBroker.URL(), RootCAs: pool})
	if err != nil {
		t.Fatalf("Dial over TLS with the broker's CA: %v", err)
	}
	if err := p.Publish(protocol.TopicAdvisoryFeed, []byte("x"), true); err != nil {
		t.Fatal(err)
	}
	p.Close()

	if _, err := ReadCA(filepath.Join(t.TempDir(), "missing.pem")); !errors.Is(err, ErrBadOptions) {
		t.Fatalf("ReadCA of a missing file: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\nsecond line\n"), 0o600)
	if _, err := ReadPassword(empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Fatalf("ReadPassword with an empty first line: %v", err)
	}
}

// writeCAPEM writes the self-signed certificate the TLS broker presents
// to path, as an admin would save the broker's CA.
func writeCAPEM(t *testing.T, m *mqtttest.Mosquitto, path string) {
	t.Helper()
	conn, err := tls.Dial("tcp", m.Addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		t.Fatal("the TLS broker presented no certificate")
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[len(certs)-1].Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
}
