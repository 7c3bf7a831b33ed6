package integration

// The push story through an external broker: a real Mosquitto started on a
// free port with a password for the server and for each device and the
// fleet's ACL. Here the test controls the broker, as an attacker who owns it
// would, and uses that to publish forged, expired and replayed messages: the
// agents must refuse every one and install nothing.

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/internal/mqtttest"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// The broker's users besides the devices: the server, and the test in the
// role of an attacker who controls the broker.
const (
	mqttServerUser = "rpmfleet-server"
	mqttSpyUser    = "test-admin"
)

// spy is an MQTT client with rights on every rpmfleet topic: it records what
// is published and publishes what the test wants.
type spy struct {
	c paho.Client

	mu  sync.Mutex // guards got
	got map[string][][]byte
}

func newSpy(t *testing.T, mq *mqtttest.Mosquitto, password string) *spy {
	t.Helper()
	s := &spy{got: map[string][][]byte{}}
	opts := paho.NewClientOptions().AddBroker("tcp://" + mq.Addr).SetClientID("test-spy").
		SetUsername(mqttSpyUser).SetPassword(password).SetAutoReconnect(false)
	s.c = paho.NewClient(opts)
	if tok := s.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("spy: connect to mosquitto: %v\n%s", tok.Error(), mq.Log())
	}
	t.Cleanup(func() { s.c.Disconnect(100) })
	tok := s.c.Subscribe(protocol.TopicPrefix+"#", 1, func(_ paho.Client, m paho.Message) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.got[m.Topic()] = append(s.got[m.Topic()], m.Payload())
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("spy: subscribe: %v", tok.Error())
	}
	return s
}

// seen returns the messages published on topic so far.
func (s *spy) seen(topic string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.got[topic]...)
}

// publish publishes payload on topic, QoS 1, not retained.
func (s *spy) publish(t *testing.T, topic string, payload []byte) {
	t.Helper()
	if tok := s.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("spy: publish on %s: %v", topic, tok.Error())
	}
}

// writeSecretFile writes a password file only its owner may read.
func writeSecretFile(t *testing.T, name, secret string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mqFleet is a server publishing through a Mosquitto the test started,
// and agents enrolled with it, configured, not yet started.
type mqFleet struct {
	srv    *server
	mq     *mqtttest.Mosquitto
	data   string
	broker string
	pw     map[string]string // broker passwords by username
}

// newMQFleet enrols one device per config (named by names), starts a
// Mosquitto that knows the server, each device (username = device id, its
// own password) and the spy, with the fleet's ACL, then starts the server
// on it. Each agent's config gets [mqtt] broker, username and
// password_file.
func newMQFleet(t *testing.T, repo *fleetRepo, names []string, cfgs []agentConfig) (*mqFleet, []*agent) {
	t.Helper()
	f := &mqFleet{data: filepath.Join(t.TempDir(), "data")}
	// Enrol the devices first, to learn the ids their broker accounts need.
	srv := startServer(t, f.data, "--mqtt-listen", "off")
	addr := strings.TrimPrefix(srv.url, "http://")
	var agents []*agent
	for _, n := range names {
		agents = append(agents, enrollAgent(t, srv, repo, n, repo.deviceRoot(t)))
	}
	srv.stop(t)

	f.pw = map[string]string{mqttServerUser: "server-secret", mqttSpyUser: "spy-secret"}
	for _, a := range agents {
		f.pw[a.id] = a.name + "-secret"
	}
	acl := mqtttest.FleetACL(mqttServerUser) + "user " + mqttSpyUser + "\ntopic readwrite " + protocol.TopicPrefix + "#\n"
	f.mq = mqtttest.Start(t, mqtttest.Options{Users: f.pw, ACL: acl})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", f.mq.Log())
		}
	})
	f.broker = "mqtt://" + f.mq.Addr
	f.srv = startServerAt(t, f.data, addr, "--mqtt-listen", "off", "--mqtt-broker", f.broker,
		"--mqtt-username", mqttServerUser, "--mqtt-password-file", writeSecretFile(t, "server-mqtt", f.pw[mqttServerUser]))
	dumpOnFailure(t, f.srv)
	for i, a := range agents {
		c := cfgs[i]
		c.Broker, c.Username, c.PasswordFile = f.broker, a.id, writeSecretFile(t, a.name+"-mqtt", f.pw[a.id])
		a.writeConfig(t, c)
		a.start(t)
	}
	for _, a := range agents {
		waitReported(t, f.srv, a)
	}
	// Every device is connected to Mosquitto under its own name.
	waitFor(t, 20*time.Second, "the devices to connect to mosquitto", func() (bool, string) {
		l := f.mq.Log()
		for _, a := range agents {
			if !strings.Contains(l, "u'"+a.id+"'") {
				return false, a.name + " not yet in mosquitto's log"
			}
		}
		return true, ""
	})
	return f, agents
}

// TestDaemonMosquitto tells the push story through Mosquitto, then attacks
// the devices through it.
func TestDaemonMosquitto(t *testing.T) {
	repo := newFleetRepo(t)
	f, agents := newMQFleet(t, repo, []string{"pi-mq-apply", "pi-mq-notify"},
		[]agentConfig{{Mode: "apply", Window: "open"}, {Mode: "notify"}})
	a, b := agents[0], agents[1]
	srv, mq, data, pw := f.srv, f.mq, f.data, f.pw
	sp := newSpy(t, mq, pw[mqttSpyUser])

	t.Run("push", func(t *testing.T) {
		markB := b.log.Len()
		start := time.Now()
		importFix(t, srv, repo)
		a.waitInstalled(t, pushDeadline, "demo-lib", newLib)
		t.Logf("import to applied through mosquitto: %v", time.Since(start).Round(time.Millisecond))
		waitExposure(t, srv, fixCVE, pushDeadline, []string{b.name}, []string{a.name})
		b.waitLog(t, markB, pushDeadline, fixAdvisory)
		if v := installed(t, b.root, "demo-lib"); v != oldLib {
			t.Errorf("the notify-mode device installed demo-lib %s", v)
		}
		if n := len(sp.seen(protocol.TopicAdvisoryFeed)); n == 0 {
			t.Errorf("the spy saw no feed notice on %s", protocol.TopicAdvisoryFeed)
		}
	})
	if t.Failed() {
		return
	}

	// Every attack below is an apply command to the notify-mode device b:
	// accepted, it would install the fix at once.
	applyNow := protocol.Command{Verb: protocol.CommandApply, Advisories: []string{fixAdvisory}}
	serverKey := readNoticeKey(t, data)
	refused := func(t *testing.T, why string, msg []byte, wantLog ...string) {
		t.Helper()
		mark := b.log.Len()
		sp.publish(t, protocol.DeviceCommandTopic(b.id), msg)
		line := b.waitLog(t, mark, 20*time.Second, wantLog...)
		t.Logf("%s: %s", why, line)
		if v := installed(t, b.root, "demo-lib"); v != oldLib {
			t.Fatalf("after a %s the device has demo-lib %s, want %s", why, v, oldLib)
		}
		if !b.running() {
			t.Fatalf("the agent exited after a %s", why)
		}
	}

	t.Run("forged", func(t *testing.T) {
		_, other, err := notice.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		msg := sign(t, other, time.Now(), notice.KindCommand, b.id, applyNow, 10*time.Minute)
		refused(t, "command signed by another key", msg, "not pinned")
		// A forged feed notice on the fleet topic is refused by both.
		markA, markB := a.log.Len(), b.log.Len()
		sp.publish(t, protocol.TopicAdvisoryFeed, sign(t, other, time.Now(), notice.KindFeedNotice, "", protocol.FeedNotice{Changed: 1, Advisories: []string{fixAdvisory}}, time.Hour))
		a.waitLog(t, markA, 20*time.Second, "not pinned")
		b.waitLog(t, markB, 20*time.Second, "not pinned")
	})

	t.Run("expired", func(t *testing.T) {
		// Signed with the server's own key an hour and a half ago, valid
		// for an hour: what a broker that froze a genuine command holds.
		msg := sign(t, serverKey, time.Now().Add(-90*time.Minute), notice.KindCommand, b.id, applyNow, time.Hour)
		refused(t, "expired command", msg, "expired")
	})

	t.Run("other-device", func(t *testing.T) {
		// A genuine command for a, shown to b.
		msg := sign(t, serverKey, time.Now(), notice.KindCommand, a.id, applyNow, 10*time.Minute)
		refused(t, "command for another device", msg, "another device")
	})

	t.Run("replayed", func(t *testing.T) {
		// The operator applies the fix on b; the broker keeps a copy.
		before := len(sp.seen(protocol.DeviceCommandTopic(b.id)))
		mark := b.log.Len()
		must(t, adminEnv(srv), "rpmfleet", "command", b.name, "apply", fixAdvisory)
		b.waitInstalled(t, pushDeadline, "demo-lib", newLib)
		// The package shows in the rpm database before the cycle ends;
		// the hand-run rpm below must not race the cycle's own.
		b.waitLog(t, mark, 30*time.Second, "update cycle finished")
		var captured []byte
		waitFor(t, 10*time.Second, "the spy to capture the genuine command", func() (bool, string) {
			got := sp.seen(protocol.DeviceCommandTopic(b.id))
			if len(got) > before {
				captured = got[len(got)-1]
				return true, ""
			}
			return false, "nothing captured"
		})
		// A later genuine command moves b's replay guard on.
		must(t, adminEnv(srv), "rpmfleet", "command", b.name, "report")
		// Someone downgrades b by hand; the server sees it exposed again.
		rpmIn(t, b.root, "-U", "--oldpackage", repo.rpms["demo-lib-1.0"])
		waitExposure(t, srv, fixCVE, 20*time.Second, []string{b.name}, []string{a.name})
		// The broker replays the captured apply command: refused.
		refused(t, "replayed command", captured, "replayed")
	})

	t.Run("counted", func(t *testing.T) {
		// b's retained state on the broker counts what it refused, by
		// reason.
		var last string
		waitFor(t, 30*time.Second, b.name+"'s state to count the refused messages", func() (bool, string) {
			got := sp.seen(protocol.DeviceStateTopic(b.id))
			if len(got) == 0 {
				return false, "no state published"
			}
			last = string(got[len(got)-1])
			var st protocol.DeviceState
			if err := json.Unmarshal(got[len(got)-1], &st); err != nil {
				return false, fmt.Sprintf("state %s: %v", last, err)
			}
			n := st.Notices
			return n.UnknownKey >= 2 && n.Expired >= 1 && n.WrongDevice >= 1 && n.Replayed >= 1, last
		})
		t.Logf("%s's state: %s", b.name, last)
	})

	t.Run("broker-down", func(t *testing.T) {
		// Mosquitto goes away for a while: the agents keep running (poll
		// still works) and connect again, under their own names, once it is
		// back.
		before := map[string]int{a.id: strings.Count(mq.Log(), "u'"+a.id+"'"), b.id: strings.Count(mq.Log(), "u'"+b.id+"'")}
		mq.Stop()
		r := run(t, adminEnv(srv), "rpmfleet", "command", b.name, "check")
		t.Logf("rpmfleet command with the broker down: exit %d: %s", r.code, strings.TrimSpace(r.stderr+r.stdout))
		mq.Restart()
		waitFor(t, 60*time.Second, "both agents to reconnect to mosquitto", func() (bool, string) {
			l := mq.Log()
			na, nb := strings.Count(l, "u'"+a.id+"'"), strings.Count(l, "u'"+b.id+"'")
			return na > before[a.id] && nb > before[b.id], fmt.Sprintf("connections seen: %s %d (before %d), %s %d (before %d)", a.name, na, before[a.id], b.name, nb, before[b.id])
		})
		for _, ag := range []*agent{a, b} {
			if !ag.running() {
				t.Errorf("agent %s exited while the broker was down", ag.name)
			}
		}
	})
}

// readNoticeKey reads the server's Ed25519 notice key from its data folder
// (a raw 32-byte seed): the test owns that folder.
func readNoticeKey(t *testing.T, data string) ed25519.PrivateKey {
	t.Helper()
	seed, err := os.ReadFile(filepath.Join(data, "notice.key"))
	if err != nil {
		t.Fatal(err)
	}
	if len(seed) != ed25519.SeedSize {
		t.Fatalf("notice.key holds %d bytes, want a %d-byte seed", len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// sign signs body as a message of kind for device with key, as if the
// clock said now.
func sign(t *testing.T, key ed25519.PrivateKey, now time.Time, kind notice.Kind, device string, body any, ttl time.Duration) []byte {
	t.Helper()
	s, err := notice.NewSigner(key, notice.SignerOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.Sign(kind, device, body, ttl)
	if err != nil {
		t.Fatal(fmt.Errorf("sign %s: %w", kind, err))
	}
	return msg
}

// TestDaemonBrokerDownPollFallback: Mosquitto is stopped before the
// import; the server still imports (publishing fails, the import does not)
// and the device applies the fix at its next poll.
func TestDaemonBrokerDownPollFallback(t *testing.T) {
	repo := newFleetRepo(t)
	f, agents := newMQFleet(t, repo, []string{"pi-mq-poll"}, []agentConfig{{Mode: "apply", Poll: "3s"}})
	a := agents[0]
	f.mq.Stop()
	start := time.Now()
	importFix(t, f.srv, repo)
	a.waitInstalled(t, 30*time.Second, "demo-lib", newLib)
	t.Logf("broker down: import to applied by poll (interval 3s): %v", time.Since(start).Round(time.Millisecond))
	waitExposure(t, f.srv, fixCVE, 20*time.Second, nil, []string{a.name})
}
