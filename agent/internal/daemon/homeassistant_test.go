package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/agent/internal/homeassistant"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/internal/mqtttest"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestHomeAssistantInServerMode: an enrolled agent pointed at the home's
// Mosquitto (a broker account of its own) serves the fleet's topics and
// Home Assistant's side by side: a signed check command still fetches the
// plan; Home Assistant sees the server's pending advisory, and its Install
// applies it in notify mode (the report reaches the server). Turning
// [homeassistant] off with a reload publishes empty retained configs that
// remove the entities, and the marker that remembered them is gone.
func TestHomeAssistantInServerMode(t *testing.T) {
	t.Parallel()
	m := mqtttest.Start(t, mqtttest.Options{Users: map[string]string{"site-agent": "s3cret", "ha": "ha-pw"}})
	w := newWorld(t, worldOpts{})
	pwFile := filepath.Join(w.dir, "mqtt-password")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.broker = "mqtt://" + m.Addr
	haOn := fmt.Sprintf("username = \"site-agent\"\npassword_file = %q\n\n[homeassistant]\nenabled = true\nnode_id = \"pi-ha\"\n", pwFile)
	w.mqttExtra = haOn
	w.srv.setPlan(t, advisoryPlan(""))
	w.writeConfig(t, policyTOML("notify", ""))

	var mu sync.Mutex
	got := map[string][][]byte{}
	ha := paho.NewClient(paho.NewClientOptions().AddBroker(m.URL()).SetClientID("ha").SetUsername("ha").SetPassword("ha-pw").
		SetOnConnectHandler(func(c paho.Client) {
			c.Subscribe("#", 1, func(_ paho.Client, msg paho.Message) {
				mu.Lock()
				got[msg.Topic()] = append(got[msg.Topic()], msg.Payload())
				mu.Unlock()
			})
		}))
	if tok := ha.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer ha.Disconnect(100)
	last := func(topic string) ([]byte, int) {
		mu.Lock()
		defer mu.Unlock()
		l := got[topic]
		if len(l) == 0 {
			return nil, 0
		}
		return l[len(l)-1], len(l)
	}

	r := w.start(t)
	configTopic := "homeassistant/update/pi-ha/security/config"
	stateTopic := homeassistant.UpdateStateTopic(deviceID)
	waitFor(t, 30*time.Second, "discovery and the pending advisory", func() bool {
		_, n := last(configTopic)
		b, _ := last(stateTopic)
		return n > 0 && strings.Contains(string(b), testAdvisory)
	})
	b, _ := last(configTopic)
	var conf map[string]any
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	if conf["command_topic"] != homeassistant.InstallTopic(deviceID) {
		t.Errorf("command topic %v, want the enrolled device's", conf["command_topic"])
	}

	// The fleet side still works on the same broker.
	gets := w.srv.PlanGets()
	pub := &publisher{c: ha}
	pub.publish(t, protocol.DeviceCommandTopic(deviceID), false, sign(t, w.signer, notice.KindCommand, deviceID, protocol.Command{Verb: protocol.CommandCheck}, time.Hour))
	waitFor(t, 10*time.Second, "the signed check", func() bool { return w.srv.PlanGets() > gets })

	reports := len(w.srv.Reports())
	pub.publish(t, homeassistant.InstallTopic(deviceID), false, []byte(homeassistant.PayloadInstall))
	waitFor(t, 60*time.Second, "Install applied in notify mode", func() bool { return slices.Equal(w.installed(t), []string{"demo-lib-1.1-1"}) })
	waitFor(t, 10*time.Second, "the cycle's report", func() bool { return len(w.srv.Reports()) > reports })
	waitFor(t, 10*time.Second, "the committed cycle in the status", func() bool {
		st := r.Status()
		return st.LastCycle != nil && st.LastCycle.Phase == "committed"
	})
	// Home Assistant shows it installed at once, not at the next poll.
	waitFor(t, 10*time.Second, "the update entity up to date", func() bool {
		b, _ := last(stateTopic)
		var s map[string]any
		json.Unmarshal(b, &s)
		return s["installed_version"] == s["latest_version"] && s["in_progress"] == false
	})

	// Off: the entities are removed.
	w.mqttExtra = fmt.Sprintf("username = \"site-agent\"\npassword_file = %q\n\n[homeassistant]\nenabled = false\nnode_id = \"pi-ha\"\n", pwFile)
	w.writeConfig(t, policyTOML("notify", ""))
	waitFor(t, 20*time.Second, "the empty retained config", func() bool {
		b, n := last(configTopic)
		return n > 1 && len(b) == 0
	})
	waitFor(t, 10*time.Second, "the marker gone once the removals are out", func() bool {
		_, err := os.Stat(filepath.Join(w.stateDir, haMarkerFile))
		return os.IsNotExist(err)
	})
}

// TestHomeAssistantProgress: standalone with Home Assistant, a cycle whose
// package downloads take seconds shows in_progress with the downloading
// phase's update_percentage (read from the journal), then in_progress
// false and no percentage once it is done.
func TestHomeAssistantProgress(t *testing.T) {
	t.Parallel()
	m := mqtttest.Start(t, mqtttest.Options{})
	w := newWorld(t, worldOpts{repoDelay: 3 * time.Second})
	w.standaloneConfig(t, policyTOML("apply", "")+fmt.Sprintf("\n[mqtt]\nbroker = %q\n\n[homeassistant]\nenabled = true\nnode_id = \"pi-progress\"\n", "mqtt://"+m.Addr))
	var mu sync.Mutex
	var states []map[string]any
	ha := paho.NewClient(paho.NewClientOptions().AddBroker(m.URL()).SetClientID("ha").
		SetOnConnectHandler(func(c paho.Client) {
			c.Subscribe(homeassistant.UpdateStateTopic("pi-progress"), 1, func(_ paho.Client, msg paho.Message) {
				var s map[string]any
				if json.Unmarshal(msg.Payload(), &s) == nil {
					mu.Lock()
					states = append(states, s)
					mu.Unlock()
				}
			})
		}))
	if tok := ha.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer ha.Disconnect(100)
	w.start(t)
	waitFor(t, 60*time.Second, "the fix installed", func() bool { return slices.Equal(w.installed(t), []string{"demo-lib-1.1-1"}) })
	waitFor(t, 10*time.Second, "the final state", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(states) > 0 && states[len(states)-1]["in_progress"] == false && states[len(states)-1]["installed_version"] == states[len(states)-1]["latest_version"]
	})
	mu.Lock()
	defer mu.Unlock()
	var seen []string
	downloading := false
	for _, s := range states {
		seen = append(seen, fmt.Sprint(s["in_progress"], "/", s["update_percentage"]))
		if s["in_progress"] == true && s["update_percentage"] == float64(phasePercent(update.Downloading)) {
			downloading = true
		}
	}
	if !downloading {
		t.Errorf("no state in progress at the downloading phase's %d%%: %v", phasePercent(update.Downloading), seen)
	}
	if last := states[len(states)-1]; last["update_percentage"] != nil {
		t.Errorf("update_percentage %v after the cycle, want null", last["update_percentage"])
	}
}
