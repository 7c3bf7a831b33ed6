package main

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestAutoTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	cert, fp, err := autoTLS(dir, "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Certificate) != 2 {
		t.Fatalf("chain has %d certificates, want server and CA", len(cert.Certificate))
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(cert.Certificate[1])
	if err != nil {
		t.Fatal(err)
	}
	if fp != caFingerprint(ca.Raw) || !ca.IsCA {
		t.Errorf("fingerprint %s is not the CA's, or the CA is not a CA", fp)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"localhost", "127.0.0.1", "192.0.2.7"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("certificate not valid for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "evil.example"}); err == nil {
		t.Errorf("certificate valid for evil.example")
	}
	for _, f := range []string{caKeyFile, serverKeyFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 0600", f, err)
		}
	}
	// A restart keeps the CA agents pinned.
	_, fp2, err := autoTLS(dir, "192.0.2.7")
	if err != nil || fp2 != fp {
		t.Errorf("second start: fingerprint %s, %v; want %s kept", fp2, err, fp)
	}
}

func TestNoticeKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), noticeKeyFile)
	k1, err := noticeKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("notice key mode %v, want 0600", st.Mode().Perm())
	}
	k2, err := noticeKey(path)
	if err != nil || !k1.Equal(k2) {
		t.Errorf("second start: %v, key kept %v", err, k1.Equal(k2))
	}
	os.WriteFile(path+"2", []byte("short"), 0o600)
	if _, err := noticeKey(path + "2"); err == nil {
		t.Errorf("a 5-byte notice key was accepted")
	}
}
