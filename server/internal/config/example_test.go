package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestShippedExample: the server.toml.example the server package ships
// loads and passes Check as shipped and with every commented-out key and
// table switched on, so the example cannot drift from the parser; a
// misspelt key in it is refused naming the key.
func TestShippedExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "cross", "rpmpkg", "files", "server.toml.example"))
	if err != nil {
		t.Fatal(err)
	}
	example := string(b)
	allKeys := regexp.MustCompile(`(?m)^# ([a-z_]+ = |\[)`).ReplaceAllString(example, "$1")
	if strings.Count(allKeys, "\n") != strings.Count(example, "\n") || allKeys == example {
		t.Fatal("uncommenting the example changed nothing")
	}
	dir := t.TempDir()
	tests := []struct {
		name, text string
		check      func(t *testing.T, c Config)
		err        string
	}{
		{name: "as shipped", text: example, check: func(t *testing.T, c Config) {
			if d := Default(); c.Data != d.Data || c.Listen != d.Listen || c.TLS != "" || len(c.Repositories) != 0 || c.MQTT != (MQTT{}) || len(c.Webhooks) != 0 {
				t.Errorf("the example as shipped changed the defaults: %+v", c)
			}
		}},
		{name: "every key", text: allKeys, check: func(t *testing.T, c Config) {
			if c.Data != "/var/lib/rpmfleet-server" || c.TLS != "auto" || c.MQTT.Listen != "127.0.0.1:1883" ||
				len(c.Repositories) != 1 || c.FleetLock.Groups["workers"] != 2 || c.Rollouts.TickOrDefault().String() != "5s" ||
				len(c.Webhooks) != 1 || c.Webhooks[0].Name != "ops" || len(c.Webhooks[0].Events) != 4 || c.Webhooks[0].SilentAfterOr() != 24*time.Hour {
				t.Errorf("every key switched on read as %+v", c)
			}
		}},
		{name: "a misspelt key", text: strings.Replace(allKeys, "write_timeout = ", "write_timeuot = ", 1), err: "unknown key http.write_timeuot (line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".toml")
			if err := os.WriteFile(p, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if err == nil {
				err = c.Check()
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Load = %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
