package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/internal/mqtttest"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// logBuffer collects the server's text log, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wait returns the first submatch of re in the log, waiting up to 10 s.
func (l *logBuffer) wait(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := rx.FindStringSubmatch(l.String()); m != nil {
			return m[len(m)-1]
		}
	}
	t.Fatalf("the log never said %s:\n%s", re, l.String())
	return ""
}

// server runs the server in this process with f, in a fresh data folder
// on a free API port, and returns its log and the run error channel; the
// test's end stops it.
func server(t *testing.T, f flags) (*logBuffer, <-chan error) {
	t.Helper()
	f.data, f.listen = t.TempDir(), "127.0.0.1:0"
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		errc <- run(ctx, f, slog.New(slog.NewTextHandler(logs, nil)))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the server did not stop")
		}
	})
	return logs, errc
}

// call sends a JSON request to the API and decodes the answer into out.
func call(t *testing.T, api, method, path, secret string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, api+strings.TrimPrefix(path, protocol.PathPrefix), body)
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// enroll makes an enrolment token with the admin token the server wrote
// and enrols a device.
func enroll(t *testing.T, api, data, name string) protocol.EnrollResponse {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(data, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	var et protocol.EnrollTokenCreateResponse
	if c := call(t, api, "POST", protocol.PathEnrollTokens, strings.TrimSpace(string(tok)), protocol.EnrollTokenCreateRequest{}, &et); c != 200 {
		t.Fatalf("create enrolment token: %d", c)
	}
	var er protocol.EnrollResponse
	if c := call(t, api, "POST", protocol.PathEnroll, "", protocol.EnrollRequest{Token: et.Token, Name: name}, &er); c != 200 {
		t.Fatalf("enroll: %d", c)
	}
	return er
}

func dataDir(t *testing.T, logs *logBuffer) string {
	return logs.wait(t, `msg="serving the API" addr=\S+ data=(\S+)`)
}

// deviceClient connects to url as the device, and returns what arrives on
// its command topic and the feed.
func deviceClient(url, id, password string) (<-chan paho.Message, func(), error) {
	got := make(chan paho.Message, 8)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(id).SetPassword(password).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return nil, nil, fmt.Errorf("connect: %v", tok.Error())
	}
	for _, topic := range []string{protocol.DeviceCommandTopic(id), protocol.TopicAdvisoryFeed} {
		if tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			c.Disconnect(0)
			return nil, nil, fmt.Errorf("subscribe %s: %v", topic, tok.Error())
		}
	}
	return got, func() { c.Disconnect(0) }, nil
}

// commandReachesTheDevice enrols a device, connects it to the broker URL
// enrolment gave, posts a command and checks the device receives it signed
// with the key enrolment gave.
func commandReachesTheDevice(t *testing.T, api, data string) {
	t.Helper()
	er := enroll(t, api, data, "pi")
	if er.BrokerURL == "" {
		t.Fatal("enrolment gave no broker URL")
	}
	if _, _, err := deviceClient(er.BrokerURL, er.DeviceID, "not-the-credential"); err == nil {
		t.Fatal("the broker let a device in with a wrong password")
	}
	got, stop, err := deviceClient(er.BrokerURL, er.DeviceID, er.Credential)
	if err != nil {
		t.Fatalf("device login to %s: %v", er.BrokerURL, err)
	}
	defer stop()
	tok, _ := os.ReadFile(filepath.Join(data, adminTokenFile))
	var resp protocol.CommandResponse
	if c := call(t, api, "POST", protocol.PathCommand+"pi", strings.TrimSpace(string(tok)), protocol.Command{Verb: protocol.CommandCheck}, &resp); c != 200 {
		t.Fatalf("POST command: %d", c)
	}
	select {
	case m := <-got:
		v, err := notice.NewVerifier(notice.VerifierOptions{Keys: []ed25519.PublicKey{er.NoticeKey}})
		if err != nil {
			t.Fatal(err)
		}
		n, err := v.Verify(m.Payload(), notice.KindCommand, er.DeviceID)
		if err != nil || m.Topic() != resp.Topic || !strings.Contains(string(n.Body), `"check"`) {
			t.Fatalf("received %s %s (%v), want a signed check on %s", m.Topic(), m.Payload(), err, resp.Topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the command never reached the device")
	}
}

func TestEmbeddedBroker(t *testing.T) {
	logs, _ := server(t, flags{mqttListen: "127.0.0.1:0"})
	addr := logs.wait(t, `msg="serving MQTT" addr=(\S+)`)
	api := logs.wait(t, `msg="serving the API" addr=(\S+)`)
	data := dataDir(t, logs)
	er := enroll(t, api, data, "first")
	if er.BrokerURL != "mqtt://"+addr {
		t.Fatalf("devices are told %q, want mqtt://%s", er.BrokerURL, addr)
	}
	commandReachesTheDevice(t, api, data)
}

func TestAdvertisedURL(t *testing.T) {
	logs, _ := server(t, flags{mqttListen: "127.0.0.1:0", mqttAdvertise: "mqtts://fleet.example.org:8883"})
	api := logs.wait(t, `msg="serving the API" addr=(\S+)`)
	if er := enroll(t, api, dataDir(t, logs), "pi"); er.BrokerURL != "mqtts://fleet.example.org:8883" {
		t.Fatalf("devices are told %q, want the advertised URL", er.BrokerURL)
	}
}

func TestNoBroker(t *testing.T) {
	logs, _ := server(t, flags{mqttListen: "off"})
	api := logs.wait(t, `msg="serving the API" addr=(\S+)`)
	data := dataDir(t, logs)
	if er := enroll(t, api, data, "pi"); er.BrokerURL != "" {
		t.Fatalf("with no broker, devices are told %q", er.BrokerURL)
	}
	tok, _ := os.ReadFile(filepath.Join(data, adminTokenFile))
	if c := call(t, api, "POST", protocol.PathCommand+"pi", strings.TrimSpace(string(tok)), protocol.Command{Verb: protocol.CommandCheck}, nil); c != http.StatusServiceUnavailable {
		t.Fatalf("a command with no broker: %d, want 503", c)
	}
}

// TestBrokerPortTaken: the default port taken (by this test, or by
// anything else on the machine) leaves the server running without a
// broker; an explicit address taken stops it.
func TestBrokerPortTaken(t *testing.T) {
	if ln, err := net.Listen("tcp", "127.0.0.1:1883"); err == nil {
		defer ln.Close()
	}
	logs, _ := server(t, flags{})
	logs.wait(t, `(the default MQTT address is taken)`)
	api := logs.wait(t, `msg="serving the API" addr=(\S+)`)
	if er := enroll(t, api, dataDir(t, logs), "pi"); er.BrokerURL != "" {
		t.Fatalf("without a broker, devices are told %q", er.BrokerURL)
	}

	_, errc := server(t, flags{mqttListen: "127.0.0.1:1883"})
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "mqtt listen") {
			t.Fatalf("run with an explicit address taken: %v, want an mqtt listen error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server started although its explicit MQTT address is taken")
	}
}

func TestExternalBroker(t *testing.T) {
	m := mqtttest.Start(t, mqtttest.Options{
		Users: map[string]string{"rpmfleet-server": "pw-server"},
		ACL:   mqtttest.FleetACL("rpmfleet-server"),
	})
	pw := filepath.Join(t.TempDir(), "mqtt.password")
	os.WriteFile(pw, []byte("pw-server\n"), 0o600)
	url := strings.Replace(m.URL(), "tcp://", "mqtt://", 1)
	logs, _ := server(t, flags{mqttBroker: url, mqttUsername: "rpmfleet-server", mqttPasswordFile: pw})
	logs.wait(t, `(publishing through an external MQTT broker)`)
	api := logs.wait(t, `msg="serving the API" addr=(\S+)`)
	data := dataDir(t, logs)
	er := enroll(t, api, data, "pi")
	if er.BrokerURL != url {
		t.Fatalf("devices are told %q, want the external broker %s", er.BrokerURL, url)
	}
	if strings.Contains(logs.String(), "serving MQTT") {
		t.Fatal("the server runs its own broker next to the external one")
	}
	// Mosquitto knows the server's user only; the device is checked by
	// what arrives at a client of the server's user on its topic.
	got, stop, err := deviceClientAs(url, "watcher", "rpmfleet-server", "pw-server", protocol.DeviceCommandTopic(er.DeviceID))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	tok, _ := os.ReadFile(filepath.Join(data, adminTokenFile))
	if c := call(t, api, "POST", protocol.PathCommand+"pi", strings.TrimSpace(string(tok)), protocol.Command{Verb: protocol.CommandReport}, nil); c != 200 {
		t.Fatalf("POST command: %d", c)
	}
	select {
	case msg := <-got:
		v, _ := notice.NewVerifier(notice.VerifierOptions{Keys: []ed25519.PublicKey{er.NoticeKey}})
		if _, err := v.Verify(msg.Payload(), notice.KindCommand, er.DeviceID); err != nil {
			t.Fatalf("command through Mosquitto does not verify: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the command never went through Mosquitto")
	}

	// A wrong password on the external broker stops the server at start.
	bad := filepath.Join(t.TempDir(), "bad.password")
	os.WriteFile(bad, []byte("wrong\n"), 0o600)
	_, errc := server(t, flags{mqttBroker: url, mqttUsername: "rpmfleet-server", mqttPasswordFile: bad})
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "mqtt broker") || strings.Contains(err.Error(), "wrong") {
			t.Fatalf("run with a wrong broker password: %v, want an mqtt broker error without the password", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the server started with a wrong broker password")
	}
}

func deviceClientAs(url, id, user, password, topic string) (<-chan paho.Message, func(), error) {
	got := make(chan paho.Message, 8)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).SetPassword(password).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return nil, nil, fmt.Errorf("connect: %v", tok.Error())
	}
	if tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return nil, nil, fmt.Errorf("subscribe %s: %v", topic, tok.Error())
	}
	return got, func() { c.Disconnect(0) }, nil
}

// TestFeedNoticeThroughEmbeddedBroker: an import through the API leaves a
// signed, retained feed notice on the embedded broker, which a device
// that connects afterwards receives and verifies with the key enrolment
// gave it.
func TestFeedNoticeThroughEmbeddedBroker(t *testing.T) {
	logs, _ := server(t, flags{mqttListen: "127.0.0.1:0"})
	api := logs.wait(t, `msg="serving the API" addr=(\S+)`)
	data := dataDir(t, logs)
	er := enroll(t, api, data, "pi")

	body, err := os.ReadFile(filepath.Join("..", "..", "internal", "fleet", "testdata", "almalinux9_ALSA-2023_3722.json"))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := os.ReadFile(filepath.Join(data, adminTokenFile))
	req, _ := http.NewRequest("POST", api+strings.TrimPrefix(protocol.PathImport, protocol.PathPrefix), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("import: %s", resp.Status)
	}

	got, stop, err := deviceClient(er.BrokerURL, er.DeviceID, er.Credential)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case m := <-got:
		v, _ := notice.NewVerifier(notice.VerifierOptions{Keys: []ed25519.PublicKey{er.NoticeKey}})
		n, err := v.Verify(m.Payload(), notice.KindFeedNotice, er.DeviceID)
		if err != nil || m.Topic() != protocol.TopicAdvisoryFeed || !m.Retained() {
			t.Fatalf("received %s retained %v (%v), want a signed retained feed notice", m.Topic(), m.Retained(), err)
		}
		var fn protocol.FeedNotice
		if err := json.Unmarshal(n.Body, &fn); err != nil || fn.Changed != 1 || len(fn.Advisories) != 1 || fn.Advisories[0] != "ALSA-2023:3722" {
			t.Fatalf("feed notice %s (%v), want ALSA-2023:3722 changed", n.Body, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no feed notice on the broker after an import")
	}
}
