package notice

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// t0 is the test clock's "now".
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type planBody struct {
	Advisories []string `json:"advisories"`
}

// fixedSeed makes a key that is the same on every run, so failures repeat.
func fixedKey(t testing.TB, b byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// testSigner signs at clock *at with sequence numbers from *seq.
func testSigner(t testing.TB, priv ed25519.PrivateKey, at *time.Time, seq *uint64) *Signer {
	t.Helper()
	s, err := NewSigner(priv, SignerOptions{
		Now: func() time.Time { return *at },
		Seq: func(Kind, string) (uint64, error) { *seq++; return *seq, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustSign(t testing.TB, s *Signer, kind Kind, device string, ttl time.Duration) []byte {
	t.Helper()
	msg, err := s.Sign(kind, device, planBody{Advisories: []string{"ALSA-2023:3722"}}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// tamper decodes msg's envelope, lets f change it and encodes it again.
func tamper(t testing.TB, msg []byte, f func(*envelope)) []byte {
	t.Helper()
	var env envelope
	if err := json.Unmarshal(msg, &env); err != nil {
		t.Fatal(err)
	}
	f(&env)
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerify(t *testing.T) {
	t.Parallel()
	server := fixedKey(t, 1)
	other := fixedKey(t, 2)
	at := t0
	var seq uint64
	s := testSigner(t, server, &at, &seq)
	impostor := testSigner(t, other, &at, &seq)
	// An impostor who learnt the real key id still cannot sign.
	impostor.keyID = s.KeyID()

	tests := []struct {
		name   string
		msg    func() []byte
		kind   Kind
		device string
		want   error
	}{
		{"plan for this device", func() []byte { return mustSign(t, s, KindPlan, "dev1", time.Hour) }, KindPlan, "dev1", nil},
		{"command for this device", func() []byte { return mustSign(t, s, KindCommand, "dev1", time.Hour) }, KindCommand, "dev1", nil},
		{"fleet-wide feed notice", func() []byte { return mustSign(t, s, KindFeedNotice, "", time.Hour) }, KindFeedNotice, "dev1", nil},
		{"payload bit flipped", func() []byte {
			return tamper(t, mustSign(t, s, KindPlan, "dev1", time.Hour), func(e *envelope) {
				i := bytes.Index(e.Payload, []byte("ALSA-2023:3722"))
				e.Payload[i+5] ^= 0x01 // ALSA-2023 becomes ALSA-3023
			})
		}, KindPlan, "dev1", ErrBadSignature},
		{"sig bit flipped", func() []byte {
			return tamper(t, mustSign(t, s, KindPlan, "dev1", time.Hour), func(e *envelope) { e.Sig[10] ^= 0x80 })
		}, KindPlan, "dev1", ErrBadSignature},
		{"signed by another key under the pinned key id", func() []byte { return mustSign(t, impostor, KindPlan, "dev1", time.Hour) }, KindPlan, "dev1", ErrBadSignature},
		{"signed by an unpinned key", func() []byte {
			return tamper(t, mustSign(t, impostor, KindPlan, "dev1", time.Hour), func(e *envelope) { e.KeyID = Fingerprint(other.Public().(ed25519.PublicKey)) })
		}, KindPlan, "dev1", ErrUnknownKey},
		{"plan presented as a command", func() []byte { return mustSign(t, s, KindPlan, "dev1", time.Hour) }, KindCommand, "dev1", ErrWrongKind},
		{"plan relabelled as a command", func() []byte {
			return tamper(t, mustSign(t, s, KindPlan, "dev1", time.Hour), func(e *envelope) {
				e.Payload = bytes.Replace(e.Payload, []byte(`"kind":"plan"`), []byte(`"kind":"command"`), 1)
			})
		}, KindCommand, "dev1", ErrBadSignature},
		{"plan for another device", func() []byte { return mustSign(t, s, KindPlan, "dev2", time.Hour) }, KindPlan, "dev1", ErrWrongDevice},
		{"feed notice naming a device", func() []byte {
			// Only a signer that skips Sign's checks can make this; the
			// verifier must not rely on the signer.
			return signRaw(t, server, Header{Kind: KindFeedNotice, Device: "dev1", Seq: 1 << 40, Issued: t0, Expires: t0.Add(time.Hour)})
		}, KindFeedNotice, "dev1", ErrWrongDevice},
		{"command for no device", func() []byte {
			return signRaw(t, server, Header{Kind: KindCommand, Seq: 1 << 40, Issued: t0, Expires: t0.Add(time.Hour)})
		}, KindCommand, "", ErrWrongDevice},
		{"expired", func() []byte {
			at = t0.Add(-2 * time.Hour)
			defer func() { at = t0 }()
			return mustSign(t, s, KindPlan, "dev1", time.Hour)
		}, KindPlan, "dev1", ErrExpired},
		{"expires right now", func() []byte {
			at = t0.Add(-time.Hour)
			defer func() { at = t0 }()
			return mustSign(t, s, KindPlan, "dev1", time.Hour)
		}, KindPlan, "dev1", ErrExpired},
		{"issued within the skew", func() []byte {
			at = t0.Add(DefaultSkew)
			defer func() { at = t0 }()
			return mustSign(t, s, KindPlan, "dev1", time.Hour)
		}, KindPlan, "dev1", nil},
		{"issued beyond the skew", func() []byte {
			at = t0.Add(DefaultSkew + time.Second)
			defer func() { at = t0 }()
			return mustSign(t, s, KindPlan, "dev1", time.Hour)
		}, KindPlan, "dev1", ErrNotYetValid},
		{"valid for too long", func() []byte { return mustSign(t, s, KindPlan, "dev1", DefaultMaxTTL+time.Second) }, KindPlan, "dev1", ErrMalformed},
		{"expires before issued", func() []byte {
			return signRaw(t, server, Header{Kind: KindPlan, Device: "dev1", Seq: 1 << 40, Issued: t0, Expires: t0.Add(-time.Second)})
		}, KindPlan, "dev1", ErrMalformed},
		{"unknown kind, validly signed", func() []byte {
			return signRaw(t, server, Header{Kind: "reboot", Device: "dev1", Seq: 1 << 40, Issued: t0, Expires: t0.Add(time.Hour)})
		}, "reboot", "dev1", ErrMalformed},
		{"empty", func() []byte { return nil }, KindPlan, "dev1", ErrMalformed},
		{"not JSON", func() []byte { return []byte("ALSA-2023:3722") }, KindPlan, "dev1", ErrMalformed},
		{"trailing data", func() []byte { return append(mustSign(t, s, KindPlan, "dev1", time.Hour), "{}"...) }, KindPlan, "dev1", ErrMalformed},
		{"unknown envelope field", func() []byte {
			return bytes.Replace(mustSign(t, s, KindPlan, "dev1", time.Hour), []byte(`{"payload"`), []byte(`{"alg":"none","payload"`), 1)
		}, KindPlan, "dev1", ErrMalformed},
		{"payload not base64", func() []byte { return []byte(`{"payload":"!!","key_id":"x","sig":"AA=="}`) }, KindPlan, "dev1", ErrMalformed},
		{"short sig", func() []byte {
			return tamper(t, mustSign(t, s, KindPlan, "dev1", time.Hour), func(e *envelope) { e.Sig = e.Sig[:63] })
		}, KindPlan, "dev1", ErrMalformed},
		{"no sig", func() []byte {
			return tamper(t, mustSign(t, s, KindPlan, "dev1", time.Hour), func(e *envelope) { e.Sig = nil })
		}, KindPlan, "dev1", ErrMalformed},
		{"too big", func() []byte { return make([]byte, MaxMessageSize+1) }, KindPlan, "dev1", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(t, "", server)
			n, err := v.Verify(tt.msg(), tt.kind, tt.device)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify: err = %v, want %v", err, tt.want)
			}
			if err != nil {
				if n != nil {
					t.Errorf("Verify returned a notice with error %v", err)
				}
				if !strings.HasPrefix(err.Error(), "notice: ") {
					t.Errorf("error %q does not start with the package name", err)
				}
				return
			}
			var body planBody
			if err := json.Unmarshal(n.Body, &body); err != nil || len(body.Advisories) != 1 || body.Advisories[0] != "ALSA-2023:3722" {
				t.Errorf("body = %s (%v), want the signed advisories", n.Body, err)
			}
			if n.Kind != tt.kind || n.KeyID != s.KeyID() {
				t.Errorf("notice = %+v", n)
			}
		})
	}
}

// signRaw signs a header Sign would refuse to write.
func signRaw(t testing.TB, priv ed25519.PrivateKey, h Header) []byte {
	t.Helper()
	p, err := json.Marshal(payload{Header: h, Body: json.RawMessage(`{"advisories":["ALSA-2023:3722"]}`)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(envelope{Payload: p, KeyID: Fingerprint(priv.Public().(ed25519.PublicKey)), Sig: ed25519.Sign(priv, signedBytes(h.Kind, p))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestVerifier(t testing.TB, path string, keys ...ed25519.PrivateKey) *Verifier {
	t.Helper()
	var pubs []ed25519.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.Public().(ed25519.PublicKey))
	}
	v, err := NewVerifier(VerifierOptions{Keys: pubs, StatePath: path, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReplay(t *testing.T) {
	t.Parallel()
	server := fixedKey(t, 1)
	at := t0
	var seq uint64
	s := testSigner(t, server, &at, &seq)
	path := filepath.Join(t.TempDir(), "notice-guard.json")
	v := newTestVerifier(t, path, server)

	first := mustSign(t, s, KindPlan, "dev1", time.Hour)
	second := mustSign(t, s, KindPlan, "dev1", time.Hour)
	otherDevice := mustSign(t, s, KindPlan, "dev2", time.Hour)
	command := mustSign(t, s, KindCommand, "dev1", time.Hour)

	steps := []struct {
		name   string
		v      func() *Verifier
		msg    []byte
		kind   Kind
		device string
		want   error
	}{
		{"first plan", func() *Verifier { return v }, first, KindPlan, "dev1", nil},
		{"same plan again", func() *Verifier { return v }, first, KindPlan, "dev1", ErrRepeated},
		{"newer plan", func() *Verifier { return v }, second, KindPlan, "dev1", nil},
		{"older plan after newer", func() *Verifier { return v }, first, KindPlan, "dev1", ErrReplayed},
		// Sequence numbers are kept per kind and device: a command signed
		// before the second plan is still new as a command.
		{"older command, first of its kind", func() *Verifier { return v }, command, KindCommand, "dev1", nil},
		{"plan for another device", func() *Verifier { return v }, otherDevice, KindPlan, "dev2", nil},
		// A restart must not reopen the replay window.
		{"replay after restart", func() *Verifier { return newTestVerifier(t, path, server) }, second, KindPlan, "dev1", ErrRepeated},
		{"older replay after restart", func() *Verifier { return newTestVerifier(t, path, server) }, first, KindPlan, "dev1", ErrReplayed},
		{"command replay after restart", func() *Verifier { return newTestVerifier(t, path, server) }, command, KindCommand, "dev1", ErrRepeated},
		{"new plan after restart", func() *Verifier { return newTestVerifier(t, path, server) }, mustSign(t, s, KindPlan, "dev1", time.Hour), KindPlan, "dev1", nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			_, err := st.v().Verify(st.msg, st.kind, st.device)
			if !errors.Is(err, st.want) || (st.want == nil) != (err == nil) {
				t.Fatalf("Verify: err = %v, want %v", err, st.want)
			}
			if st.want == ErrReplayed && errors.Is(err, ErrRepeated) {
				t.Fatalf("Verify: err = %v: an older message is not a repeat of the last", err)
			}
		})
	}
	got := v.Stats()
	want := Stats{Accepted: 4, Replayed: 1, Repeated: 1}
	if got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("state dir holds %d files, want only the guard (no temp files left)", len(entries))
	}
}

func TestReplayGuardUnreadable(t *testing.T) {
	t.Parallel()
	server := fixedKey(t, 1)
	for _, tt := range []struct{ name, content, want string }{
		{"torn", `{"version":1,"last":{"plan/dev1":`, "unexpected EOF"},
		{"newer version", `{"version":2,"last":{}}`, "version 2"},
		{"unknown field", `{"version":1,"last":{},"x":1}`, "unknown field"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "guard.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := NewVerifier(VerifierOptions{Keys: []ed25519.PublicKey{server.Public().(ed25519.PublicKey)}, StatePath: path})
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewVerifier: err = %v, want one naming %s and %q", err, path, tt.want)
			}
		})
	}
}

// TestReplayGuardNotSaved: when the guard cannot be written, the message is
// not accepted, so a restart cannot accept it a second time.
func TestReplayGuardNotSaved(t *testing.T) {
	t.Parallel()
	server := fixedKey(t, 1)
	at := t0
	var seq uint64
	s := testSigner(t, server, &at, &seq)
	dir := t.TempDir()
	v := newTestVerifier(t, filepath.Join(dir, "missing", "guard.json"), server)
	msg := mustSign(t, s, KindPlan, "dev1", time.Hour)
	if _, err := v.Verify(msg, KindPlan, "dev1"); err == nil || !strings.Contains(err.Error(), "save replay guard") {
		t.Fatalf("Verify with an unwritable guard: err = %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "missing"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(msg, KindPlan, "dev1"); err != nil {
		t.Fatalf("Verify once the guard is writable: %v", err)
	}
	if got := v.Stats(); got.Other != 1 || got.Accepted != 1 {
		t.Errorf("Stats = %+v", got)
	}
}

func TestDefaultSeqIncreases(t *testing.T) {
	t.Parallel()
	// A frozen clock must still give increasing sequence numbers.
	s, err := NewSigner(fixedKey(t, 1), SignerOptions{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, "", fixedKey(t, 1))
	// The first number is the frozen clock in nanoseconds; each next one is
	// exactly one more, since the clock gives nothing newer.
	want := uint64(t0.UnixNano())
	for i := range 3 {
		msg, err := s.Sign(KindCommand, "dev1", map[string]int{"i": i}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		n, err := v.Verify(msg, KindCommand, "dev1")
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if n.Seq != want {
			t.Errorf("message %d: seq = %d, want %d", i, n.Seq, want)
		}
		want = n.Seq + 1
	}
}

func TestSignRefuses(t *testing.T) {
	t.Parallel()
	s, err := NewSigner(fixedKey(t, 1), SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		kind   Kind
		device string
		body   any
		ttl    time.Duration
		// want is the part of the error that names what was wrong.
		want string
	}{
		{"unknown kind", "reboot", "dev1", 1, time.Hour, `sign: unknown kind "reboot"`},
		{"plan for no device", KindPlan, "", 1, time.Hour, `sign plan: device "": only a feed notice goes to no device`},
		{"feed notice for one device", KindFeedNotice, "dev1", 1, time.Hour, `sign feed-notice: device "dev1": only a feed notice goes to no device`},
		{"no ttl", KindPlan, "dev1", 1, 0, "sign plan: ttl 0s is not positive"},
		{"body that cannot be marshalled", KindPlan, "dev1", func() {}, time.Hour, "sign plan: marshal body: json: unsupported type: func()"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := s.Sign(tt.kind, tt.device, tt.body, tt.ttl)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Sign = %s, %v; want an error containing %q", msg, err, tt.want)
			}
		})
	}
}

func TestKeyEncoding(t *testing.T) {
	t.Parallel()
	pub, priv, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	gotPub, err := ParsePublicKey(" " + EncodePublicKey(pub) + "\n")
	if err != nil || !gotPub.Equal(pub) {
		t.Fatalf("ParsePublicKey(EncodePublicKey) = %x, %v", gotPub, err)
	}
	gotPriv, err := ParsePrivateKey(EncodePrivateKey(priv))
	if err != nil || !gotPriv.Equal(priv) {
		t.Fatalf("ParsePrivateKey(EncodePrivateKey) failed: %v", err)
	}
	if fp := Fingerprint(pub); len(fp) != 32 || fp == Fingerprint(fixedKey(t, 1).Public().(ed25519.PublicKey)) {
		t.Errorf("Fingerprint = %q", fp)
	}
	for _, tt := range []struct {
		name, in string
		// pub and priv are what each parser's error must say.
		pub, priv string
	}{
		{"empty", "", "0 bytes, want 32", "0 bytes, want a 32-byte seed"},
		{"not base64", "not base64!", "illegal base64 data", "illegal base64 data"},
		{"31 bytes", base64.StdEncoding.EncodeToString(make([]byte, 31)), "31 bytes, want 32", "31 bytes, want a 32-byte seed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParsePublicKey(tt.in); err == nil || !strings.Contains(err.Error(), "parse notice public key: ") || !strings.Contains(err.Error(), tt.pub) {
				t.Errorf("ParsePublicKey(%q) = %v, want %q", tt.in, err, tt.pub)
			}
			if _, err := ParsePrivateKey(tt.in); err == nil || !strings.Contains(err.Error(), "parse notice private key: ") || !strings.Contains(err.Error(), tt.priv) {
				t.Errorf("ParsePrivateKey(%q) = %v, want %q", tt.in, err, tt.priv)
			}
		})
	}
}

// FuzzVerify: no input panics, and whatever Verify accepts carries exactly
// the payload bytes the server signed.
func FuzzVerify(f *testing.F) {
	server := fixedKey(f, 1)
	at := t0
	var seq uint64
	s := testSigner(f, server, &at, &seq)
	signed := map[string]bool{}
	for _, k := range []struct {
		kind   Kind
		device string
	}{{KindPlan, "dev1"}, {KindCommand, "dev1"}, {KindFeedNotice, ""}} {
		msg := mustSign(f, s, k.kind, k.device, time.Hour)
		f.Add(msg)
		var env envelope
		if err := json.Unmarshal(msg, &env); err != nil {
			f.Fatal(err)
		}
		signed[string(env.Payload)] = true
	}
	f.Add([]byte(`{"payload":"","key_id":"","sig":""}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, kind := range []Kind{KindPlan, KindCommand, KindFeedNotice} {
			v := newTestVerifier(t, "", server)
			n, err := v.Verify(msg, kind, "dev1")
			if err != nil {
				continue
			}
			var env envelope
			if json.Unmarshal(msg, &env) != nil || !signed[string(env.Payload)] {
				t.Fatalf("accepted a payload the server never signed: %q", msg)
			}
			if n.Kind != kind {
				t.Fatalf("accepted a %s as a %s", n.Kind, kind)
			}
		}
	})
}
