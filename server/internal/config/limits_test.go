package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.toml")
	os.WriteFile(path, []byte(`[http]
body_timeout = "3s"
body_min_rate = 4096
write_timeout = "30s"
max_enrolling = 8
max_enrolling_per_address = 2

[mqtt]
login_timeout = "2s"
max_pending_logins = 64
max_pending_logins_per_address = 16
`), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := HTTP{BodyTimeout: Duration(3 * time.Second), BodyMinRate: 4096, WriteTimeout: Duration(30 * time.Second), MaxEnrolling: 8, MaxEnrollingPerAddress: 2}
	if c.HTTP != want || c.MQTT.LoginTimeout != Duration(2*time.Second) || c.MQTT.MaxPendingLogins != 64 || c.MQTT.MaxPendingLoginsPerAddress != 16 {
		t.Errorf("Load = http %+v, mqtt %+v", c.HTTP, c.MQTT)
	}
	if err := c.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}

	tests := []struct {
		name string
		edit func(*Config)
		key  string
	}{
		{"body timeout of a nanosecond", func(c *Config) { c.HTTP.BodyTimeout = 1 }, "http.body_timeout"},
		{"body timeout of a day", func(c *Config) { c.HTTP.BodyTimeout = Duration(24 * time.Hour) }, "http.body_timeout"},
		{"negative rate", func(c *Config) { c.HTTP.BodyMinRate = -1 }, "http.body_min_rate"},
		{"negative write timeout", func(c *Config) { c.HTTP.WriteTimeout = Duration(-time.Second) }, "http.write_timeout"},
		{"negative enrolments", func(c *Config) { c.HTTP.MaxEnrolling = -1 }, "http.max_enrolling"},
		{"negative enrolments per address", func(c *Config) { c.HTTP.MaxEnrollingPerAddress = -1 }, "http.max_enrolling_per_address"},
		{"login timeout of an hour", func(c *Config) { c.MQTT.LoginTimeout = Duration(time.Hour) }, "mqtt.login_timeout"},
		{"negative pending logins", func(c *Config) { c.MQTT.MaxPendingLogins = -5 }, "mqtt.max_pending_logins"},
		{"negative pending logins per address", func(c *Config) { c.MQTT.MaxPendingLoginsPerAddress = -1 }, "mqtt.max_pending_logins_per_address"},
		{"login limits with an external broker", func(c *Config) { c.MQTT.Broker = "mqtts://mqtt.example.org:8883" }, "embedded broker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := c
			tt.edit(&c)
			if err := c.Check(); err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Errorf("Check = %v, want a refusal naming %s", err, tt.key)
			}
		})
	}
}
