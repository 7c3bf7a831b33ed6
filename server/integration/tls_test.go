package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
