package daemon

// Home Assistant: the daemon's side of agent/internal/homeassistant. The
// discovery configs and the entities' states are retained messages the MQTT
// client keeps (published again on every connection); they are handed to
// it only when they change, or all again when Home Assistant says it has
// (re)started (its birth message, "online" on DISCOVERY_PREFIX/status).
// The command topics act only on their exact payload, and never on a
// retained message, which someone may have left on the broker to act at
// every reconnect.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/config"
	"github.com/rpmfleet/rpmfleet/agent/internal/homeassistant"
	"github.com/rpmfleet/rpmfleet/agent/internal/mqtt"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/version"
)

// haMarkerFile, in the state dir, names the discovery prefix and node id
// the agent last announced itself under, so that turning Home Assistant
// off (or moving it) removes those entities, even across a restart.
const haMarkerFile = "homeassistant.json"

// haProgressEvery is how often a running cycle's phase is read for
// update_percentage.
const haProgressEvery = time.Second

// haBirthEvery is the least time between two announcements on Home
// Assistant's birth message: anyone on the broker can publish "online"
// there, and each one costs the agent ten retained publications. A real
// restart within it finds the configs of the last one, retained.
const haBirthEvery = 10 * time.Second

// haIgnoredLogEvery bounds the log lines about ignored commands, which
// anyone on the broker can send in a flood.
const haIgnoredLogEvery = time.Minute

// haPublisher keeps Home Assistant's view of the device. It is owned by
// the daemon's loop, like the rest of its state.
type haPublisher struct {
	d       *daemon
	enabled bool
	cfg     homeassistant.Config
	dev     homeassistant.Device
	// sent are the payloads last handed to the MQTT client, by topic.
	sent    map[string][]byte
	percent *int
	tick    *time.Ticker // while a cycle runs
	// Announcements counts discovery configs handed to the client.
	announcements int
	// lastBirth is when a birth was last answered; ignored counts the
	// commands ignored since lastIgnoredLog.
	lastBirth, lastIgnoredLog time.Time
	ignored                   int
	// dropMarker: remove haMarkerFile once the MQTT client has
	// connected (and so published the removals).
	dropMarker bool
}

type haMarker struct {
	Prefix string `json:"discovery_prefix"`
	NodeID string `json:"node_id"`
}

func newHAPublisher(d *daemon) *haPublisher {
	h := d.cfg.HomeAssistant
	name, _ := os.Hostname()
	return &haPublisher{
		d: d, enabled: h.Enabled,
		cfg: homeassistant.Config{DiscoveryPrefix: h.DiscoveryPrefix, NodeID: h.NodeID},
		dev: homeassistant.Device{ID: d.deviceID, Name: name, Model: deviceModel(), Version: version.String(), OS: osPrettyName(d.cfg.Root)},
	}
}

// haSubscriptions are the topics the MQTT client listens to for Home
// Assistant: its status and the device's command topics.
func (d *daemon) haSubscriptions() []string {
	if d.ha == nil || !d.ha.enabled {
		return nil
	}
	return []string{d.ha.cfg.StatusTopic(), homeassistant.InstallTopic(d.deviceID), homeassistant.CheckTopic(d.deviceID)}
}

// haConnected runs once a new MQTT client exists, before it connects: it
// hands it the discovery configs, or the removals of what an earlier run
// announced when Home Assistant is now off or moved.
func (d *daemon) haConnected() {
	if d.ha == nil {
		return
	}
	h := d.ha
	h.sent = map[string][]byte{}
	path := filepath.Join(d.cfg.StateDir, haMarkerFile)
	var old haMarker
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &old) == nil && old.Prefix != "" && old.NodeID != "" {
		switch {
		case h.enabled && old.Prefix == h.cfg.DiscoveryPrefix && old.NodeID == h.cfg.NodeID:
		case d.cfg.MQTT.Broker == "" && !d.standalone:
			// The broker is the fleet server's, learnt at enrolment: it
			// admits rpmfleet's topics only, and refusing a publication
			// there could cost the link. Home Assistant's broker is
			// no longer known.
			d.log.Warn("home assistant entities left in place: the broker they were announced on is no longer configured; delete the device in Home Assistant", "discovery_prefix", old.Prefix, "node_id", old.NodeID)
			if err := os.Remove(path); err != nil {
				d.log.Warn("home assistant marker not removed", "err", err)
			}
		default:
			for _, m := range homeassistant.Removal(homeassistant.Config{DiscoveryPrefix: old.Prefix, NodeID: old.NodeID}, d.deviceID) {
				d.mq.Retain(m.Topic, nil)
			}
			d.log.Info("home assistant entities being removed", "discovery_prefix", old.Prefix, "node_id", old.NodeID)
			// The marker goes once the client has connected, which it
			// does only after publishing every retained message it
			// holds: a stop before that removes them at the next start.
			h.dropMarker = !h.enabled
		}
	}
	if !h.enabled {
		return
	}
	b, _ := json.Marshal(haMarker{Prefix: h.cfg.DiscoveryPrefix, NodeID: h.cfg.NodeID})
	if cur, _ := os.ReadFile(path); !bytes.Equal(cur, b) {
		if err := writeFileAtomic(path, b); err != nil {
			d.log.Warn("home assistant marker not written", "err", err)
		}
	}
	h.announce(true)
}

// announce hands the discovery configs to the MQTT client: all of them
// when force (a new client, Home Assistant's birth), else those that
// changed.
func (h *haPublisher) announce(force bool) {
	for _, m := range homeassistant.Discovery(h.cfg, h.dev) {
		if !force && bytes.Equal(h.sent[m.Topic], m.Payload) {
			continue
		}
		h.d.mq.Retain(m.Topic, m.Payload)
		h.sent[m.Topic] = m.Payload
		h.announcements++
	}
}

// haMessage handles what arrives on Home Assistant's topics; false when
// the message is not for it.
func (d *daemon) haMessage(m mqtt.Message) bool {
	if d.ha == nil || !d.ha.enabled {
		return false
	}
	h := d.ha
	switch m.Topic {
	case h.cfg.StatusTopic():
		if string(m.Payload) == homeassistant.StatusOnline {
			now := d.now()
			if now.Sub(h.lastBirth) < haBirthEvery {
				d.log.Debug("home assistant online again within the birth interval; configs are retained")
				return true
			}
			h.lastBirth = now
			d.log.Info("home assistant online; announcing again")
			h.announce(true)
			h.sent[homeassistant.UpdateStateTopic(d.deviceID)] = nil
			h.sent[homeassistant.StateTopic(d.deviceID)] = nil
		}
		return true
	case homeassistant.InstallTopic(d.deviceID), homeassistant.CheckTopic(d.deviceID):
	default:
		return false
	}
	want := homeassistant.PayloadInstall
	if m.Topic == homeassistant.CheckTopic(d.deviceID) {
		want = homeassistant.PayloadCheck
	}
	switch {
	case m.Retained:
		h.ignore("retained home assistant command ignored: a command must be live", m)
	case string(m.Payload) != want:
		h.ignore("home assistant command ignored: unknown payload", m)
	case want == homeassistant.PayloadCheck:
		d.log.Info("home assistant: check now")
		d.fetch()
	default:
		ids := d.haInstallable()
		if len(ids) == 0 {
			d.log.Info("home assistant: install pressed; nothing pending")
			return true
		}
		d.log.Info("home assistant: install pressed", "advisories", ids)
		for _, id := range ids {
			// Presses pile up while a check or a cycle runs; each id
			// is forced once.
			if !containsID(d.force, id) {
				d.force = append(d.force, id)
			}
		}
		d.fetch()
	}
	return true
}

// ignore logs an ignored command: the first, then at most one line per
// haIgnoredLogEvery with how many were ignored meanwhile.
func (h *haPublisher) ignore(msg string, m mqtt.Message) {
	h.ignored++
	now := h.d.now()
	if !h.lastIgnoredLog.IsZero() && now.Sub(h.lastIgnoredLog) < haIgnoredLogEvery {
		return
	}
	h.d.log.Warn(msg, "topic", m.Topic, "bytes", len(m.Payload), "ignored", h.ignored)
	h.lastIgnoredLog, h.ignored = now, 0
}

// haInstallable lists the pending advisories Install applies: those the
// policy allows but holds back only for its mode or window.
func (d *daemon) haInstallable() []string {
	var ids []string
	for _, p := range d.status.Pending {
		if !p.Excluded && p.Action != "refused" {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// haView is the status as Home Assistant shows it.
func (d *daemon) haView(st protocol.DeviceState) homeassistant.View {
	h := d.ha
	v := homeassistant.View{OS: h.dev.OS, LastCheck: st.LastCheck, Running: d.running != nil && d.running.kind != cycleSettle, Percent: h.percent}
	if c := st.LastCycle; c != nil {
		v.LastCycle = c.Phase
		v.RebootNeeded = c.Reboot && c.Phase == update.Committed.String()
	}
	ids := d.haInstallable()
	if d.plan != nil {
		for _, pa := range d.plan.Plan.Advisories {
			if !containsID(ids, pa.ID) {
				continue
			}
			info := d.plan.Info[pa.ID]
			v.Pending = append(v.Pending, homeassistant.Pending{ID: pa.ID, Type: pa.Type, Severity: pa.Severity, Title: info.Title, URL: info.URL})
		}
	}
	return v
}

func containsID(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// haPublish hands the entities' states to the MQTT client where they
// changed, and runs the progress ticker while a cycle runs.
func (d *daemon) haPublish(st protocol.DeviceState) {
	h := d.ha
	if h != nil && h.dropMarker && st.MQTT {
		h.dropMarker = false
		if err := os.Remove(filepath.Join(d.cfg.StateDir, haMarkerFile)); err != nil {
			d.log.Warn("home assistant marker not removed", "err", err)
		} else {
			d.log.Info("home assistant entities removed")
		}
	}
	if h == nil || !h.enabled {
		return
	}
	v := d.haView(st)
	switch {
	case v.Running && h.tick == nil:
		zero := 0
		h.percent, v.Percent = &zero, &zero
		h.tick = time.NewTicker(haProgressEvery)
	case !v.Running && h.tick != nil:
		h.tick.Stop()
		h.tick, h.percent, v.Percent = nil, nil, nil
		// An upgrade may have changed the OS the device block names.
		h.dev.OS = osPrettyName(d.cfg.Root)
		v.OS = h.dev.OS
		h.announce(false)
	}
	for _, m := range []homeassistant.Message{
		{Topic: homeassistant.UpdateStateTopic(d.deviceID), Payload: homeassistant.UpdateState(v)},
		{Topic: homeassistant.StateTopic(d.deviceID), Payload: homeassistant.SensorState(v)},
	} {
		if bytes.Equal(h.sent[m.Topic], m.Payload) {
			continue
		}
		d.mq.Retain(m.Topic, m.Payload)
		h.sent[m.Topic] = m.Payload
	}
}

// haTick is the progress ticker's channel; nil (never ready) when no
// cycle runs.
func (d *daemon) haTick() <-chan time.Time {
	if d.ha == nil || d.ha.tick == nil {
		return nil
	}
	return d.ha.tick.C
}

// haProgress reads the running cycle's phase from its journal (written
// atomically by update.Run) for update_percentage.
func (d *daemon) haProgress() {
	st, err := update.ReadState(d.cfg.StateDir)
	if err != nil || st.Active == 0 {
		return
	}
	c, err := update.ReadCycle(d.cfg.StateDir, st.Active)
	if err != nil {
		return
	}
	p := phasePercent(c.Phase)
	if d.ha.percent == nil || *d.ha.percent != p {
		d.ha.percent = &p
	}
}

// phasePercent is how far a cycle is, by its phase.
func phasePercent(p update.Phase) int {
	switch p {
	case update.Planned:
		return 5
	case update.Downloading:
		return 20
	case update.Verifying:
		return 45
	case update.Preflight:
		return 60
	case update.Applying:
		return 75
	case update.HealthCheck, update.RollingBack:
		return 90
	}
	return 100
}

// haReload takes a changed [homeassistant] section: the MQTT client is
// made again, which announces or removes (haConnected).
func (d *daemon) haReload(old *config.Config) {
	if d.cfg.HomeAssistant == old.HomeAssistant {
		return
	}
	d.ha = newHAPublisher(d)
	d.log.Info("home assistant settings changed; reconnecting", "enabled", d.cfg.HomeAssistant.Enabled)
	if d.mq != nil {
		d.mq.Close()
		d.mq = nil
		d.stateKey = nil
		d.connectMQTT()
	}
}

// deviceModel is the board's model (/proc/device-tree/model on a
// Raspberry Pi and other device-tree boards), else the DMI vendor and
// product, else "".
func deviceModel() string {
	for _, p := range []string{"/proc/device-tree/model", "/sys/firmware/devicetree/base/model"} {
		if s := readSmall(p); s != "" {
			return s
		}
	}
	vendor, product := readSmall("/sys/class/dmi/id/sys_vendor"), readSmall("/sys/class/dmi/id/product_name")
	return strings.TrimSpace(vendor + " " + product)
}

// osPrettyName is os-release's PRETTY_NAME under root, else NAME and
// VERSION_ID.
func osPrettyName(root string) string {
	f, err := os.Open(filepath.Join(root, "etc/os-release"))
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.Open(filepath.Join(root, "usr/lib/os-release"))
	}
	if err != nil {
		return ""
	}
	defer f.Close()
	vals := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(f, 64<<10))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		vals[k] = strings.Trim(v, `"'`)
	}
	if s := vals["PRETTY_NAME"]; s != "" {
		return s
	}
	return strings.TrimSpace(vals["NAME"] + " " + vals["VERSION_ID"])
}

// readSmall reads at most 256 bytes of a small system file, without the
// NUL and blanks around it.
func readSmall(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 256))
	return strings.TrimSpace(strings.Trim(string(b), "\x00"))
}
