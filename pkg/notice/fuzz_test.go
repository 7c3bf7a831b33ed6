package notice

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzGuardFile reads arbitrary bytes as the replay guard's file, which a
// power cut or a hand may have left in any state: NewVerifier refuses it
// with an error or accepts it, never panics, and a verifier it accepts
// still verifies a fresh message and still refuses it replayed.
func FuzzGuardFile(f *testing.F) {
	server := fixedKey(f, 1)
	f.Add([]byte(`{"version":1,"last":{"plan/dev1":5}}`))
	f.Add([]byte(`{"version":1,"last":{"plan/dev1":18446744073709551615}}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, file []byte) {
		path := filepath.Join(t.TempDir(), "notice-guard.json")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		v, err := NewVerifier(VerifierOptions{Keys: []ed25519.PublicKey{server.Public().(ed25519.PublicKey)}, StatePath: path, Now: func() time.Time { return t0 }})
		if err != nil {
			return
		}
		at := t0
		seq := uint64(1<<63 - 1) // past anything a guard file can hold but the maximum
		msg := mustSign(t, testSigner(t, server, &at, &seq), KindPlan, "dev1", time.Hour)
		if _, err := v.Verify(msg, KindPlan, "dev1"); err != nil {
			return // the file may hold a sequence number at the maximum
		}
		if _, err := v.Verify(msg, KindPlan, "dev1"); err == nil {
			t.Fatal("a replayed message was accepted")
		}
	})
}

// FuzzParseKeys: a public or private key accepted from text (a config
// file, a flag) is the key its encoding gives back.
func FuzzParseKeys(f *testing.F) {
	pub := fixedKey(f, 2).Public().(ed25519.PublicKey)
	f.Add(EncodePublicKey(pub))
	f.Add(EncodePrivateKey(fixedKey(f, 3)))
	f.Add("ed25519:")
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := ParsePublicKey(s); err == nil {
			if len(k) != ed25519.PublicKeySize {
				t.Fatalf("public key of %d bytes from %q", len(k), s)
			}
			if back, err := ParsePublicKey(EncodePublicKey(k)); err != nil || !back.Equal(k) {
				t.Fatalf("%q: encoded back %v", s, err)
			}
		}
		if k, err := ParsePrivateKey(s); err == nil {
			if len(k) != ed25519.PrivateKeySize {
				t.Fatalf("private key of %d bytes from %q", len(k), s)
			}
			if back, err := ParsePrivateKey(EncodePrivateKey(k)); err != nil || !back.Equal(k) {
				t.Fatalf("%q: encoded back %v", s, err)
			}
		}
	})
}
