// Package notice signs and verifies the messages the fleet server sends to
// its agents: the fleet-wide advisory feed notice, per-device commands and
// per-device plans.
//
// Threat model. A notice travels through an MQTT broker, and a plan through
// HTTPS that may end at a proxy; either may be run by an attacker. Such an
// attacker can delay, drop, reorder or replay messages, but must not be able
// to make a device install anything. Only the server's Ed25519 key can sign,
// and the agent trusts only the public key(s) pinned in its configuration at
// enrolment: nothing is trusted for its transport alone. Every signed message
// names its kind and, unless it is the fleet-wide feed notice, the device it
// is for, so a plan for one device cannot be shown to another and a plan
// cannot pass as a notice. Every message carries a sequence number and an
// expiry: the Verifier remembers the last sequence number it accepted per
// kind and device in a file in the agent's state dir, written before a
// message is accepted, so a replayed message is refused even after a
// restart, and a message frozen by a broker (held back and shown later) is
// refused once it expires. What stays possible is delay until expiry and
// denial of service, which the agent's poll fallback bounds.
//
// Wire format. A signed message is a JSON envelope
//
//	{"payload": "<base64>", "key_id": "<fingerprint>", "sig": "<base64>"}
//
// The payload is the exact JSON bytes the signer wrote (a Header plus the
// body); it is carried as base64 so that no JSON re-encoding on the way can
// change a byte. The signature is Ed25519 over a context string naming the
// kind ("rpmfleet notice v1\x00plan\x00") followed by the payload bytes: the
// context keeps these signatures apart from anything else the server key
// might sign, and from each other kind.
package notice

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Kind says what a signed message is for.
type Kind string

// The kinds of signed messages.
const (
	// KindFeedNotice is the retained fleet-wide notice that the advisory
	// feed changed; its Header.Device is empty.
	KindFeedNotice Kind = "feed-notice"
	// KindCommand is a command to one device (check now, apply, report).
	KindCommand Kind = "command"
	// KindPlan is one device's plan: what to apply now.
	KindPlan Kind = "plan"
)

func (k Kind) valid() bool {
	return k == KindFeedNotice || k == KindCommand || k == KindPlan
}

// MaxMessageSize bounds a signed message; Verify refuses a longer one
// before decoding it.
const MaxMessageSize = 4 << 20

// contextPrefix starts every signed byte string; see signedBytes.
const contextPrefix = "rpmfleet notice v1\x00"

// Errors Verify returns, wrapped with what was wrong. Each is one reason a
// message is refused, counted in Stats.
var (
	ErrMalformed    = errors.New("notice: malformed message")
	ErrUnknownKey   = errors.New("notice: signed by a key that is not pinned")
	ErrBadSignature = errors.New("notice: bad signature")
	ErrWrongKind    = errors.New("notice: wrong kind")
	ErrWrongDevice  = errors.New("notice: for another device")
	ErrExpired      = errors.New("notice: expired")
	ErrNotYetValid  = errors.New("notice: issued in the future")
	ErrReplayed     = errors.New("notice: replayed")
	// ErrRepeated wraps ErrReplayed for the last accepted message of its
	// kind and device seen again: what an MQTT broker does with a retained
	// feed notice at every reconnect, and nothing to alarm anyone about.
	ErrRepeated = fmt.Errorf("%w: the last accepted message again", ErrReplayed)
)

// Header is what every signed payload carries besides its body.
type Header struct {
	// Kind is what the message is for.
	Kind Kind `json:"kind"`
	// Device is the device id the message is for; empty only for
	// KindFeedNotice, which goes to the whole fleet.
	Device string `json:"device,omitempty"`
	// Seq increases strictly per kind and device with every message the
	// server signs.
	Seq uint64 `json:"seq"`
	// Issued and Expires bound when the message may be acted on.
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires"`
}

// payload is the signed JSON: the header fields and the body side by side.
type payload struct {
	Header
	Body json.RawMessage `json:"body"`
}

// envelope is the signed message on the wire.
type envelope struct {
	Payload []byte `json:"payload"` // base64 in JSON
	KeyID   string `json:"key_id"`
	Sig     []byte `json:"sig"` // base64 in JSON
}

// Notice is a verified message.
type Notice struct {
	Header
	// Body is the message's body as the server wrote it, for the caller to
	// decode.
	Body json.RawMessage
	// KeyID is the fingerprint of the key that signed it.
	KeyID string
}

// signedBytes is what the signature covers: the context, the kind, a NUL,
// then the payload bytes exactly as carried.
func signedBytes(kind Kind, p []byte) []byte {
	b := make([]byte, 0, len(contextPrefix)+len(kind)+1+len(p))
	b = append(b, contextPrefix...)
	b = append(b, kind...)
	b = append(b, 0)
	return append(b, p...)
}

// GenerateKey makes a new server key pair from r (crypto/rand.Reader when
// nil).
func GenerateKey(r io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return pub, priv, nil
}

// EncodePublicKey writes a public key as the base64 string configs hold.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a public key written by EncodePublicKey.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("parse notice public key: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("parse notice public key: %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// EncodePrivateKey writes a private key as the base64 of its 32-byte seed,
// for the server's key file.
func EncodePrivateKey(priv ed25519.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(priv.Seed())
}

// ParsePrivateKey reads a private key written by EncodePrivateKey.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("parse notice private key: %w", err)
	}
	if len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("parse notice private key: %d bytes, want a %d-byte seed", len(b), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// Fingerprint names a public key: the hex of the first 16 bytes of its
// SHA-256. It is the envelope's key_id, and what an admin compares when
// pinning a key by hand.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// Signer signs messages with the server's key. It is safe for concurrent
// use.
type Signer struct {
	key   ed25519.PrivateKey
	keyID string
	now   func() time.Time
	seq   func(kind Kind, device string) (uint64, error)

	mu   sync.Mutex // guards last
	last uint64
}

// SignerOptions are the test and deployment seams of a Signer.
type SignerOptions struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Seq returns the next sequence number for a kind and device. When
	// nil, the Signer uses the clock in nanoseconds, bumped so that it
	// strictly increases within the process: that survives a server restart
	// as long as the clock does not go back. Several server replicas
	// signing for the same device must share a counter (a database
	// sequence) through Seq instead.
	Seq func(kind Kind, device string) (uint64, error)
}

// NewSigner returns a Signer for priv.
func NewSigner(priv ed25519.PrivateKey, opts SignerOptions) (*Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("new signer: private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	s := &Signer{key: priv, keyID: Fingerprint(priv.Public().(ed25519.PublicKey)), now: opts.Now, seq: opts.Seq}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// KeyID is the fingerprint of the Signer's public key.
func (s *Signer) KeyID() string { return s.keyID }

func (s *Signer) nextSeq(kind Kind, device string) (uint64, error) {
	if s.seq != nil {
		return s.seq(kind, device)
	}
	n := uint64(max(s.now().UnixNano(), 0))
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= s.last {
		n = s.last + 1
	}
	s.last = n
	return n, nil
}

// Sign signs body (marshalled with encoding/json) as a message of kind for
// device (empty for KindFeedNotice), valid for ttl from now.
func (s *Signer) Sign(kind Kind, device string, body any, ttl time.Duration) ([]byte, error) {
	if !kind.valid() {
		return nil, fmt.Errorf("sign: unknown kind %q", kind)
	}
	if (kind == KindFeedNotice) != (device == "") {
		return nil, fmt.Errorf("sign %s: device %q: only a feed notice goes to no device, and it goes to all", kind, device)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("sign %s: ttl %v is not positive", kind, ttl)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("sign %s: marshal body: %w", kind, err)
	}
	seq, err := s.nextSeq(kind, device)
	if err != nil {
		return nil, fmt.Errorf("sign %s: next sequence number: %w", kind, err)
	}
	now := s.now().UTC().Truncate(time.Second)
	p, err := json.Marshal(payload{
		Header: Header{Kind: kind, Device: device, Seq: seq, Issued: now, Expires: now.Add(ttl)},
		Body:   b,
	})
	if err != nil {
		return nil, fmt.Errorf("sign %s: marshal payload: %w", kind, err)
	}
	msg, err := json.Marshal(envelope{Payload: p, KeyID: s.keyID, Sig: ed25519.Sign(s.key, signedBytes(kind, p))})
	if err != nil {
		return nil, fmt.Errorf("sign %s: marshal envelope: %w", kind, err)
	}
	return msg, nil
}
