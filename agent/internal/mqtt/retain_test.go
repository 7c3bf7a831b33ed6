package mqtt

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/internal/mqtttest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestRetainAnonymousAndSubscribe is the home set-up: an anonymous client on
// a Mosquitto that admits anyone keeps retained messages besides its state
// (Home Assistant's discovery configs), publishes them again after the
// broker restarts and loses them, removes one with an empty payload (sent
// once, then forgotten: not sent again on the next connection), and gets
// what arrives on its extra subscriptions.
func TestRetainAnonymousAndSubscribe(t *testing.T) {
	m := mqtttest.Start(t, mqtttest.Options{})
	got := make(chan paho.Message, 100)
	obs := paho.NewClient(paho.NewClientOptions().AddBroker(m.URL()).SetClientID("ha").
		SetAutoReconnect(true).SetMaxReconnectInterval(100 * time.Millisecond).
		SetOnConnectHandler(func(c paho.Client) {
			c.Subscribe("disc/#", 1, func(_ paho.Client, msg paho.Message) { got <- msg })
		}))
	if tok := obs.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	defer obs.Disconnect(0)
	expect := func(topic, payload string) {
		t.Helper()
		deadline := time.After(waitFor)
		for {
			select {
			case msg := <-got:
				if msg.Topic() == topic && string(msg.Payload()) == payload {
					return
				}
			case <-deadline:
				t.Fatalf("never saw %s = %q", topic, payload)
			}
		}
	}

	c := newClient(t, m, "pi", func(o *Options) {
		o.Credential, o.Anonymous = "", true
		o.Subscribe = []string{"hass/status"}
	})
	c.Retain("disc/a/config", []byte("A"))
	c.Retain("disc/b/config", []byte("B"))
	c.Start()
	expect("disc/a/config", "A")
	expect("disc/b/config", "B")
	c.Retain("disc/b/config", nil)
	expect("disc/b/config", "")

	if tok := obs.Publish("hass/status", 1, false, "online"); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if msg := next(t, c); msg.Topic != "hass/status" || string(msg.Payload) != "online" {
		t.Fatalf("message %s %q, want hass/status online", msg.Topic, msg.Payload)
	}

	// Mosquitto here keeps nothing across a restart: the client must
	// publish its retained messages again, and not the removed one.
	m.Restart()
	expect("disc/a/config", "A")
	select {
	case msg := <-got:
		if msg.Topic() == "disc/b/config" {
			t.Fatalf("the removed config was published again: %q", msg.Payload())
		}
	case <-time.After(500 * time.Millisecond):
	}
	// The presence (the last will's topic) is back too, retained.
	obs.Subscribe(protocol.DeviceOnlineTopic("pi"), 1, func(_ paho.Client, msg paho.Message) { got <- msg }).WaitTimeout(waitFor)
	expect(protocol.DeviceOnlineTopic("pi"), protocol.PayloadOnline)
}
