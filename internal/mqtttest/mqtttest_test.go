package mqtttest

import (
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

func connect(m *Mosquitto, id, user, pass string) (paho.Client, error) {
	opts := paho.NewClientOptions().AddBroker(m.URL()).SetClientID(id).
		SetAutoReconnect(false).SetProtocolVersion(4).SetConnectTimeout(5 * time.Second)
	if user != "" {
		opts.SetUsername(user).SetPassword(pass)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	tok.WaitTimeout(5 * time.Second)
	return c, tok.Error()
}

func TestAnonymousStopRestart(t *testing.T) {
	m := Start(t, Options{})
	c, err := connect(m, "anon", "", "")
	if err != nil {
		t.Fatalf("anonymous connect: %v", err)
	}
	c.Disconnect(0)

	m.Stop()
	if nc, err := net.DialTimeout("tcp", m.Addr, time.Second); err == nil {
		nc.Close()
		t.Fatal("broker still listening after Stop")
	}
	m.Stop() // twice is harmless

	m.Restart()
	c, err = connect(m, "anon", "", "")
	if err != nil {
		t.Fatalf("connect after Restart: %v", err)
	}
	c.Disconnect(0)
}

func TestPasswordsAndFleetACL(t *testing.T) {
	m := Start(t, Options{
		Users: map[string]string{"dev-a": "pw-a", "server": "pw-s"},
		ACL:   FleetACL("server"),
	})
	for _, tc := range []struct{ name, user, pass string }{
		{"anonymous", "", ""},
		{"wrong password", "dev-a", "pw-s"},
		{"unknown user", "dev-z", "pw-a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := connect(m, "x", tc.user, tc.pass); err == nil {
				c.Disconnect(0)
				t.Fatal("connection accepted")
			}
		})
	}

	dev, err := connect(m, "dev-a", "dev-a", "pw-a")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Disconnect(0)
	srv, err := connect(m, "server", "server", "pw-s")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Disconnect(0)

	got := make(chan string, 10)
	sub := func(c paho.Client, filter string) {
		t.Helper()
		tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() + "=" + string(m.Payload()) })
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", filter, tok.Error())
		}
	}
	pub := func(c paho.Client, topic, payload string) {
		t.Helper()
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	// The device listens on another device's command topic as well as its
	// own; the ACL lets only its own through.
	sub(dev, protocol.DeviceCommandTopic("dev-b"))
	sub(dev, protocol.DeviceCommandTopic("dev-a"))
	sub(srv, protocol.TopicPrefix+"#")
	pub(srv, protocol.DeviceCommandTopic("dev-b"), "for-b")
	pub(dev, protocol.TopicAdvisoryFeed, "forged") // denied: dropped
	pub(srv, protocol.DeviceCommandTopic("dev-a"), "for-a")

	// The server sees its two commands; the device only its own. Each
	// connection delivers in order, so a leaked message would come before
	// the for-a on its connection; a short quiet wait catches stragglers.
	var seen []string
	for quiet := time.After(5 * time.Second); ; {
		select {
		case s := <-got:
			seen = append(seen, s)
			if len(seen) == 3 {
				quiet = time.After(300 * time.Millisecond)
			}
			continue
		case <-quiet:
		}
		break
	}
	sort.Strings(seen)
	want := []string{
		protocol.DeviceCommandTopic("dev-a") + "=for-a",
		protocol.DeviceCommandTopic("dev-a") + "=for-a",
		protocol.DeviceCommandTopic("dev-b") + "=for-b",
	}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Fatalf("saw %q, want %q", seen, want)
	}
}
