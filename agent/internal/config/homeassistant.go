package config

import (
	"os"
	"regexp"
	"strings"
)

// DefaultDiscoveryPrefix is Home Assistant's own default discovery prefix.
const DefaultDiscoveryPrefix = "homeassistant"

// HomeAssistant is the [homeassistant] section: whether the agent announces
// itself to Home Assistant through MQTT discovery on the [mqtt] broker.
type HomeAssistant struct {
	// Enabled publishes the discovery configs and the entities' states;
	// false (the default) removes the configs an earlier run published.
	Enabled bool
	// DiscoveryPrefix is the topic root Home Assistant listens on.
	DiscoveryPrefix string
	// NodeID names the device in discovery topics and unique ids: letters,
	// digits, _ and -, at most 64. The cleaned host name when not set.
	NodeID string
}

// nodeIDRe is what Home Assistant accepts as a node_id in a discovery
// topic (its discovery topic pattern: [a-zA-Z0-9_-]+).
var nodeIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// prefixRe keeps the discovery prefix a plain topic: no wildcards, no empty
// level, no leading or trailing slash.
var prefixRe = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`)

func (d *decoder) homeAssistant(t *table, m MQTT) HomeAssistant {
	h := HomeAssistant{DiscoveryPrefix: DefaultDiscoveryPrefix}
	if t == nil {
		h.NodeID = HostNodeID()
		return h
	}
	if b, ok := t.boolean("enabled"); ok {
		h.Enabled = b
	}
	if s, ok := t.str("discovery_prefix"); ok {
		if !prefixRe.MatchString(s) || len(s) > 128 {
			d.errorf(t.key("discovery_prefix"), "bad value %q: want a topic such as homeassistant (letters, digits, _ - and /, no wildcards)", s)
		} else {
			h.DiscoveryPrefix = s
		}
	}
	if s, ok := t.str("node_id"); ok {
		if !nodeIDRe.MatchString(s) {
			d.errorf(t.key("node_id"), "bad value %q: want 1 to 64 letters, digits, _ or -", s)
		} else {
			h.NodeID = s
		}
	} else {
		h.NodeID = HostNodeID()
	}
	if h.Enabled && m.Broker == "" {
		d.errorf(t.key("enabled"), "Home Assistant needs [mqtt] broker: the broker Home Assistant reads (a fleet server's embedded broker admits devices only)")
	}
	t.done()
	return h
}

// HostNodeID is the default node_id: the host name's first label, with
// every character Home Assistant refuses in a node_id replaced by _, or
// "rpmfleet" when there is none.
func HostNodeID() string {
	h, _ := os.Hostname()
	h, _, _ = strings.Cut(h, ".")
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "rpmfleet"
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}
