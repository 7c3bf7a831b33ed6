package config

import (
	"strings"
	"testing"
)

// TestHomeAssistantSection: the defaults, a full section, and each bad value
// refused naming its key and line.
func TestHomeAssistantSection(t *testing.T) {
	c, err := parse(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if h := c.HomeAssistant; h.Enabled || h.DiscoveryPrefix != "homeassistant" || h.NodeID != HostNodeID() || !nodeIDRe.MatchString(h.NodeID) {
		t.Errorf("defaults: %+v", h)
	}
	c, err = parse(t, "[mqtt]\nbroker = \"mqtt://127.0.0.1\"\n[homeassistant]\nenabled = true\ndiscovery_prefix = \"ha/disc\"\nnode_id = \"pi-kitchen_2\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if h := c.HomeAssistant; !h.Enabled || h.DiscoveryPrefix != "ha/disc" || h.NodeID != "pi-kitchen_2" {
		t.Errorf("section read wrong: %+v", h)
	}
	tests := []struct {
		name, src, want string
	}{
		{"wildcard prefix", "[homeassistant]\ndiscovery_prefix = \"home/#\"\n", "agent.toml:2: key \"homeassistant.discovery_prefix\": bad value"},
		{"empty level", "[homeassistant]\ndiscovery_prefix = \"home//x\"\n", "agent.toml:2: key \"homeassistant.discovery_prefix\": bad value"},
		{"node id with a slash", "[homeassistant]\nnode_id = \"a/b\"\n", "agent.toml:2: key \"homeassistant.node_id\": bad value"},
		{"node id too long", "[homeassistant]\nnode_id = \"" + strings.Repeat("x", 65) + "\"\n", "key \"homeassistant.node_id\": bad value"},
		{"enabled without a broker", "[homeassistant]\nenabled = true\n", "agent.toml:2: key \"homeassistant.enabled\": Home Assistant needs [mqtt] broker"},
		{"unknown key", "[homeassistant]\nprefix = \"x\"\n", "homeassistant.prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
