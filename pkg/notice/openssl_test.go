package notice

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenSSLVerifies checks the wire format against an independent Ed25519
// implementation: openssl verifies the signature over the context string
// and the payload bytes as the package doc describes them, and refuses it
// once the context names another kind. So a server or an auditor in any
// language can check a notice with nothing but the doc.
func TestOpenSSLVerifies(t *testing.T) {
	t.Parallel()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl not found: run make deps")
	}
	priv := fixedKey(t, 7)
	at := t0
	var seq uint64
	msg := mustSign(t, testSigner(t, priv, &at, &seq), KindPlan, "dev1", time.Hour)
	var env envelope
	if err := json.Unmarshal(msg, &env); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	der, err := x509.MarshalPKIXPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"pub.pem":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"sig":         env.Sig,
		"plan.bin":    append([]byte("rpmfleet notice v1\x00plan\x00"), env.Payload...),
		"command.bin": append([]byte("rpmfleet notice v1\x00command\x00"), env.Payload...),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	verify := func(data string) ([]byte, error) {
		cmd := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", data, "-sigfile", "sig")
		cmd.Dir = dir
		return cmd.CombinedOutput()
	}
	if out, err := verify("plan.bin"); err != nil {
		t.Fatalf("openssl refuses the plan's signature: %v\n%s", err, out)
	}
	// openssl exits 1 and says so for a signature that does not verify; any
	// other failure (a bad flag, a missing file) is not this test's answer.
	if out, err := verify("command.bin"); err == nil || !strings.Contains(string(out), "Signature Verification Failure") {
		t.Fatalf("openssl on the plan's signature over a command's bytes: %v\n%s\nwant Signature Verification Failure", err, out)
	}
}
