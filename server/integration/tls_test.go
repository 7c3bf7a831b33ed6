package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTLSAuto: with --tls auto the server makes its own CA and serves
// HTTPS; the admin CLI trusts it with --ca, and an agent enrols by the CA's
// fingerprint, refuses a server whose chain lacks it before sending the
// token, and keeps the CA pinned for its reports.
func TestTLSAuto(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), "--tls", "auto")
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("--tls auto serves %s", srv.url)
	}
	caPath := filepath.Join(srv.data, "tls", "ca.crt")
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caPEM)
	sum := sha256.Sum256(block.Bytes)
	fp := "sha256:" + hex.EncodeToString(sum[:])
	if !strings.Contains(srv.log.String(), fp) {
		t.Errorf("the server log does not give the CA fingerprint %s:\n%s", fp, srv.log)
	}
	if st, err := os.Stat(filepath.Join(srv.data, "tls", "ca.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("ca.key: %v, want mode 0600", err)
	}

	env := []string{"RPMFLEET_SERVER=" + srv.url, "RPMFLEET_TOKEN=" + srv.admin}
	if r := run(t, env, "rpmfleet", "summary"); r.code == 0 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("CLI without --ca: exit %d, stderr %s; want a certificate error", r.code, r.stderr)
	}
	tok := strings.TrimSpace(must(t, env, "rpmfleet", "enroll-token", "create", "--ca", caPath).stdout)

	root := devRoot(t, storyPackages...)
	state := filepath.Join(t.TempDir(), "state")
	wrong := "sha256:" + strings.Repeat("ab", 32)
	r := run(t, nil, "rpmfleet-agent", "enroll", "--server", srv.url, "--token", tok, "--ca-fingerprint", wrong, "--name", "pi-tls", "--state-dir", state, "--root", root)
	if r.code == 0 || !strings.Contains(r.stderr, "pinned CA") {
		t.Fatalf("enrol with a wrong fingerprint: exit %d, stderr %s; want a refusal", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(state, "credential.json")); !os.IsNotExist(err) {
		t.Fatalf("a refused enrolment left a credential: %v", err)
	}
	// The single-use token was not sent, so it still works.
	must(t, nil, "rpmfleet-agent", "enroll", "--server", srv.url, "--token", tok, "--ca-fingerprint", fp, "--name", "pi-tls", "--state-dir", state, "--root", root)
	must(t, nil, "rpmfleet-agent", "report", "--once", "--root", root, "--state-dir", state)
	dev := must(t, env, "rpmfleet", "device", "pi-tls", "--ca", caPath).stdout
	if !strings.Contains(dev, "3 packages") {
		t.Errorf("device after a report over TLS:\n%s", dev)
	}
}

// TestTLSOwnCertificate: --tls-cert and --tls-key serve a certificate the
// admin brings (here one a --tls auto run made), on all interfaces, which
// plain HTTP may not.
func TestTLSOwnCertificate(t *testing.T) {
	first := startServer(t, filepath.Join(t.TempDir(), "data"), "--tls", "auto")
	first.stop(t)
	dir := filepath.Join(first.data, "tls")
	addr := freeAddr(t)
	port := addr[strings.LastIndex(addr, ":")+1:]
	srv := startServerAt(t, filepath.Join(t.TempDir(), "data"), "0.0.0.0:"+port,
		"--tls-cert", filepath.Join(dir, "server.crt"), "--tls-key", filepath.Join(dir, "server.key"))
	url := "https://127.0.0.1:" + port
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("server with its own certificate serves %s", srv.url)
	}
	must(t, []string{"RPMFLEET_SERVER=" + url, "RPMFLEET_TOKEN=" + srv.admin, "RPMFLEET_CA=" + filepath.Join(dir, "ca.crt")}, "rpmfleet", "summary")
}

// TestDaemonPushOverTLS: with --tls auto the embedded broker speaks TLS
// with the API's certificate and devices are told an mqtts:// URL; an
// agent enrolled by the CA's fingerprint trusts that CA alone for MQTT
// too, and a push reaches it (its poll is an hour away). The broker
// refuses MQTT in clear, and the server refuses to run a broker in clear
// off loopback.
func TestDaemonPushOverTLS(t *testing.T) {
	repo := newFleetRepo(t)
	srv, mqttAddr := startPushServer(t, filepath.Join(t.TempDir(), "data"), "--tls", "auto")
	dumpOnFailure(t, srv)
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("--tls auto serves %s", srv.url)
	}
	a := startAgent(t, srv, repo, "pi-mqtts", repo.deviceRoot(t), agentConfig{Mode: "apply"})
	b, err := os.ReadFile(filepath.Join(a.state, "credential.json"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `"broker_url": "mqtts://` + mqttAddr + `"`; !strings.Contains(string(b), want) {
		t.Errorf("credential.json does not hold %s:\n%s", want, b)
	}
	a.waitLog(t, 0, 20*time.Second, "mqtt connected", "mqtts://"+mqttAddr)
	waitReported(t, srv, a)
	importFix(t, srv, repo)
	a.waitInstalled(t, pushDeadline, "demo-lib", newLib)

	// MQTT in clear on the TLS listener: a CONNECT gets no CONNACK.
	c, err := net.DialTimeout("tcp", mqttAddr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	connect := []byte{0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x04, 'p', 'l', 'a', 'i'}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write(connect); err == nil {
		buf := make([]byte, 4)
		if n, _ := c.Read(buf); n >= 2 && buf[0] == 0x20 {
			t.Errorf("the TLS broker answered a clear-text CONNECT with a CONNACK % x", buf[:n])
		}
	}

	// A broker in clear on all interfaces is refused at start.
	r := run(t, nil, "rpmfleet-server", "--data", filepath.Join(t.TempDir(), "data"), "--listen", freeAddr(t), "--mqtt-listen", "0.0.0.0:0")
	if r.code == 0 || !strings.Contains(r.stderr, "credentials in clear") {
		t.Errorf("rpmfleet-server --mqtt-listen 0.0.0.0:0 without TLS: exit %d, stderr:\n%s\nwant a refusal", r.code, r.stderr)
	}
}
