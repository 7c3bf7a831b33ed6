package integration

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/agent/internal/homeassistant/hatest"
	"github.com/rpmfleet/rpmfleet/internal/mqtttest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// Issue 12: the agent on its own. These tests run the real rpmfleet-agent
// run with no server and no enrolment, against the apply tests' world (a
// device root the real rpm wrote, a repository made by createrepo_c with
// rpmsign-signed packages, served over loopback HTTP), and, for Home
// Assistant, a real Mosquitto and a real MQTT client (paho) standing for
// Home Assistant.

// daemonProc is a running rpmfleet-agent run.
type daemonProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	code   int
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemon runs rpmfleet-agent run --config cfg; the test's end stops it.
func startDaemon(t *testing.T, cfg string, env ...string) *daemonProc {
	t.Helper()
	p := &daemonProc{cmd: exec.Command(agentBin, "run", "--config", cfg), stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), append([]string{"RPMFLEET_DEBOUNCE=300ms", "NOTIFY_SOCKET="}, env...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = 0
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("agent log:\n%s", p.stderr.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits; the exit code is then in code.
func (p *daemonProc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("the agent did not stop within 30 s of SIGTERM")
	}
}

func (p *daemonProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond every 100 ms for up to limit.
func waitFor(t *testing.T, p *daemonProc, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if p != nil && p.exited() {
			t.Fatalf("%s: the agent exited (code %d) first:\n%s", what, p.code, p.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeConfig writes an agent.toml readable by its owner only.
func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (w *world) standaloneConfig(mode string, extra string) string {
	keys := `"` + strings.Join(w.keys, `", "`) + `"`
	return fmt.Sprintf(`state_dir = %q
root = %q

[[repo]]
id = "home"
baseurl = %q
gpgkey = [%s]

[policy]
mode = %q
security_only = true
%s`, w.stateDir, w.root, w.srv.URL, keys, mode, extra)
}

// twoAdvisories: a security fix for demo-lib, and a bug fix for demo-app
// that the policy (security_only) leaves alone.
func twoAdvisories() []*advisory.Advisory {
	return []*advisory.Advisory{{
		ID: applyAdvisory, Type: advisory.Security, Severity: advisory.Important, Title: "demo-lib security update",
		Issued: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), CVEs: []string{"CVE-2026-0001"},
		References: []advisory.Reference{{Type: "self", ID: applyAdvisory, URL: "https://errata.example.org/RFSA-2026-0001.html"}},
		Packages:   []advisory.Package{{Name: "demo-lib", EVR: rpmver.MustParseEVR("1.1-1"), Arch: "x86_64", Filename: "demo-lib-1.1-1.x86_64.rpm"}},
	}, {
		ID: "RFBA-2026:0002", Type: advisory.Bugfix, Severity: advisory.SeverityNone, Title: "demo-app bug fix",
		Issued:   time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
		Packages: []advisory.Package{{Name: "demo-app", EVR: rpmver.MustParseEVR("2.1-1"), Arch: "x86_64", Filename: "demo-app-2.1-1.x86_64.rpm"}},
	}}
}

var libOnly = []string{"demo-app-2.0-1.x86_64", "demo-lib-1.1-1.x86_64", "demo-other-5.0-3.noarch"}

// TestStandaloneAppliesByPolicy: with no server and no enrolment, run
// starts (it used to exit "not enrolled"), derives the plan from the
// signed repository, applies the security advisory the policy (apply,
// security only) allows and leaves the bug fix, keeps the cycle in the
// history, and stops cleanly on SIGTERM.
func TestStandaloneAppliesByPolicy(t *testing.T) {
	w := newWorld(t, worldOpts{advisories: twoAdvisories()})
	cfg := writeConfig(t, w.dir, w.standaloneConfig("apply", ""))
	p := startDaemon(t, cfg)
	waitFor(t, p, 60*time.Second, "demo-lib updated", func() bool { return slices.Equal(w.installed(t, false), libOnly) })
	waitFor(t, p, 10*time.Second, "plan re-derived after the cycle", func() bool {
		return strings.Count(p.stderr.String(), "plan derived from the repositories") >= 2
	})
	time.Sleep(time.Second) // a second cycle would show here
	assertDB(t, w, libOnly, "after the standalone cycle")
	p.stop(t)
	if p.code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", p.code)
	}
	log := p.stderr.String()
	if !strings.Contains(log, "starting standalone") || strings.Contains(log, "not enrolled") {
		t.Errorf("start not logged as standalone:\n%s", log)
	}
	h := w.history(t)
	if len(h) != 1 {
		t.Fatalf("history holds %d cycles, want 1: %v", len(h), h)
	}
	c := h[0]
	advs, _ := json.Marshal(c["advisories"])
	if c["phase"] != "committed" || !strings.Contains(string(advs), applyAdvisory) || strings.Contains(string(advs), "RFBA-2026:0002") {
		t.Errorf("cycle: phase %v advisories %s, want committed with %s only", c["phase"], advs, applyAdvisory)
	}
	// The plan is pinned: each package to primary.xml's SHA-256.
	b, err := os.ReadFile(filepath.Join(w.stateDir, "plan-last.json"))
	if err != nil {
		t.Fatal(err)
	}
	var saved struct {
		ETag  string        `json:"etag"`
		Local bool          `json:"local"`
		Plan  protocol.Plan `json:"plan"`
	}
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	if !saved.Local || !strings.HasPrefix(saved.ETag, "local:") {
		t.Errorf("saved plan not local: %s", b)
	}
	for _, a := range saved.Plan.Advisories {
		if a.ID == applyAdvisory {
			t.Errorf("the plan after the cycle still holds %s", a.ID)
		}
		for _, pp := range a.Packages {
			if len(pp.SHA256) != 64 {
				t.Errorf("%s %s not pinned: sha256 %q", a.ID, pp.Name, pp.SHA256)
			}
		}
	}
}

// TestPackagedConfigStartsStandalone: the configuration files the rpm
// package ships (the /etc/rpmfleet/agent.toml it installs, and the
// commented example), changed only in their paths, start the real agent
// standalone: it keeps running (the unit's Restart=on-failure would loop
// on an exit), and stops cleanly. The example's repositories are the real
// AlmaLinux mirrors: HTTPS_PROXY points at a closed port so the test never
// reaches the network; the check fails, is logged and is retried.
func TestPackagedConfigStartsStandalone(t *testing.T) {
	w := newWorld(t, worldOpts{})
	for _, file := range []string{"agent.toml", "agent.toml.example"} {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(moduleRoot(t), "cross/rpmpkg/files", file))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			s := strings.ReplaceAll(string(b), `"/var/lib/rpmfleet"`, strconv.Quote(filepath.Join(dir, "state")))
			s = strings.ReplaceAll(s, `root = "/"`, "root = "+strconv.Quote(w.root))
			s = strings.ReplaceAll(s, `"/etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-9"`, strconv.Quote(w.keys[0]))
			if !strings.Contains(s, w.root) {
				// The installed file leaves root at its default, "/".
				s = "root = " + strconv.Quote(w.root) + "\n" + s
			}
			cfg := writeConfig(t, dir, s)
			p := startDaemon(t, cfg, "HTTPS_PROXY=http://127.0.0.1:1", "https_proxy=http://127.0.0.1:1")
			waitFor(t, p, 20*time.Second, "first check done", func() bool {
				l := p.stderr.String()
				return strings.Contains(l, "plan fetch failed") || strings.Contains(l, "plan derived")
			})
			time.Sleep(2 * time.Second)
			if p.exited() {
				t.Fatalf("the agent exited (code %d):\n%s", p.code, p.stderr.String())
			}
			p.stop(t)
			if p.code != 0 || !strings.Contains(p.stderr.String(), "starting standalone") {
				t.Errorf("exit %d; log:\n%s", p.code, p.stderr.String())
			}
		})
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}

// haClient stands for Home Assistant: a paho client that records what the
// agent publishes for it.
type haClient struct {
	paho.Client
	mu   sync.Mutex
	msgs []paho.Message
}

func newHAClient(t *testing.T, m *mqtttest.Mosquitto, login ...string) *haClient {
	t.Helper()
	h := &haClient{}
	o := paho.NewClientOptions().AddBroker(m.URL()).SetClientID("home-assistant")
	if len(login) == 2 {
		o.SetUsername(login[0]).SetPassword(login[1])
	}
	if pool := m.RootCAs(); pool != nil {
		o.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	h.Client = paho.NewClient(o.
		SetAutoReconnect(true).SetMaxReconnectInterval(100 * time.Millisecond).
		SetOnConnectHandler(func(c paho.Client) {
			c.SubscribeMultiple(map[string]byte{"homeassistant/#": 1, protocol.TopicPrefix + "device/pi-test/#": 1}, func(_ paho.Client, msg paho.Message) {
				h.mu.Lock()
				h.msgs = append(h.msgs, msg)
				h.mu.Unlock()
			})
		}))
	if tok := h.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("home assistant's client: %v", tok.Error())
	}
	t.Cleanup(func() { h.Disconnect(0) })
	return h
}

// last is the newest payload seen on topic; ok is false when none.
func (h *haClient) last(topic string) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.msgs) - 1; i >= 0; i-- {
		if h.msgs[i].Topic() == topic {
			return h.msgs[i].Payload(), true
		}
	}
	return nil, false
}

// count is how many messages arrived on topics with the prefix.
func (h *haClient) count(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.HasPrefix(m.Topic(), prefix) {
			n++
		}
	}
	return n
}

// states are the update entity's states seen, in order.
func (h *haClient) states(t *testing.T) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, m := range h.msgs {
		if m.Topic() != updateTopic {
			continue
		}
		var s map[string]any
		if err := json.Unmarshal(m.Payload(), &s); err != nil {
			t.Errorf("update state %q: %v", m.Payload(), err)
			continue
		}
		out = append(out, s)
	}
	return out
}

func (h *haClient) publish(t *testing.T, topic, payload string, retain bool) {
	t.Helper()
	if tok := h.Publish(topic, 1, retain, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

const (
	updateConfigTopic = "homeassistant/update/pi-test/security/config"
	updateTopic       = protocol.TopicPrefix + "device/pi-test/ha/update"
	installTopic      = protocol.TopicPrefix + "device/pi-test/ha/install"
)

// TestHomeAssistantInstall is the home story with a real Mosquitto: the
// agent runs standalone in notify mode with [homeassistant] on; Home
// Assistant (a paho client) gets a retained discovery config whose keys
// and types match Home Assistant's documented schema, and an update
// entity whose versions differ while the fix is pending. A wrong payload
// and a retained "install" do nothing; the exact payload_install on the
// command topic installs the fix (notify mode's approval), in_progress
// goes true then false and installed_version changes. Idle, discovery is
// not published again; after a broker restart, Home Assistant's birth
// message makes the agent announce again. The agent's resident set is
// logged (docs/benchmarks.md, "Home mode").
func TestHomeAssistantInstall(t *testing.T) {
	w := newWorld(t, worldOpts{advisories: twoAdvisories()})
	m := mqtttest.Start(t, mqtttest.Options{})
	ha := newHAClient(t, m)
	broker := strings.Replace(m.URL(), "tcp://", "mqtt://", 1)
	cfg := writeConfig(t, w.dir, w.standaloneConfig("notify", fmt.Sprintf("\n[mqtt]\nbroker = %q\n\n[homeassistant]\nenabled = true\nnode_id = \"pi-test\"\n", broker)))
	// A retained "install" someone left on the broker must not act when
	// the agent subscribes (nor at any later reconnect).
	ha.publish(t, installTopic, "install", true)
	p := startDaemon(t, cfg)

	waitFor(t, p, 30*time.Second, "discovery config", func() bool { _, ok := ha.last(updateConfigTopic); return ok })
	b, _ := ha.last(updateConfigTopic)
	var conf map[string]any
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatalf("discovery config %q: %v", b, err)
	}
	schema := hatest.LoadSchema(t, filepath.Join(moduleRoot(t), "agent/internal/homeassistant/testdata/update.mqtt.schema.json"))
	if errs := schema.CheckConfig(conf); len(errs) > 0 {
		t.Errorf("discovery config breaks Home Assistant's schema:\n%s\n%s", strings.Join(errs, "\n"), b)
	}
	if conf["command_topic"] != installTopic || conf["payload_install"] != "install" || conf["state_topic"] != updateTopic {
		t.Fatalf("discovery config topics: %s", b)
	}

	pending := func() bool {
		b, ok := ha.last(updateTopic)
		if !ok {
			return false
		}
		var s map[string]any
		json.Unmarshal(b, &s)
		return s["installed_version"] != s["latest_version"] && strings.Contains(fmt.Sprint(s["latest_version"]), applyAdvisory)
	}
	waitFor(t, p, 30*time.Second, "the fix shown pending", pending)
	b, _ = ha.last(updateTopic)
	var st map[string]any
	json.Unmarshal(b, &st)
	if errs := schema.CheckState(st); len(errs) > 0 {
		t.Errorf("update state breaks the schema: %v\n%s", errs, b)
	}
	if st["release_url"] != "https://errata.example.org/RFSA-2026-0001.html" || !strings.HasPrefix(fmt.Sprint(st["release_summary"]), "Important: "+applyAdvisory) ||
		strings.Contains(fmt.Sprint(st["release_summary"]), "RFBA-2026:0002") {
		t.Errorf("update state: %s", b)
	}
	installedBefore := st["installed_version"]
	waitFor(t, p, 10*time.Second, "sensors show one important advisory", func() bool {
		b, _ := ha.last(protocol.TopicPrefix + "device/pi-test/ha/state")
		return strings.Contains(string(b), `"pending_important":1,`) && strings.Contains(string(b), `"last_check":"20`)
	})

	// Idle: no discovery config published again (the budget).
	// RPMFLEET_IDLE (a Go duration, 3 s by default) lengthens the window
	// for docs/benchmarks.md's figure.
	idle := 3 * time.Second
	if s := os.Getenv("RPMFLEET_IDLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("RPMFLEET_IDLE=%q: %v", s, err)
		}
		idle = d
	}
	configs := ha.count("homeassistant/")
	states := ha.count(protocol.TopicPrefix)
	time.Sleep(idle)
	t.Logf("idle %s: %d discovery and %d state messages published", idle, ha.count("homeassistant/")-configs, ha.count(protocol.TopicPrefix)-states)
	if n := ha.count("homeassistant/"); n != configs {
		t.Errorf("idle: %d discovery messages more", n-configs)
	}
	if rss := vmRSS(t, p.cmd.Process.Pid); rss > 0 {
		t.Logf("agent idle with Home Assistant on: VmRSS %d kB", rss)
	}

	// What must not install: the retained one, other payloads, in a
	// flood that must not flood the log either.
	if !strings.Contains(p.stderr.String(), "retained home assistant command ignored") {
		t.Errorf("the retained install was not refused:\n%s", p.stderr.String())
	}
	for _, payload := range []string{"INSTALL", "install\n", " install", "check", strings.Repeat("install", 1000)} {
		ha.publish(t, installTopic, payload, false)
	}
	for range 300 {
		ha.Publish(installTopic, 0, false, "x")
	}
	ha.publish(t, installTopic, "", true) // clear the retained one: it arrives live, empty
	time.Sleep(2 * time.Second)
	assertDB(t, w, before, "after wrong payloads and a retained install")
	if n := strings.Count(p.stderr.String(), "command ignored"); n > 2 {
		t.Errorf("%d log lines for ignored commands, want at most 2 (one a minute)", n)
	}

	// Install.
	ha.publish(t, installTopic, "install", false)
	waitFor(t, p, 60*time.Second, "fix installed and shown", func() bool {
		b, _ := ha.last(updateTopic)
		var s map[string]any
		json.Unmarshal(b, &s)
		return s["in_progress"] == false && s["installed_version"] == s["latest_version"] && slices.Equal(w.installed(t, false), libOnly)
	})
	seen := ha.states(t)
	sawProgress := false
	for _, s := range seen {
		if s["in_progress"] == true {
			sawProgress = true
		}
	}
	last := seen[len(seen)-1]
	if !sawProgress || last["installed_version"] == installedBefore {
		t.Errorf("in_progress never true (%v) or installed_version unchanged (%v): %v", sawProgress, last["installed_version"], seen)
	}
	if h := w.history(t); len(h) != 1 || h[0]["phase"] != "committed" {
		t.Errorf("history: %v", h)
	}
	waitFor(t, p, 10*time.Second, "sensors after the cycle", func() bool {
		b, _ := ha.last(protocol.TopicPrefix + "device/pi-test/ha/state")
		return strings.Contains(string(b), `"last_cycle":"committed"`) && strings.Contains(string(b), `"pending_important":0,`) && strings.Contains(string(b), `"running":"OFF"`)
	})

	// Check now: the button's exact payload makes a check.
	checks := w.srv.Requests("/repodata/repomd.xml")
	ha.publish(t, protocol.TopicPrefix+"device/pi-test/ha/check", "check", false)
	waitFor(t, p, 10*time.Second, "the check the button asked for", func() bool { return w.srv.Requests("/repodata/repomd.xml") > checks })

	// A broker restart loses every retained message (no persistence);
	// Home Assistant's birth makes the agent announce again.
	m.Restart()
	waitFor(t, p, 30*time.Second, "agent back online", func() bool {
		return strings.Count(p.stderr.String(), "mqtt connected") >= 2
	})
	waitFor(t, nil, 10*time.Second, "home assistant's client back", func() bool { return ha.IsConnectionOpen() })
	time.Sleep(time.Second)
	configs = ha.count(updateConfigTopic)
	ha.publish(t, "homeassistant/status", "online", false)
	waitFor(t, p, 10*time.Second, "announced again on birth", func() bool { return ha.count(updateConfigTopic) > configs })
	if !strings.Contains(p.stderr.String(), "home assistant online; announcing again") {
		t.Errorf("birth not logged")
	}
	// A flood of births (anyone on the broker can send one) costs one
	// announcement per 10 s, not one each.
	time.Sleep(500 * time.Millisecond)
	configs = ha.count("homeassistant/")
	for range 100 {
		ha.Publish("homeassistant/status", 0, false, "online")
	}
	ha.publish(t, "homeassistant/status", "online", false)
	time.Sleep(time.Second)
	if n := ha.count("homeassistant/") - configs - 101; n > 0 {
		t.Errorf("a flood of 101 births made %d discovery publications", n)
	}
}

// vmRSS reads a process's resident set in kB; 0 when unreadable.
func vmRSS(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// TestHomeAssistantOverMQTTS: the home's Mosquitto over TLS with accounts,
// as a Home Assistant on another host needs: the agent logs in with its
// username and password_file, checks the broker's certificate against the
// pinned ca, and Home Assistant gets the discovery config. With a CA that
// did not sign the broker's certificate it never connects.
func TestHomeAssistantOverMQTTS(t *testing.T) {
	w := newWorld(t, worldOpts{advisories: twoAdvisories()})
	m := mqtttest.Start(t, mqtttest.Options{TLS: true, Users: map[string]string{"pi-test": "pi-secret", "ha": "ha-secret"}})
	ha := newHAClient(t, m, "ha", "ha-secret")

	// The broker's certificate, as its owner would copy it to the device.
	conn, err := tls.Dial("tcp", m.Addr, &tls.Config{RootCAs: m.RootCAs(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: conn.ConnectionState().PeerCertificates[0].Raw})
	conn.Close()
	caFile, pwFile := filepath.Join(w.dir, "mqtt-ca.pem"), filepath.Join(w.dir, "mqtt-password")
	os.WriteFile(caFile, ca, 0o644)
	os.WriteFile(pwFile, []byte("pi-secret\n"), 0o600)
	mqttConf := func(ca string) string {
		return fmt.Sprintf("\n[mqtt]\nbroker = %q\nusername = \"pi-test\"\npassword_file = %q\nca = %q\n\n[homeassistant]\nenabled = true\nnode_id = \"pi-test\"\n",
			"mqtts://"+m.Addr, pwFile, ca)
	}

	t.Run("wrong CA", func(t *testing.T) {
		other := mqtttest.Start(t, mqtttest.Options{TLS: true})
		c, err := tls.Dial("tcp", other.Addr, &tls.Config{RootCAs: other.RootCAs(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		wrong := filepath.Join(t.TempDir(), "other-ca.pem")
		os.WriteFile(wrong, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.ConnectionState().PeerCertificates[0].Raw}), 0o644)
		c.Close()
		dir := t.TempDir()
		w2 := *w
		w2.stateDir = filepath.Join(dir, "state")
		p := startDaemon(t, writeConfig(t, dir, w2.standaloneConfig("notify", mqttConf(wrong))))
		waitFor(t, p, 20*time.Second, "a refused handshake", func() bool { return strings.Contains(p.stderr.String(), "tls handshake") })
		if _, ok := ha.last(updateConfigTopic); ok {
			t.Fatal("discovery arrived through a broker the pinned CA does not vouch for")
		}
		p.stop(t)
	})

	p := startDaemon(t, writeConfig(t, w.dir, w.standaloneConfig("notify", mqttConf(caFile))))
	waitFor(t, p, 30*time.Second, "discovery over mqtts", func() bool { _, ok := ha.last(updateConfigTopic); return ok })
	waitFor(t, p, 30*time.Second, "the pending fix", func() bool {
		b, _ := ha.last(updateTopic)
		return strings.Contains(string(b), applyAdvisory)
	})
}
