package config

import (
	"strings"
	"testing"
)

// TestBrokerSchemes: paho's tcp://, ssl:// and tls:// are taken as
// mqtt:// and mqtts://, with the same rule that a password never crosses
// the network in clear.
func TestBrokerSchemes(t *testing.T) {
	for _, c := range []struct {
		broker, want string // want: "" accepted, else part of the error
	}{
		{"tcp://127.0.0.1:1883", ""},
		{"ssl://b.example:8883", ""},
		{"tls://b.example", ""},
		{"mqtts://b.example", ""},
		{"tcp://b.example:1883", "a password would cross the network in clear"},
		{"ws://b.example", "MQTT over WebSocket is not supported"},
		{"http://b.example", `scheme "http": want mqtt, mqtts (or paho's tcp, ssl, tls)`},
	} {
		src := "[mqtt]\nbroker = \"" + c.broker + "\"\nusername = \"dev\"\npassword_file = \"/etc/rpmfleet/mqtt-password\"\n"
		_, err := Parse(strings.NewReader(src), "agent.toml")
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want accepted", c.broker, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error saying %q", c.broker, err, c.want)
		}
	}
}
