package homeassistant

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rpmfleet/rpmfleet/agent/internal/homeassistant/hatest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

var (
	cfg = Config{DiscoveryPrefix: "homeassistant", NodeID: "pi-kitchen"}
	dev = Device{ID: "pi-kitchen", Name: "pi-kitchen", Model: "Raspberry Pi 4 Model B Rev 1.4", Version: "v1.2.0", OS: "AlmaLinux 9.4 (Seafoam Ocelot)"}
)

// TestDiscoveryMatchesSchema checks every discovery config's update
// entity against Home Assistant's documented schema for MQTT update
// entities, kept as data in testdata (see its SOURCE.md): no key the page
// does not list, every value of the documented type, the device block and
// the availability list included. The other entities must name the same
// device and availability.
func TestDiscoveryMatchesSchema(t *testing.T) {
	schema := hatest.LoadSchema(t, "testdata/update.mqtt.schema.json")
	msgs := Discovery(cfg, dev)
	var update map[string]any
	topics := map[string]bool{}
	for _, m := range msgs {
		topics[m.Topic] = true
		var c map[string]any
		if err := json.Unmarshal(m.Payload, &c); err != nil {
			t.Fatalf("%s: %v", m.Topic, err)
		}
		if strings.HasPrefix(m.Topic, "homeassistant/update/") {
			update = c
		}
		d := c["device"].(map[string]any)
		if ids := d["identifiers"].([]any); len(ids) != 1 || ids[0] != "rpmfleet_pi-kitchen" {
			t.Errorf("%s: identifiers %v", m.Topic, ids)
		}
		av := c["availability"].([]any)[0].(map[string]any)
		if av["topic"] != protocol.DeviceOnlineTopic("pi-kitchen") || av["payload_not_available"] != protocol.PayloadOffline {
			t.Errorf("%s: availability %v is not the MQTT last will's topic and payload", m.Topic, av)
		}
	}
	for _, want := range []string{
		"homeassistant/update/pi-kitchen/security/config",
		"homeassistant/sensor/pi-kitchen/pending_critical/config",
		"homeassistant/sensor/pi-kitchen/last_check/config",
		"homeassistant/sensor/pi-kitchen/last_cycle/config",
		"homeassistant/binary_sensor/pi-kitchen/reboot_needed/config",
		"homeassistant/binary_sensor/pi-kitchen/update_running/config",
		"homeassistant/button/pi-kitchen/check/config",
	} {
		if !topics[want] {
			t.Errorf("no discovery config on %s", want)
		}
	}
	if update == nil {
		t.Fatal("no update entity")
	}
	if errs := schema.CheckConfig(update); len(errs) > 0 {
		t.Errorf("update discovery config breaks Home Assistant's schema:\n%s", strings.Join(errs, "\n"))
	}
	if update["command_topic"] != InstallTopic("pi-kitchen") || update["payload_install"] != PayloadInstall || update["state_topic"] != UpdateStateTopic("pi-kitchen") {
		t.Errorf("update entity topics: %v", update)
	}
	d := update["device"].(map[string]any)
	if d["model"] != dev.Model || d["sw_version"] != "rpmfleet-agent v1.2.0 on AlmaLinux 9.4 (Seafoam Ocelot)" {
		t.Errorf("device block: %v", d)
	}

	// A config with a key Home Assistant does not know, or a wrong type,
	// is caught: the check itself can fail.
	bad := map[string]any{"state_topic": 3, "payload_instal": "x", "device": map[string]any{"identifiers": 7}}
	if errs := schema.CheckConfig(bad); len(errs) != 3 {
		t.Errorf("schema check of a bad config: %v, want 3 problems", errs)
	}
}

// TestRemoval: turning Home Assistant off empties every config Discovery
// published, and nothing else.
func TestRemoval(t *testing.T) {
	on, off := Discovery(cfg, dev), Removal(cfg, dev.ID)
	if len(on) != len(off) {
		t.Fatalf("%d configs, %d removals", len(on), len(off))
	}
	for i := range on {
		if on[i].Topic != off[i].Topic || len(off[i].Payload) != 0 {
			t.Errorf("removal %d: %s %q, want %s empty", i, off[i].Topic, off[i].Payload, on[i].Topic)
		}
	}
}

func TestVersionsAndState(t *testing.T) {
	imp := Pending{ID: "ALSA-2026:0001", Type: "security", Severity: "Important", Title: "openssl security update", URL: "https://errata.almalinux.org/9/ALSA-2026-0001.html"}
	crit := Pending{ID: "ALSA-2026:0002", Type: "security", Severity: "Critical", Title: "kernel security update", URL: "https://errata.almalinux.org/9/ALSA-2026-0002.html"}
	bug := Pending{ID: "ALBA-2026:0003", Type: "bugfix", Severity: "None", Title: "tzdata update"}
	pct := 40
	tests := []struct {
		name                string
		v                   View
		installed, latest   string
		summary, url        string
		inProgress          bool
		percent             string
		critical, important int
	}{
		{"up to date", View{OS: "AlmaLinux 9.4"}, "AlmaLinux 9.4, up to date", "AlmaLinux 9.4, up to date", "No pending advisories.", "", false, "null", 0, 0},
		{"one pending", View{OS: "AlmaLinux 9.4", Pending: []Pending{imp}}, "AlmaLinux 9.4, 1 pending", "AlmaLinux 9.4 + ALSA-2026:0001",
			"Important: ALSA-2026:0001 (openssl security update)", imp.URL, false, "null", 0, 1},
		{"most severe first", View{OS: "AlmaLinux 9.4", Pending: []Pending{bug, imp, crit}}, "AlmaLinux 9.4, 3 pending", "AlmaLinux 9.4 + ALSA-2026:0002 and 2 more",
			"Critical: ALSA-2026:0002 (kernel security update); Important: ALSA-2026:0001 (openssl security update); None: ALBA-2026:0003 (tzdata update)", crit.URL, false, "null", 1, 1},
		{"running", View{OS: "AlmaLinux 9.4", Pending: []Pending{imp}, Running: true, Percent: &pct}, "AlmaLinux 9.4, 1 pending", "AlmaLinux 9.4 + ALSA-2026:0001",
			"Important: ALSA-2026:0001 (openssl security update)", imp.URL, true, "40", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s map[string]any
			if err := json.Unmarshal(UpdateState(tt.v), &s); err != nil {
				t.Fatal(err)
			}
			if s["installed_version"] != tt.installed || s["latest_version"] != tt.latest {
				t.Errorf("versions %q %q, want %q %q", s["installed_version"], s["latest_version"], tt.installed, tt.latest)
			}
			if (s["installed_version"] == s["latest_version"]) != (len(tt.v.Pending) == 0) {
				t.Errorf("versions differ %v with %d pending", s["installed_version"] != s["latest_version"], len(tt.v.Pending))
			}
			if s["release_summary"] != tt.summary {
				t.Errorf("summary %q, want %q", s["release_summary"], tt.summary)
			}
			if u, _ := s["release_url"].(string); u != tt.url {
				t.Errorf("release_url %q, want %q", u, tt.url)
			}
			if s["in_progress"] != tt.inProgress || fmt.Sprint(jsonText(s["update_percentage"])) != tt.percent {
				t.Errorf("in_progress %v update_percentage %v, want %v %s", s["in_progress"], s["update_percentage"], tt.inProgress, tt.percent)
			}
			var sens map[string]any
			if err := json.Unmarshal(SensorState(tt.v), &sens); err != nil {
				t.Fatal(err)
			}
			if sens["pending_critical"] != float64(tt.critical) || sens["pending_important"] != float64(tt.important) {
				t.Errorf("sensors %v, want %d critical %d important", sens, tt.critical, tt.important)
			}
			if want := map[bool]string{true: "ON", false: "OFF"}[tt.inProgress]; sens["running"] != want {
				t.Errorf("running sensor %v, want %s", sens["running"], want)
			}
		})
	}
	schema := hatest.LoadSchema(t, "testdata/update.mqtt.schema.json")
	for _, v := range []View{{}, tests[3].v} {
		var s map[string]any
		json.Unmarshal(UpdateState(v), &s)
		if errs := schema.CheckState(s); len(errs) > 0 {
			t.Errorf("update state breaks the documented schema: %v", errs)
		}
	}
	var sens map[string]any
	json.Unmarshal(SensorState(View{LastCheck: time.Date(2026, 12, 5, 18, 0, 0, 0, time.UTC), LastCycle: "committed", RebootNeeded: true}), &sens)
	if sens["last_check"] != "2026-12-05T18:00:00Z" || sens["last_cycle"] != "committed" || sens["reboot_needed"] != "ON" {
		t.Errorf("sensors %v", sens)
	}
}

func jsonText(v any) any {
	if v == nil {
		return "null"
	}
	return v
}

// TestHostileText: what repository metadata and os-release say is escaped
// and cut before it reaches Home Assistant: an escape sequence, a forged
// newline, a bidi override, a 10,000-character title, 500 advisories, a
// javascript: or over-long release_url.
func TestHostileText(t *testing.T) {
	evil := Pending{ID: "ALSA-2026:0001\x1b[2J", Type: "security", Severity: "Critical", Title: "ok\nInjected: yes \u202e" + strings.Repeat("A", 10000), URL: "javascript:alert(1)"}
	var many []Pending
	for i := range 500 {
		many = append(many, Pending{ID: fmt.Sprintf("ALSA-2026:%04d", i), Type: "security", Severity: "Moderate", Title: "moderate fix"})
	}
	tests := []struct {
		name string
		v    View
		url  string
	}{
		{"escape codes and a huge title", View{OS: "Alma\x1b]0;pwned\x07Linux", Pending: []Pending{evil}}, ""},
		{"500 advisories", View{OS: strings.Repeat("O", 500), Pending: many}, ""},
		{"url with a newline", View{Pending: []Pending{{ID: "A", Severity: "Low", URL: "https://x.example/a\nb"}}}, ""},
		{"over-long url", View{Pending: []Pending{{ID: "A", Severity: "Low", URL: "https://x.example/" + strings.Repeat("a", MaxURL)}}}, ""},
		{"user in url", View{Pending: []Pending{{ID: "A", Severity: "Low", URL: "https://evil@x.example/"}}}, ""},
		{"good url", View{Pending: []Pending{{ID: "A", Severity: "Low", URL: "https://x.example/a.html"}}}, "https://x.example/a.html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s map[string]any
			if err := json.Unmarshal(UpdateState(tt.v), &s); err != nil {
				t.Fatal(err)
			}
			for k, v := range s {
				str, ok := v.(string)
				if !ok {
					continue
				}
				if protocol.Escape(str) != str && !strings.Contains(str, `\x1b`) {
					t.Errorf("%s holds unescaped text: %q", k, str)
				}
				if strings.ContainsAny(str, "\x1b\n\u202e") {
					t.Errorf("%s holds a control character: %q", k, str)
				}
				if n := utf8.RuneCountInString(str); n > MaxText {
					t.Errorf("%s is %d characters", k, n)
				}
			}
			if n := utf8.RuneCountInString(s["release_summary"].(string)); n > MaxSummary {
				t.Errorf("release_summary %d characters, more than %d", n, MaxSummary)
			}
			if u, _ := s["release_url"].(string); u != tt.url {
				t.Errorf("release_url %q, want %q", u, tt.url)
			}
		})
	}
	if s := Summary(many); !strings.HasSuffix(s, " more") || !strings.HasPrefix(s, "Moderate: ALSA-2026:0000 (moderate fix); ") {
		t.Errorf("500 advisories summarized as %q", s)
	}
}
