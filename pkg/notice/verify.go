package notice

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/durable"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// DefaultSkew is how far in the future a message's issue time may be, for
// clocks that disagree a little.
const DefaultSkew = 5 * time.Minute

// DefaultMaxTTL is the longest lifetime a Verifier accepts: a message that
// claims to stay valid longer is refused as malformed, so a leaked or frozen
// message cannot be held back for months.
const DefaultMaxTTL = 30 * 24 * time.Hour

// guardVersion is the version of the replay guard file. History:
//
//   - 1 (2026-11-25): {"version":1,"last":{"<kind>/<device>":seq}}.
const guardVersion = 1

// guardFile is the replay guard's JSON.
type guardFile struct {
	Version int               `json:"version"`
	Last    map[string]uint64 `json:"last"`
}

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	// Keys are the pinned server public keys; more than one while a key is
	// rotated. At least one is required.
	Keys []ed25519.PublicKey
	// StatePath is the replay guard's file (in the agent's state dir). It
	// is read by NewVerifier and rewritten, by temp file, fsync and rename,
	// before each message is accepted. Empty keeps the guard in memory
	// only, which reopens the replay window at every restart: for tests
	// and fuzzing, never for the daemon.
	StatePath string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Skew is how far in the future Issued may be; DefaultSkew when 0.
	Skew time.Duration
	// MaxTTL is the longest Expires-Issued accepted; DefaultMaxTTL when 0.
	MaxTTL time.Duration
}

// Stats counts what a Verifier accepted and refused, by reason, since it
// was made (Repeated: ErrRepeated). The daemon shows it in its state, so it
// is the wire type protocol.NoticeStats.
type Stats = protocol.NoticeStats

// Verifier checks signed messages against the pinned keys and the replay
// guard. It is safe for concurrent use.
type Verifier struct {
	keys   map[string]ed25519.PublicKey
	path   string
	now    func() time.Time
	skew   time.Duration
	maxTTL time.Duration

	mu    sync.Mutex // guards last and stats, and serializes writes of path
	last  map[string]uint64
	stats Stats
}

// NewVerifier returns a Verifier, reading the replay guard from
// opts.StatePath when it exists. An unreadable guard is an error, not a
// fresh start, since a fresh start would accept replays.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	if len(opts.Keys) == 0 {
		return nil, errors.New("new verifier: no pinned key")
	}
	v := &Verifier{
		keys:   make(map[string]ed25519.PublicKey, len(opts.Keys)),
		path:   opts.StatePath,
		now:    opts.Now,
		skew:   opts.Skew,
		maxTTL: opts.MaxTTL,
		last:   map[string]uint64{},
	}
	for i, k := range opts.Keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("new verifier: key %d has %d bytes, want %d", i, len(k), ed25519.PublicKeySize)
		}
		v.keys[Fingerprint(k)] = k
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.skew == 0 {
		v.skew = DefaultSkew
	}
	if v.maxTTL == 0 {
		v.maxTTL = DefaultMaxTTL
	}
	if v.path == "" {
		return v, nil
	}
	b, err := os.ReadFile(v.path)
	if errors.Is(err, fs.ErrNotExist) {
		return v, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read replay guard: %w", err)
	}
	var g guardFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("read replay guard %s: %w", v.path, err)
	}
	if g.Version != guardVersion {
		return nil, fmt.Errorf("read replay guard %s: version %d, want %d", v.path, g.Version, guardVersion)
	}
	for k, n := range g.Last {
		v.last[k] = n
	}
	return v, nil
}

// Stats returns the counts so far.
func (v *Verifier) Stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stats
}

// Verify checks msg and returns its content when it is a message of
// wantKind for deviceID (or, for KindFeedNotice, for the whole fleet),
// signed by a pinned key, valid now, and newer than every message of that
// kind and device accepted before; it then records its sequence number.
// Otherwise it returns an error wrapping one of the package's Err values.
func (v *Verifier) Verify(msg []byte, wantKind Kind, deviceID string) (*Notice, error) {
	n, err := v.verify(msg, wantKind, deviceID)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err == nil {
		err = v.accept(n)
	}
	v.count(err)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// verify does every check that needs no state.
func (v *Verifier) verify(msg []byte, wantKind Kind, deviceID string) (*Notice, error) {
	if len(msg) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(msg), MaxMessageSize)
	}
	var env envelope
	if err := strictUnmarshal(msg, &env); err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if len(env.Payload) == 0 || env.KeyID == "" || len(env.Sig) == 0 {
		return nil, fmt.Errorf("%w: envelope: payload, key_id and sig are required", ErrMalformed)
	}
	if len(env.Sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: sig has %d bytes, want %d", ErrMalformed, len(env.Sig), ed25519.SignatureSize)
	}
	key, ok := v.keys[env.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: key_id %q", ErrUnknownKey, env.KeyID)
	}
	// The payload is parsed before the signature is checked only to learn
	// which kind's context the signature must cover; nothing in it is
	// believed until the signature verifies.
	var p payload
	if err := strictUnmarshal(env.Payload, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if !p.Kind.valid() {
		return nil, fmt.Errorf("%w: payload: unknown kind %q", ErrMalformed, p.Kind)
	}
	if !ed25519.Verify(key, signedBytes(p.Kind, env.Payload), env.Sig) {
		return nil, fmt.Errorf("%w: %s seq %d from key %s", ErrBadSignature, p.Kind, p.Seq, env.KeyID)
	}
	h := p.Header
	if h.Kind != wantKind {
		return nil, fmt.Errorf("%w: got a %s, want a %s", ErrWrongKind, h.Kind, wantKind)
	}
	switch {
	case h.Kind == KindFeedNotice && h.Device != "":
		return nil, fmt.Errorf("%w: feed notice names device %q", ErrWrongDevice, h.Device)
	case h.Kind != KindFeedNotice && (h.Device == "" || h.Device != deviceID):
		return nil, fmt.Errorf("%w: %s for device %q, this is %q", ErrWrongDevice, h.Kind, h.Device, deviceID)
	}
	if h.Issued.IsZero() || !h.Expires.After(h.Issued) {
		return nil, fmt.Errorf("%w: payload: expires %s is not after issued %s", ErrMalformed, h.Expires.Format(time.RFC3339), h.Issued.Format(time.RFC3339))
	}
	if d := h.Expires.Sub(h.Issued); d > v.maxTTL {
		return nil, fmt.Errorf("%w: payload: valid for %v, longer than %v", ErrMalformed, d, v.maxTTL)
	}
	now := v.now()
	if !now.Before(h.Expires) {
		return nil, fmt.Errorf("%w: %s seq %d expired at %s", ErrExpired, h.Kind, h.Seq, h.Expires.Format(time.RFC3339))
	}
	if h.Issued.After(now.Add(v.skew)) {
		return nil, fmt.Errorf("%w: %s seq %d issued at %s, more than %v ahead of this clock", ErrNotYetValid, h.Kind, h.Seq, h.Issued.Format(time.RFC3339), v.skew)
	}
	return &Notice{Header: h, Body: p.Body, KeyID: env.KeyID}, nil
}

// accept checks n against the replay guard and records it. v.mu is held.
func (v *Verifier) accept(n *Notice) error {
	key := string(n.Kind) + "/" + n.Device
	if last, ok := v.last[key]; ok && n.Seq == last {
		return fmt.Errorf("%w: %s seq %d", ErrRepeated, n.Kind, n.Seq)
	} else if ok && n.Seq < last {
		return fmt.Errorf("%w: %s seq %d, already accepted seq %d", ErrReplayed, n.Kind, n.Seq, last)
	}
	prev, had := v.last[key]
	v.last[key] = n.Seq
	if err := v.save(); err != nil {
		if had {
			v.last[key] = prev
		} else {
			delete(v.last, key)
		}
		return fmt.Errorf("accept %s seq %d: %w", n.Kind, n.Seq, err)
	}
	return nil
}

// save writes the replay guard with pkg/durable (temp file, fsync, rename,
// fsync of the folder), so a power cut leaves the old or the new guard,
// never none.
func (v *Verifier) save() error {
	if v.path == "" {
		return nil
	}
	b, err := json.Marshal(guardFile{Version: guardVersion, Last: v.last})
	if err != nil {
		return fmt.Errorf("save replay guard: %w", err)
	}
	if err := durable.WriteFile(v.path, b, 0o600); err != nil {
		return fmt.Errorf("save replay guard: %w", err)
	}
	return nil
}

// count adds err's reason to the stats. v.mu is held.
func (v *Verifier) count(err error) {
	s := &v.stats
	switch {
	case err == nil:
		s.Accepted++
	case errors.Is(err, ErrMalformed):
		s.Malformed++
	case errors.Is(err, ErrUnknownKey):
		s.UnknownKey++
	case errors.Is(err, ErrBadSignature):
		s.BadSignature++
	case errors.Is(err, ErrWrongKind):
		s.WrongKind++
	case errors.Is(err, ErrWrongDevice):
		s.WrongDevice++
	case errors.Is(err, ErrExpired):
		s.Expired++
	case errors.Is(err, ErrNotYetValid):
		s.NotYetValid++
	case errors.Is(err, ErrRepeated):
		s.Repeated++
	case errors.Is(err, ErrReplayed):
		s.Replayed++
	default:
		s.Other++
	}
}

// strictUnmarshal decodes one JSON value into v, refusing unknown fields
// and trailing data.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		return fmt.Errorf("%d bytes of trailing data after the JSON value", len(rest))
	}
	return nil
}
