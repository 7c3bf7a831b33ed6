package daemon

import (
	"encoding/json"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/internal/mqtttest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// fastReconnect makes the daemon's MQTT client reconnect within a second
// of the broker coming back.
func fastReconnect(o *Options) {
	o.MQTTMinBackoff, o.MQTTMaxBackoff = 100*time.Millisecond, 500*time.Millisecond
}

// TestPollIntervalFollowsTheLink: while the MQTT link is up the daemon
// polls at connected_interval (an hour here), not at interval (a second);
// when the broker goes away the next poll comes within interval of the
// last one, here at once since that is long past, and then every interval;
// when the broker is back, the long interval again.
func TestPollIntervalFollowsTheLink(t *testing.T) {
	m := mqtttest.Start(t, mqtttest.Options{})
	w := newWorld(t, worldOpts{})
	w.broker = "mqtt://" + m.Addr
	w.poll = "interval = \"1s\"\nconnected_interval = \"1h\"\njitter = \"0s\""
	w.writeConfig(t, policyTOML("notify", ""))
	r := w.start(t, fastReconnect)

	// scheduled is the wait the last poll set for the next one.
	scheduled := func() time.Duration { st := r.Status(); return st.NextPoll.Sub(st.LastCheck) }
	long := func() bool {
		st := r.Status()
		return st.MQTT && !st.LastCheck.IsZero() && scheduled() > 30*time.Minute
	}
	waitFor(t, 30*time.Second, "the mqtt link and the connected interval", long)
	if got := scheduled(); got < time.Hour-time.Second || got > time.Hour+time.Second {
		t.Errorf("next poll %v after the last while connected, want connected_interval 1h", got)
	}
	gets := w.srv.PlanGets()
	time.Sleep(3500 * time.Millisecond)
	if now := w.srv.PlanGets(); now != gets {
		t.Fatalf("%d plan fetches in 3.5 s while connected, want none (interval 1s applies only without the link)", now-gets)
	}

	m.Stop()
	start := time.Now()
	waitFor(t, 10*time.Second, "the lost link seen", func() bool { return !r.Status().MQTT })
	waitFor(t, 10*time.Second, "a poll at once and one more an interval later", func() bool { return w.srv.PlanGets() >= gets+2 })
	t.Logf("broker stopped to two polls: %v", time.Since(start).Round(time.Millisecond))
	if got := scheduled(); got > time.Second+100*time.Millisecond {
		t.Errorf("next poll %v after the last with the link down, want the interval, 1s", got)
	}

	m.Restart()
	waitFor(t, 30*time.Second, "the link back and the connected interval again", long)
	gets = w.srv.PlanGets()
	time.Sleep(2500 * time.Millisecond)
	if now := w.srv.PlanGets(); now != gets {
		t.Errorf("%d plan fetches in 2.5 s after the link came back, want none", now-gets)
	}
}

// stateWatcher records the device's retained states as the broker
// delivers them.
type stateWatcher struct{ states chan protocol.DeviceState }

func watchState(t *testing.T, m *mqtttest.Mosquitto) *stateWatcher {
	t.Helper()
	sw := &stateWatcher{states: make(chan protocol.DeviceState, 1000)}
	pub := newPublisher(t, m)
	tok := pub.c.Subscribe(protocol.DeviceStateTopic(deviceID), 1, func(_ paho.Client, msg paho.Message) {
		var s protocol.DeviceState
		if err := json.Unmarshal(msg.Payload(), &s); err != nil {
			t.Errorf("state %s: %v", msg.Payload(), err)
			return
		}
		sw.states <- s
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return sw
}

// drain returns the states received so far.
func (sw *stateWatcher) drain() []protocol.DeviceState {
	var out []protocol.DeviceState
	for {
		select {
		case s := <-sw.states:
			out = append(out, s)
		default:
			return out
		}
	}
}

// TestStateNotRepublishedOnUnchangedPoll: polls that change nothing but
// last_check and next_poll publish no retained state (they published two
// each, "checking" then "idle"); a change a user reads (an advisory
// pending) is published at once.
func TestStateNotRepublishedOnUnchangedPoll(t *testing.T) {
	m := mqtttest.Start(t, mqtttest.Options{})
	w := newWorld(t, worldOpts{})
	w.broker = "mqtt://" + m.Addr
	w.poll = "interval = \"500ms\"\nconnected_interval = \"500ms\"\njitter = \"0s\""
	w.writeConfig(t, policyTOML("notify", ""))
	r := w.start(t, func(o *Options) { o.StateHeartbeat = time.Hour })
	waitFor(t, 30*time.Second, "the mqtt link and two polls", func() bool {
		st := r.Status()
		return st.MQTT && st.State == "idle" && w.srv.PlanGets() >= 2
	})
	sw := watchState(t, m)
	waitFor(t, 10*time.Second, "the retained state", func() bool { return len(sw.states) > 0 })
	time.Sleep(300 * time.Millisecond)
	sw.drain()

	gets := w.srv.PlanGets()
	time.Sleep(3 * time.Second)
	polls := w.srv.PlanGets() - gets
	if polls < 3 {
		t.Fatalf("%d polls in 3 s at a 500ms interval, want at least 3", polls)
	}
	if got := sw.drain(); len(got) != 0 {
		t.Errorf("%d states published over %d unchanged polls, want none; the first: %+v", len(got), polls, got[0])
	}

	w.srv.setPlan(t, advisoryPlan(""))
	var got protocol.DeviceState
	waitFor(t, 10*time.Second, "the pending advisory published", func() bool {
		for _, s := range sw.drain() {
			got = s
		}
		return len(got.Pending) == 1
	})
	if got.Pending[0].ID != testAdvisory || got.State != "idle" || got.LastCheck.IsZero() {
		t.Errorf("published state %+v, want idle with %s pending and its last_check", got, testAdvisory)
	}
}

// TestStateHeartbeat: with nothing else changing, last_check is refreshed
// on the state topic once per StateHeartbeat, not at every poll.
func TestStateHeartbeat(t *testing.T) {
	m := mqtttest.Start(t, mqtttest.Options{})
	w := newWorld(t, worldOpts{})
	w.broker = "mqtt://" + m.Addr
	w.poll = "interval = \"300ms\"\nconnected_interval = \"300ms\"\njitter = \"0s\""
	w.writeConfig(t, policyTOML("notify", ""))
	const beat = 1500 * time.Millisecond
	r := w.start(t, func(o *Options) { o.StateHeartbeat = beat })
	waitFor(t, 30*time.Second, "the mqtt link and a poll", func() bool {
		st := r.Status()
		return st.MQTT && st.State == "idle" && !st.LastCheck.IsZero()
	})
	sw := watchState(t, m)
	gets := w.srv.PlanGets()
	time.Sleep(4 * time.Second)
	polls := w.srv.PlanGets() - gets
	states := sw.drain()
	if len(states) < 2 || len(states) > 5 || polls < 8 {
		t.Fatalf("%d states (the retained one included) over %d polls in 4 s, want 2 to 4 heartbeats a %v apart", len(states), polls, beat)
	}
	for i := 2; i < len(states); i++ { // states[0] is the retained one, from before
		if gap := states[i].LastCheck.Sub(states[i-1].LastCheck); gap < beat-300*time.Millisecond {
			t.Errorf("state %d: last_check %v after the one before, want about %v", i, gap, beat)
		}
	}
}
