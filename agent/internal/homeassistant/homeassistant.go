// Package homeassistant builds what the agent publishes for Home
// Assistant's MQTT discovery: the retained discovery configs of one device's
// entities (an update entity, sensors, binary sensors and a button) and
// their states. It is pure: the daemon publishes what it returns through
// its MQTT client and routes what arrives on the command topics.
//
// Threat model. Everything published here ends in Home Assistant's user
// interface and its database, and part of it comes from outside: advisory
// ids, titles and errata links from repository metadata, the OS name from
// os-release, the model from the device tree. So every such string goes
// through protocol.Escape (no escape code, control character or bidi
// override reaches a browser or a log), is cut to a length (255 characters
// for release_summary, as Home Assistant documents; 64 for a name; 255 for
// others), and a release_url is published only when it is an http(s) URL
// that needed no escaping. The command topics are read by anyone the home
// broker lets subscribe and written by anyone it lets publish: the daemon
// acts only on the exact payload (PayloadInstall, PayloadCheck) on the exact
// topic, and Install only applies advisories the device's own repositories
// offer, each package still verified against the pinned keys; so whoever
// can publish there can make the device install its pending fixes now, as
// Home Assistant's button does, never choose what is installed.
package homeassistant

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Payloads of the command topics. Nothing else on them is acted on.
const (
	// PayloadInstall on InstallTopic applies the pending advisories.
	PayloadInstall = "install"
	// PayloadCheck on CheckTopic checks the repositories now.
	PayloadCheck = "check"
	// StatusOnline on Config.StatusTopic is Home Assistant's birth
	// message: it has (re)started and wants the discovery configs again.
	StatusOnline = "online"
)

// Limits on what is published.
const (
	// MaxSummary is Home Assistant's limit on release_summary.
	MaxSummary = 255
	// MaxText bounds every other string from outside (versions, titles).
	MaxText = 255
	// MaxName bounds names (the device, the OS, the model).
	MaxName = 64
	// MaxURL bounds release_url.
	MaxURL = 2048
)

// Config says where discovery lives.
type Config struct {
	// DiscoveryPrefix is Home Assistant's discovery prefix
	// ("homeassistant").
	DiscoveryPrefix string
	// NodeID names the device in discovery topics and unique ids.
	NodeID string
}

// StatusTopic is where Home Assistant publishes its birth and last will.
func (c Config) StatusTopic() string { return c.DiscoveryPrefix + "/status" }

// Device describes the device in Home Assistant's device registry.
type Device struct {
	// ID is the device's rpmfleet id: the MQTT client id and the name in
	// its topics (protocol.DeviceOnlineTopic is the availability).
	ID string
	// Name is the name Home Assistant shows (the host name).
	Name string
	// Model is the board (/proc/device-tree/model) or the DMI product.
	Model string
	// Version is the agent's version; OS the os-release PRETTY_NAME.
	Version, OS string
}

// Topics of one device's Home Assistant states and commands, under the
// device's rpmfleet topics.
func topicBase(deviceID string) string { return protocol.TopicPrefix + "device/" + deviceID + "/ha/" }

// UpdateStateTopic carries the update entity's JSON state.
func UpdateStateTopic(deviceID string) string { return topicBase(deviceID) + "update" }

// StateTopic carries the sensors' JSON state.
func StateTopic(deviceID string) string { return topicBase(deviceID) + "state" }

// InstallTopic is the update entity's command topic.
func InstallTopic(deviceID string) string { return topicBase(deviceID) + "install" }

// CheckTopic is the "check now" button's command topic.
func CheckTopic(deviceID string) string { return topicBase(deviceID) + "check" }

// Message is one retained message to publish.
type Message struct {
	Topic   string
	Payload []byte
}

// entity is one discovery config before its device and availability.
type entity struct {
	component, object string
	fields            map[string]any
}

func entities(deviceID string) []entity {
	st := StateTopic(deviceID)
	sensor := func(object, name, key, icon string) entity {
		return entity{"sensor", object, map[string]any{
			"name": name, "state_topic": st, "value_template": "{{ value_json." + key + " }}",
			"unit_of_measurement": "advisories", "state_class": "measurement", "icon": icon,
		}}
	}
	return []entity{
		{"update", "security", map[string]any{
			"name": "Security updates", "state_topic": UpdateStateTopic(deviceID),
			"command_topic": InstallTopic(deviceID), "payload_install": PayloadInstall,
			"entity_picture": nil, "icon": "mdi:shield-sync",
		}},
		sensor("pending_critical", "Pending critical advisories", "pending_critical", "mdi:shield-alert"),
		sensor("pending_important", "Pending important advisories", "pending_important", "mdi:shield-alert"),
		sensor("pending_moderate", "Pending moderate advisories", "pending_moderate", "mdi:shield-half-full"),
		sensor("pending_low", "Pending low advisories", "pending_low", "mdi:shield-outline"),
		{"binary_sensor", "reboot_needed", map[string]any{
			"name": "Reboot needed", "state_topic": st, "value_template": "{{ value_json.reboot_needed }}",
			"payload_on": "ON", "payload_off": "OFF", "device_class": "problem",
		}},
		{"sensor", "last_check", map[string]any{
			"name": "Last check", "state_topic": st, "value_template": "{{ value_json.last_check }}",
			"device_class": "timestamp", "entity_category": "diagnostic",
		}},
		{"sensor", "last_cycle", map[string]any{
			"name": "Last update cycle", "state_topic": st, "value_template": "{{ value_json.last_cycle }}",
			"icon": "mdi:history", "entity_category": "diagnostic",
		}},
		{"binary_sensor", "update_running", map[string]any{
			"name": "Update running", "state_topic": st, "value_template": "{{ value_json.running }}",
			"payload_on": "ON", "payload_off": "OFF", "device_class": "running",
		}},
		{"button", "check", map[string]any{
			"name": "Check now", "command_topic": CheckTopic(deviceID), "payload_press": PayloadCheck,
			"icon": "mdi:magnify", "entity_category": "diagnostic",
		}},
	}
}

// Discovery returns the retained discovery configs of the device's
// entities, one per entity, at DISCOVERY_PREFIX/COMPONENT/NODE_ID/OBJECT/config.
func Discovery(c Config, d Device) []Message {
	dev := map[string]any{
		"identifiers":  []string{"rpmfleet_" + c.NodeID},
		"name":         clip(protocol.Escape(cmp.Or(d.Name, c.NodeID)), MaxName),
		"manufacturer": "rpmfleet",
		"sw_version":   clip(protocol.Escape(swVersion(d)), MaxText),
	}
	if d.Model != "" {
		dev["model"] = clip(protocol.Escape(d.Model), MaxName)
	}
	avail := []map[string]any{{
		"topic":                 protocol.DeviceOnlineTopic(d.ID),
		"payload_available":     protocol.PayloadOnline,
		"payload_not_available": protocol.PayloadOffline,
	}}
	var out []Message
	for _, e := range entities(d.ID) {
		m := map[string]any{
			"unique_id":    "rpmfleet_" + c.NodeID + "_" + e.object,
			"device":       dev,
			"availability": avail,
			"qos":          1,
		}
		for k, v := range e.fields {
			if v != nil {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		out = append(out, Message{Topic: discoveryTopic(c, e), Payload: b})
	}
	return out
}

// Removal returns the empty retained payloads that remove every entity
// Discovery announces (Home Assistant support turned off).
func Removal(c Config, deviceID string) []Message {
	var out []Message
	for _, e := range entities(deviceID) {
		out = append(out, Message{Topic: discoveryTopic(c, e)})
	}
	return out
}

func discoveryTopic(c Config, e entity) string {
	return c.DiscoveryPrefix + "/" + e.component + "/" + c.NodeID + "/" + e.object + "/config"
}

func swVersion(d Device) string {
	s := "rpmfleet-agent " + cmp.Or(d.Version, "unknown")
	if d.OS != "" {
		s += " on " + d.OS
	}
	return s
}

// Pending is an advisory the policy allows that is not applied yet.
type Pending struct {
	ID       string
	Type     string // "security", "bugfix", "enhancement"
	Severity string // "Critical", "Important", "Moderate", "Low", "None" or ""
	Title    string
	// URL is the advisory's errata page, "" when unknown.
	URL string
}

// View is the device's state as Home Assistant shows it.
type View struct {
	// OS names the installed system ("AlmaLinux 9.4 (Seafoam Ocelot)").
	OS      string
	Pending []Pending
	// Running is set while an update cycle runs; Percent is its progress
	// (nil when unknown).
	Running bool
	Percent *int
	// RebootNeeded is set when a committed cycle needs a reboot not done
	// yet.
	RebootNeeded bool
	LastCheck    time.Time
	// LastCycle is the newest cycle's phase ("committed", "rolled-back",
	// "failed"), "" when none ran.
	LastCycle string
}

// Sorted returns the pending advisories most severe first, then by id.
func Sorted(p []Pending) []Pending {
	s := slices.Clone(p)
	slices.SortStableFunc(s, func(a, b Pending) int {
		if c := cmp.Compare(rank(b.Severity), rank(a.Severity)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return s
}

func rank(s string) int {
	sev, err := advisory.ParseSeverity(s)
	if err != nil {
		return -1
	}
	return int(sev)
}

// updateState is the update entity's JSON state; its keys are those of
// Home Assistant's documented schema.
type updateState struct {
	Installed      string `json:"installed_version"`
	Latest         string `json:"latest_version"`
	Title          string `json:"title"`
	ReleaseSummary string `json:"release_summary"`
	ReleaseURL     string `json:"release_url,omitempty"`
	InProgress     bool   `json:"in_progress"`
	Percent        *int   `json:"update_percentage"`
}

// Versions encodes the state as the update entity's installed_version and
// latest_version, which differ exactly when advisories are pending:
//
//	nothing pending:  "AlmaLinux 9.4, up to date" for both
//	pending:          installed "AlmaLinux 9.4, 3 pending"
//	                  latest    "AlmaLinux 9.4 + ALSA-2026:0002 and 2 more"
//
// (the most severe advisory named). Neither reads as a version number, so
// Home Assistant, which cannot order them, shows an update whenever they
// differ; and installed_version changes once the fixes are in.
func Versions(v View) (installed, latest string) {
	osName := clip(protocol.Escape(cmp.Or(v.OS, "system")), MaxName)
	if len(v.Pending) == 0 {
		s := osName + ", up to date"
		return s, s
	}
	p := Sorted(v.Pending)
	installed = fmt.Sprintf("%s, %d pending", osName, len(p))
	latest = osName + " + " + clip(protocol.Escape(p[0].ID), MaxName)
	if len(p) > 1 {
		latest += fmt.Sprintf(" and %d more", len(p)-1)
	}
	return installed, latest
}

// Summary names the pending advisories with their severities, most severe
// first, within MaxSummary characters: "Important: ALSA-2026:0001 (openssl
// security update); Moderate: ...", ending "and N more" when not all fit.
func Summary(p []Pending) string {
	if len(p) == 0 {
		return "No pending advisories."
	}
	p = Sorted(p)
	var b strings.Builder
	for i, a := range p {
		item := cmp.Or(a.Severity, "None") + ": " + protocol.Escape(a.ID)
		if a.Title != "" {
			item += " (" + protocol.Escape(a.Title) + ")"
		}
		item = clip(item, MaxSummary)
		sep := ""
		if i > 0 {
			sep = "; "
		}
		more := ""
		if rest := len(p) - i - 1; rest > 0 {
			more = fmt.Sprintf("; and %d more", rest)
		}
		if utf8.RuneCountInString(b.String()+sep+item+more) <= MaxSummary {
			b.WriteString(sep + item)
			continue
		}
		// This one does not fit with the note after it: say how many
		// are left out.
		tail := fmt.Sprintf("%sand %d more", sep, len(p)-i)
		if i == 0 {
			// Not even the first fits whole: cut it.
			n := fmt.Sprintf("; and %d more", len(p)-1)
			if len(p) == 1 {
				n = ""
			}
			return clip(item, MaxSummary-utf8.RuneCountInString(n)) + n
		}
		b.WriteString(tail)
		break
	}
	return b.String()
}

// UpdateState is the update entity's retained JSON state.
func UpdateState(v View) []byte {
	inst, latest := Versions(v)
	s := updateState{Installed: inst, Latest: latest, Title: clip(protocol.Escape(cmp.Or(v.OS, "System"))+" security updates", MaxText),
		ReleaseSummary: Summary(v.Pending), InProgress: v.Running}
	if v.Running {
		s.Percent = v.Percent
	}
	if p := Sorted(v.Pending); len(p) > 0 {
		s.ReleaseURL = safeURL(p[0].URL)
	}
	b, _ := json.Marshal(s)
	return b
}

// sensorState is the sensors' JSON state (the value_templates read it).
type sensorState struct {
	Critical  int     `json:"pending_critical"`
	Important int     `json:"pending_important"`
	Moderate  int     `json:"pending_moderate"`
	Low       int     `json:"pending_low"`
	Reboot    string  `json:"reboot_needed"`
	Running   string  `json:"running"`
	LastCheck *string `json:"last_check"`
	LastCycle string  `json:"last_cycle"`
}

// SensorState is the sensors' retained JSON state: pending security
// advisories by severity, reboot needed, update running, last check and
// last cycle.
func SensorState(v View) []byte {
	s := sensorState{Reboot: onOff(v.RebootNeeded), Running: onOff(v.Running), LastCycle: cmp.Or(v.LastCycle, "none")}
	for _, p := range v.Pending {
		if !strings.EqualFold(p.Type, string(advisory.Security)) {
			continue
		}
		switch sev, _ := advisory.ParseSeverity(p.Severity); sev {
		case advisory.Critical:
			s.Critical++
		case advisory.Important:
			s.Important++
		case advisory.Moderate:
			s.Moderate++
		case advisory.Low:
			s.Low++
		}
	}
	if !v.LastCheck.IsZero() {
		t := v.LastCheck.UTC().Format(time.RFC3339)
		s.LastCheck = &t
	}
	b, _ := json.Marshal(s)
	return b
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

// safeURL returns u when it is an http(s) URL of at most MaxURL bytes that
// needs no escaping, else "".
func safeURL(u string) string {
	if u == "" || len(u) > MaxURL || protocol.Escape(u) != u || strings.ContainsAny(u, " \"<>") {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.User != nil {
		return ""
	}
	return u
}

// clip cuts s to at most n characters, ending with "…" when cut.
func clip(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
