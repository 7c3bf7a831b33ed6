package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestServers: the replicas of the fleet server are listed in servers,
// each checked as server is.
func TestServers(t *testing.T) {
	c, err := Parse(strings.NewReader("server = \"https://a.example\"\nservers = [\"https://b.example\", \"https://c.example:8443\"]\n"), "agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Servers, []string{"https://b.example", "https://c.example:8443"}) {
		t.Errorf("Servers = %q", c.Servers)
	}
	_, err = Parse(strings.NewReader("servers = [\"https://b.example\", \"http://c.example\"]\n"), "agent.toml")
	want := `agent.toml:1: key "servers": bad value "http://c.example": want https: plain http is allowed only to a loopback host`
	if !errors.Is(err, ErrInvalid) || err.Error() != want {
		t.Errorf("plain http replica: err = %v, want %q", err, want)
	}
}
