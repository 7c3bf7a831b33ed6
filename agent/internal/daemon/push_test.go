package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/internal/mqtttest"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// publisher is the server's side of the broker in these tests.
type publisher struct{ c paho.Client }

func newPublisher(t *testing.T, m *mqtttest.Mosquitto) *publisher {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(m.URL()).SetClientID("test-server"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to mosquitto: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return &publisher{c: c}
}

func (p *publisher) publish(t *testing.T, topic string, retained bool, msg []byte) {
	t.Helper()
	if tok := p.c.Publish(topic, 1, retained, msg); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish to %s: %v", topic, tok.Error())
	}
}

func sign(t *testing.T, s *notice.Signer, kind notice.Kind, device string, body any, ttl time.Duration) []byte {
	t.Helper()
	msg, err := s.Sign(kind, device, body, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestPushAppliesInWindow: the daemon is idle after its first poll (nothing
// to do); the server gets a new advisory and publishes a signed feed notice
// on Mosquitto; the daemon fetches its plan at once, not at the next poll an
// hour later, and applies it.
func TestPushAppliesInWindow(t *testing.T) {
	t.Parallel()
	m := mqtttest.Start(t, mqtttest.Options{})
	w := newWorld(t, worldOpts{})
	w.broker = "mqtt://" + m.Addr
	w.writeConfig(t, policyTOML("apply", "open"))
	r := w.start(t)
	waitFor(t, 30*time.Second, "the first poll and the mqtt connection", func() bool {
		st := r.Status()
		return !st.LastCheck.IsZero() && st.MQTT && st.State == "idle"
	})
	if gets := w.srv.PlanGets(); gets != 1 {
		t.Fatalf("%d plan fetches before the push, want 1", gets)
	}

	w.srv.setPlan(t, advisoryPlan(fileSHA256(t, w.rpms["demo-lib-1.1"])))
	pub := newPublisher(t, m)
	start := time.Now()
	pub.publish(t, protocol.TopicAdvisoryFeed, true, sign(t, w.signer, notice.KindFeedNotice, "", protocol.FeedNotice{Changed: 1, Advisories: []string{testAdvisory}}, time.Hour))
	waitFor(t, 60*time.Second, "the pushed advisory applied", func() bool { return slices.Equal(w.installed(t), []string{"demo-lib-1.1-1"}) })
	t.Logf("push to installed: %v", time.Since(start).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "the cycle's report", func() bool { return cycleReport(w.srv.Reports()) != nil })
	if st := r.Status(); st.Notices.Accepted < 2 { // the plan twice, the notice
		t.Errorf("notices accepted %d, want at least 2: %+v", st.Notices.Accepted, st.Notices)
	}
}

// TestPushThroughBrokerAccount: an external broker with its own accounts
// (username and password_file in [mqtt]) that refuses anonymous clients:
// the daemon logs in with that account and still gets the push.
func TestPushThroughBrokerAccount(t *testing.T) {
	t.Parallel()
	m := mqtttest.Start(t, mqtttest.Options{Users: map[string]string{"site-agent": "s3cret", "test-server": "pw"}})
	w := newWorld(t, worldOpts{})
	pwFile := filepath.Join(w.dir, "mqtt-password")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.broker = "mqtt://" + m.Addr
	w.mqttExtra = fmt.Sprintf("username = \"site-agent\"\npassword_file = %q\n", pwFile)
	w.writeConfig(t, policyTOML("notify", ""))
	r := w.start(t)
	waitFor(t, 30*time.Second, "the mqtt connection", func() bool { return r.Status().MQTT && !r.Status().LastCheck.IsZero() })
	c := paho.NewClient(paho.NewClientOptions().AddBroker(m.URL()).SetClientID("test-server").SetUsername("test-server").SetPassword("pw"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to mosquitto: %v", tok.Error())
	}
	defer c.Disconnect(100)
	pub := &publisher{c: c}
	pub.publish(t, protocol.DeviceCommandTopic(deviceID), false, sign(t, w.signer, notice.KindCommand, deviceID, protocol.Command{Verb: protocol.CommandCheck}, time.Hour))
	waitFor(t, 10*time.Second, "the pushed check", func() bool { return w.srv.PlanGets() == 2 })
}

// TestRefusesBadNotices: forged, replayed, expired and other-device
// messages are refused, counted by reason, and make the daemon fetch
// nothing; a good command after them still works; the retained notice a
// reconnect delivers again is not counted as an attack.
func TestRefusesBadNotices(t *testing.T) {
	t.Parallel()
	m := mqtttest.Start(t, mqtttest.Options{})
	w := newWorld(t, worldOpts{})
	w.broker = "mqtt://" + m.Addr
	w.srv.setPlan(t, advisoryPlan(""))
	// Mode notify: a check that got through would fetch, never install.
	w.writeConfig(t, policyTOML("notify", ""))
	r := w.start(t)
	waitFor(t, 30*time.Second, "the first poll and the mqtt connection", func() bool {
		st := r.Status()
		return !st.LastCheck.IsZero() && st.MQTT
	})
	pub := newPublisher(t, m)
	cmdTopic := protocol.DeviceCommandTopic(deviceID)
	check := protocol.Command{Verb: protocol.CommandCheck}

	_, _, forger := newSigner(t)
	past, err := notice.NewSigner(w.priv, notice.SignerOptions{Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	older := sign(t, w.signer, notice.KindCommand, deviceID, check, time.Hour)
	newer := sign(t, w.signer, notice.KindCommand, deviceID, check, time.Hour)
	bad := []struct {
		name  string
		msg   []byte
		count func(notice.Stats) uint64
	}{
		{"forged", sign(t, forger, notice.KindCommand, deviceID, check, time.Hour), func(s notice.Stats) uint64 { return s.UnknownKey + s.BadSignature }},
		{"expired", sign(t, past, notice.KindCommand, deviceID, check, time.Hour), func(s notice.Stats) uint64 { return s.Expired }},
		{"other device", sign(t, w.signer, notice.KindCommand, "dev-other", check, time.Hour), func(s notice.Stats) uint64 { return s.WrongDevice }},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			pub.publish(t, cmdTopic, false, b.msg)
			waitFor(t, 10*time.Second, b.name+" counted", func() bool { return b.count(r.Status().Notices) == 1 })
		})
	}
	if gets := w.srv.PlanGets(); gets != 1 {
		t.Fatalf("%d plan fetches after refused commands, want the first poll's only", gets)
	}
	// The newer command first, then the older one: a replay.
	pub.publish(t, cmdTopic, false, newer)
	waitFor(t, 10*time.Second, "the good command's fetch", func() bool { return w.srv.PlanGets() == 2 })
	pub.publish(t, cmdTopic, false, older)
	waitFor(t, 10*time.Second, "the replay counted", func() bool { return r.Status().Notices.Replayed == 1 })
	// The retained feed notice, seen again at a reconnect, is a repeat.
	feed := sign(t, w.signer, notice.KindFeedNotice, "", protocol.FeedNotice{Changed: 1}, time.Hour)
	pub.publish(t, protocol.TopicAdvisoryFeed, true, feed)
	waitFor(t, 10*time.Second, "the feed's fetch", func() bool { return w.srv.PlanGets() == 3 })
	// A new broker URL (same broker) makes the daemon reconnect.
	w.broker = "mqtt://localhost:" + strings.TrimPrefix(m.Addr, "127.0.0.1:")
	w.writeConfig(t, policyTOML("notify", ""))
	waitFor(t, 30*time.Second, "the retained notice seen again", func() bool { return r.Status().Notices.Repeated >= 1 })
	time.Sleep(200 * time.Millisecond)
	if gets := w.srv.PlanGets(); gets != 3 {
		t.Errorf("%d plan fetches, want 3: a repeated notice fetches nothing", gets)
	}
	if got := w.installed(t); !slices.Equal(got, []string{"demo-lib-1.0-1"}) {
		t.Fatalf("installed %v, want demo-lib-1.0-1 untouched", got)
	}
	if st := r.Status(); len(st.Pending) != 1 || st.Pending[0].Action != "notify" {
		t.Errorf("pending %+v, want the advisory, notify", st.Pending)
	}
	if !strings.Contains(r.log.String(), "level=WARN msg=\"signed message refused\"") {
		t.Error("refusals were not logged at warn level")
	}
}

// TestCommands: a signed report command queues a report at once; a signed
// apply command installs the named advisory whatever the mode (notify) and
// the window (closed) say; the reboot it needs waits for the window. The
// device's retained state on the broker says what it is doing.
func TestCommands(t *testing.T) {
	t.Parallel()
	m := mqtttest.Start(t, mqtttest.Options{})
	w := newWorld(t, worldOpts{rebootSuggested: true})
	w.broker = "mqtt://" + m.Addr
	w.srv.setPlan(t, advisoryPlan(""))
	w.writeConfig(t, policyTOML("notify", "closed", `reboot = "when-needed"`))
	rebooted := filepath.Join(w.dir, "rebooted")
	// A FAKE reboot: a test cannot reboot the machine.
	r := w.start(t, func(o *Options) {
		o.RebootCommand, o.WallCommand = []string{"touch", rebooted}, []string{"true"}
	})
	waitFor(t, 30*time.Second, "the first poll, report and mqtt connection", func() bool {
		st := r.Status()
		return !st.LastCheck.IsZero() && st.MQTT && len(w.srv.Reports()) == 1
	})
	pub := newPublisher(t, m)
	states := make(chan []byte, 100)
	if tok := pub.c.Subscribe(protocol.DeviceStateTopic(deviceID), 1, func(_ paho.Client, msg paho.Message) { states <- msg.Payload() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	cmd := func(c protocol.Command) {
		pub.publish(t, protocol.DeviceCommandTopic(deviceID), false, sign(t, w.signer, notice.KindCommand, deviceID, c, time.Hour))
	}

	cmd(protocol.Command{Verb: protocol.CommandReport})
	waitFor(t, 10*time.Second, "the commanded report", func() bool { return len(w.srv.Reports()) == 2 })

	cmd(protocol.Command{Verb: protocol.CommandApply, Advisories: []string{testAdvisory}})
	waitFor(t, 60*time.Second, "the commanded apply", func() bool { return slices.Equal(w.installed(t), []string{"demo-lib-1.1-1"}) })
	waitFor(t, 10*time.Second, "the reboot scheduled", func() bool { return !r.Status().RebootAt.IsZero() })
	st := r.Status()
	if next := st.RebootAt; next.Before(time.Now().Add(24 * time.Hour)) {
		t.Errorf("reboot at %v, want the closed window's next start, two days on", next)
	}
	if _, err := os.Stat(rebooted); err == nil {
		t.Error("rebooted outside the maintenance window")
	}

	// The retained state follows.
	deadline := time.After(10 * time.Second)
	for {
		var s protocol.DeviceState
		select {
		case b := <-states:
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatalf("state %s: %v", b, err)
			}
		case <-deadline:
			t.Fatal("no retained state with the reboot time")
		}
		if !s.RebootAt.IsZero() && s.LastCycle != nil && s.LastCycle.Phase == "committed" {
			break
		}
	}
}
