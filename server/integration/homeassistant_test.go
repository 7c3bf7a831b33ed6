package integration

// Issue 12 in server mode: a home that runs the fleet server and Home
// Assistant points both the server and the agent at its own Mosquitto (the
// server's embedded broker admits devices only). The real rpmfleet-server
// publishes through that Mosquitto, the real agent (enrolled) takes its
// signed pushes there and announces itself to Home Assistant (a paho client
// with an account of its own) on the same broker; the broker's ACL gives
// each side its topics, as the README's "Home Assistant" section says.

import (
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/internal/mqtttest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// homeACL is rpmfleet's ACL plus what Home Assistant discovery needs: each
// device (username = device id = node_id) writes its discovery configs and
// its Home Assistant topics and reads their commands and Home Assistant's
// status; Home Assistant's own account reads and writes all of them.
func homeACL() string {
	return strings.Join([]string{
		"pattern write homeassistant/+/%u/+/config",
		"pattern read homeassistant/status",
		"pattern readwrite " + protocol.TopicPrefix + "device/%u/ha/#",
		"",
	}, "\n") + mqtttest.FleetACL(mqttServerUser) +
		"user ha\ntopic readwrite homeassistant/#\ntopic readwrite " + protocol.TopicPrefix + "device/+/ha/#\ntopic read " + protocol.TopicPrefix + "device/+/online\n"
}

// TestHomeAssistantWithFleetServer: the real server imports a fix and pushes
// it through the home's Mosquitto; the notify-mode agent shows it pending in
// Home Assistant; Home Assistant's Install applies it; the server learns
// the device is patched and Home Assistant shows it up to date.
func TestHomeAssistantWithFleetServer(t *testing.T) {
	repo := newFleetRepo(t)
	data := t.TempDir() + "/data"
	srv0 := startServer(t, data, "--mqtt-listen", "off")
	addr := strings.TrimPrefix(srv0.url, "http://")
	a := enrollAgent(t, srv0, repo, "pi-home", repo.deviceRoot(t))
	srv0.stop(t)

	pw := map[string]string{mqttServerUser: "server-secret", a.id: "pi-secret", "ha": "ha-secret"}
	mq := mqtttest.Start(t, mqtttest.Options{Users: pw, ACL: homeACL()})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", mq.Log())
		}
	})
	broker := "mqtt://" + mq.Addr
	srv := startServerAt(t, data, addr, "--mqtt-listen", "off", "--mqtt-broker", broker,
		"--mqtt-username", mqttServerUser, "--mqtt-password-file", writeSecretFile(t, "server-mqtt", pw[mqttServerUser]))
	dumpOnFailure(t, srv)

	// Home Assistant.
	var mu sync.Mutex
	got := map[string][]byte{}
	ha := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + mq.Addr).SetClientID("home-assistant").
		SetUsername("ha").SetPassword(pw["ha"]))
	if tok := ha.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("home assistant: connect: %v", tok.Error())
	}
	defer ha.Disconnect(100)
	if tok := ha.SubscribeMultiple(map[string]byte{"homeassistant/#": 1, protocol.TopicPrefix + "device/+/ha/#": 1}, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got[m.Topic()] = m.Payload()
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("home assistant: subscribe: %v", tok.Error())
	}
	update := func() map[string]any {
		mu.Lock()
		defer mu.Unlock()
		var s map[string]any
		json.Unmarshal(got[protocol.TopicPrefix+"device/"+a.id+"/ha/update"], &s)
		return s
	}

	c := agentConfig{Mode: "notify", Broker: broker, Username: a.id, PasswordFile: writeSecretFile(t, "pi-mqtt", pw[a.id])}
	c.Raw = c.toml(a) + "\n[homeassistant]\nenabled = true\nnode_id = \"" + a.id + "\"\n"
	a.writeConfig(t, c)
	a.start(t)
	waitReported(t, srv, a)
	waitFor(t, 20*time.Second, "the discovery config", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got["homeassistant/update/"+a.id+"/security/config"]) > 0, "no config yet"
	})

	importFix(t, srv, repo)
	waitFor(t, pushDeadline, "the pushed fix pending in Home Assistant", func() (bool, string) {
		s := update()
		return s["installed_version"] != s["latest_version"] && strings.Contains(s["latest_version"].(string), fixAdvisory), "update state: " + jsonString(s)
	})
	if v := installed(t, a.root, "demo-lib"); v != oldLib {
		t.Fatalf("notify mode installed demo-lib %s before Install", v)
	}

	if tok := ha.Publish(protocol.TopicPrefix+"device/"+a.id+"/ha/install", 1, false, "install"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	a.waitInstalled(t, 60*time.Second, "demo-lib", newLib)
	waitExposure(t, srv, fixCVE, pushDeadline, nil, []string{a.name})
	waitFor(t, 20*time.Second, "Home Assistant shows it up to date", func() (bool, string) {
		s := update()
		return s["in_progress"] == false && s["installed_version"] == s["latest_version"], "update state: " + jsonString(s)
	})
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestStandaloneThenEnrol: the real agent runs standalone on the packaged
// kind of configuration (no server), derives its plan from the repository
// and holds the fix back in notify mode; then the device is enrolled with
// the real server (rpmfleet-agent enroll into the same state dir) and the
// agent restarted, with the same configuration file and binary: it now
// runs in server mode, reports, the server lists it exposed to the CVE of
// an import, and its signed plan is held back by the same policy.
func TestStandaloneThenEnrol(t *testing.T) {
	repo := newFleetRepo(t)
	srv := startServer(t, t.TempDir()+"/data")
	dumpOnFailure(t, srv)
	dir := t.TempDir()
	a := &agent{name: "pi-later", root: repo.deviceRoot(t), state: dir + "/state", cfgPath: dir + "/agent.toml", repo: repo, log: &syncBuffer{}}
	c := agentConfig{Mode: "notify"}
	c.Raw = strings.Replace(c.toml(a), "server = \"\"\n", "", 1)
	a.writeConfig(t, c)
	a.start(t)
	a.waitLog(t, 0, 30*time.Second, "starting standalone")
	a.waitLog(t, 0, 30*time.Second, "advisory not applied now", fixAdvisory)
	if _, err := os.Stat(a.state + "/credential.json"); !os.IsNotExist(err) {
		t.Fatalf("a standalone agent has a credential: %v", err)
	}
	a.stop(t)

	tok := strings.TrimSpace(must(t, adminEnv(srv), "rpmfleet", "enroll-token", "create").stdout)
	out := must(t, nil, "rpmfleet-agent", "enroll", "--server", srv.url, "--token", tok, "--name", a.name, "--state-dir", a.state, "--root", a.root).stdout
	if !strings.Contains(out, "systemctl restart rpmfleet-agent") {
		t.Errorf("enroll does not say to restart the agent:\n%s", out)
	}
	mark := a.log.Len()
	a.start(t)
	line := a.waitLog(t, mark, 30*time.Second, "rpmfleet-agent starting", "device=")
	if strings.Contains(line, "standalone") {
		t.Fatalf("still standalone after enrolling: %s", line)
	}
	waitReported(t, srv, a)
	mark = a.log.Len()
	importFix(t, srv, repo)
	waitExposure(t, srv, fixCVE, 30*time.Second, []string{a.name}, nil)
	// The server's signed plan now drives it, under the same policy.
	a.waitLog(t, mark, pushDeadline, "advisory not applied now", fixAdvisory)
}
