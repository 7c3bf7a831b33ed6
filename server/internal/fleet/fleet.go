// Package fleet is the fleet server's service layer: it ties the store to
// advisory matching, so that the HTTP API (server/internal/api) only decodes
// requests, checks who sent them, and calls one method here.
//
// Threat model. This package mints every secret the server hands out: admin
// tokens, enrolment tokens and device credentials are 256 bits from
// crypto/rand, returned to the caller once and stored only as their SHA-256
// (store.HashSecret). Who may call which method is decided by the API layer;
// Service trusts its caller and never logs a secret.
package fleet

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// ErrBadRequest marks a request the service refuses for what it says, not
// for who sent it or for a fault of the server.
var ErrBadRequest = errors.New("fleet: bad request")

// DefaultEnrollTokenTTL is how long an enrolment token works when its
// creator gives no expiry.
const DefaultEnrollTokenTTL = 24 * time.Hour

// AdvisoryLoader reads back every stored variant of every advisory
// (store.Variant), with the digest it was stored with. Both store
// implementations (sqlstore) have it; the service rebuilds its matching
// index from it at start.
type AdvisoryLoader interface {
	LoadAdvisories(ctx context.Context) ([]store.Variant, error)
}

// Options configure a Service.
type Options struct {
	// NoticeKey is the Ed25519 public key enrolment hands to devices.
	NoticeKey []byte
	// BrokerURL is the MQTT broker devices are told to use; empty for none.
	BrokerURL string
	// Signer signs plans, commands and feed notices with the server's
	// notice key (the private half of NoticeKey); nil means the server
	// signs nothing: Plan and Command fail with ErrNoSigner.
	Signer *notice.Signer
	// Publisher publishes feed notices and commands over MQTT; nil means
	// no broker: imports publish nothing and Command fails with
	// ErrNoBroker.
	Publisher Publisher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives the service's logs; nil discards them.
	Log *slog.Logger
	// Observer is told how long reports, imports and publications took
	// (observe.go); nil tells nobody.
	Observer Observer
	// Replicas is told when an import changed advisories, for the other
	// replicas on the same store (replica.go); nil for a lone server.
	Replicas Replicas
	// Webhooks are notified of exposures, rollbacks, silent devices and
	// paused rollouts (notify.go); none when empty.
	Webhooks []Webhook
	// WebhookOptions tune their delivery.
	WebhookOptions WebhookOptions
}

// Service is the fleet's operations over a store.
type Service struct {
	st   store.Store
	opts Options
	log  *slog.Logger

	// mu guards advs and m. Import holds it for writing while it stores
	// advisories and swaps the index; reports hold it for reading while
	// they are matched and stored, so a report never misses an advisory
	// whose import already returned.
	mu sync.RWMutex
	// advs holds every advisory's variants by id, one per ecosystem, as
	// the store keeps them (store.Variants.With decides for both).
	advs map[string]store.Variants
	// m indexes every variant of advs.
	m *matcher
	// gc caches the groups for the plans' gate (groups.go).
	gc groupCache
	// notes sends webhook notifications (notify.go); nil with no
	// webhook.
	notes *notifier
}

// New returns a Service over st. When st is an AdvisoryLoader, the advisories
// already stored are loaded into the matching index.
func New(ctx context.Context, st store.Store, opts Options) (*Service, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{st: st, opts: opts, log: log.With("component", "fleet"), advs: map[string]store.Variants{}}
	if len(opts.Webhooks) > 0 {
		s.notes = newNotifier(opts.Webhooks, opts.WebhookOptions)
	}
	if l, ok := st.(AdvisoryLoader); ok {
		vs, err := l.LoadAdvisories(ctx)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			s.advs[v.ID], _ = s.advs[v.ID].With(v)
		}
		s.log.Info("advisories loaded", "count", len(s.advs), "variants", len(vs))
	}
	s.m = newMatcher(variantsOf(s.advs, nil))
	return s, nil
}

// variantsOf returns the variants of the ids in advs (of every id when ids
// is nil), by id and then ecosystem, as the matcher takes them.
func variantsOf(advs map[string]store.Variants, ids map[string]bool) []advisory.Advisory {
	var keys []string
	if ids == nil {
		keys = slices.Sorted(maps.Keys(advs))
	} else {
		keys = slices.Sorted(maps.Keys(ids))
	}
	var out []advisory.Advisory
	for _, id := range keys {
		for _, v := range advs[id] {
			out = append(out, v.Advisory)
		}
	}
	return out
}

// Store returns the store, for the queries the API answers directly.
func (s *Service) Store() store.Store { return s.st }

// Import stores advisories, brings the status of every device they touch
// up to date and adds them to the index later reports are matched against.
//
// Each advisory is its id's variant for its ecosystem, taken in as the
// store takes it (store.Variants.With): an import of one release's file
// never takes another release's entries away, and unchanged data changes
// nothing. The store matches the package sets in use against the changed
// ids, so it is given a matcher over every variant of the imported ids as
// they stand after the import, not over the imported advisories alone: an
// AlmaLinux 9 file's ALSA-2024:4568 must not wipe what its AlmaLinux 8
// variant finds.
func (s *Service) Import(ctx context.Context, advs []advisory.Advisory) (resp protocol.ImportResponse, err error) {
	start := time.Now()
	defer func() {
		s.observe(Event{Op: OpImport, Took: time.Since(start), Err: err, Read: len(advs), Changed: resp.Changed})
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	next := maps.Clone(s.advs)
	imported := map[string]bool{}
	changedIDs := map[string]bool{}
	for i := range advs {
		if advs[i].ID == "" {
			return protocol.ImportResponse{}, fmt.Errorf("%w: advisory %d of %d: empty id", ErrBadRequest, i+1, len(advs))
		}
		v, _, err := store.NewVariant(advs[i])
		if err != nil {
			return protocol.ImportResponse{}, fmt.Errorf("import: %w", err)
		}
		imported[v.ID] = true
		if vs, ok := next[v.ID].With(v); ok {
			next[v.ID] = vs
			changedIDs[v.ID] = true
		}
	}
	// The devices exposed to the changed advisories a webhook would be
	// told of, before: the exposure event names those exposed after and
	// not before.
	var exposedBefore map[string]map[string]bool
	if s.notes != nil && s.notes.wants(protocol.WebhookExposure) {
		least := s.notes.minSeverity()
		var ids []string
		for id := range changedIDs {
			if slices.ContainsFunc(next[id], func(v store.Variant) bool { return v.Severity >= least }) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		exposedBefore = s.exposedTo(ctx, ids, least)
	}
	// Every imported id, not only those changed here: the store decides
	// what changed against what it holds, which another server sharing
	// its database may have added to.
	m := newMatcher(variantsOf(next, imported))
	changed, err := s.st.PutAdvisories(ctx, advs, s.opts.Now().UTC(), m.match)
	if err != nil {
		return protocol.ImportResponse{}, fmt.Errorf("import: %w", err)
	}
	s.publishFeed(changed, slices.Sorted(maps.Keys(changedIDs)))
	s.announceImport(ctx, start, changed)
	s.advs = next
	if len(changedIDs) > 0 {
		s.m = newMatcher(variantsOf(s.advs, nil))
	}
	if changed > 0 {
		s.notifyImport(ctx, exposedBefore, "exposure:import:"+newID()+newID())
	}
	s.log.Info("advisories imported", "read", len(advs), "changed", changed)
	return protocol.ImportResponse{Advisories: len(advs), Changed: changed}, nil
}

// Report applies a device's report.
func (s *Service) Report(ctx context.Context, deviceID string, r *protocol.Report) (resp protocol.ReportResponse, err error) {
	return s.ReportNamed(ctx, deviceID, "", r)
}

// ReportNamed is Report from the device called name, the name its
// notifications carry.
func (s *Service) ReportNamed(ctx context.Context, deviceID, name string, r *protocol.Report) (resp protocol.ReportResponse, err error) {
	start := time.Now()
	defer func() {
		s.observe(Event{Op: OpReport, Took: time.Since(start), Err: err, Duplicate: resp.Duplicate})
	}()
	s.mu.RLock()
	defer s.mu.RUnlock()
	before := s.exposedBefore(ctx, deviceID, r)
	resp, err = s.st.Report(ctx, deviceID, r, s.opts.Now().UTC(), s.m.match)
	if err != nil {
		if errors.Is(err, store.ErrBadReport) {
			return resp, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		return resp, fmt.Errorf("report: %w", err)
	}
	if !resp.Duplicate {
		s.notifyReport(ctx, deviceID, name, r, before)
	}
	return resp, nil
}

// Enroll spends an enrolment token and makes the device with a fresh
// credential.
func (s *Service) Enroll(ctx context.Context, req protocol.EnrollRequest) (protocol.EnrollResponse, error) {
	name := req.Name
	if name == "" {
		name = req.Device.Hostname
	}
	if name == "" {
		return protocol.EnrollResponse{}, fmt.Errorf("%w: name: neither a name nor a hostname given", ErrBadRequest)
	}
	cred := newSecret("rfd_")
	d, err := s.st.Enroll(ctx, store.HashSecret(req.Token), store.NewDevice{
		ID: newID(), Name: name, CredentialHash: store.HashSecret(cred),
		Info: req.Device, Enrolled: s.opts.Now().UTC(),
	})
	if err != nil {
		return protocol.EnrollResponse{}, fmt.Errorf("enroll %s: %w", name, err)
	}
	s.log.Info("device enrolled", "device", d.Name, "id", d.ID)
	return protocol.EnrollResponse{DeviceID: d.ID, Name: d.Name, Credential: cred,
		NoticeKey: s.opts.NoticeKey, BrokerURL: s.opts.BrokerURL}, nil
}

// CreateEnrollToken makes an enrolment token.
func (s *Service) CreateEnrollToken(ctx context.Context, req protocol.EnrollTokenCreateRequest) (protocol.EnrollTokenCreateResponse, error) {
	now := s.opts.Now().UTC()
	if req.Uses < 0 {
		return protocol.EnrollTokenCreateResponse{}, fmt.Errorf("%w: uses: %d is negative", ErrBadRequest, req.Uses)
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	if req.Expires.IsZero() {
		req.Expires = now.Add(DefaultEnrollTokenTTL)
	}
	secret := newSecret("rfe_")
	t := store.EnrollToken{ID: newID(), Hash: store.HashSecret(secret), Labels: req.Labels,
		Expires: req.Expires.UTC(), UsesLeft: req.Uses, Created: now}
	if err := s.st.CreateEnrollToken(ctx, t); err != nil {
		return protocol.EnrollTokenCreateResponse{}, err
	}
	s.log.Info("enrolment token created", "id", t.ID, "uses", t.UsesLeft, "expires", t.Expires)
	return protocol.EnrollTokenCreateResponse{ID: t.ID, Token: secret, Expires: t.Expires, Uses: t.UsesLeft}, nil
}

// CreateToken makes an admin token.
func (s *Service) CreateToken(ctx context.Context, req protocol.TokenCreateRequest) (protocol.TokenCreateResponse, error) {
	switch req.Role {
	case protocol.RoleReadOnly, protocol.RoleOperator, protocol.RoleAdmin:
	default:
		return protocol.TokenCreateResponse{}, fmt.Errorf("%w: role: %q is not read-only, operator or admin", ErrBadRequest, req.Role)
	}
	if req.Name == "" {
		return protocol.TokenCreateResponse{}, fmt.Errorf("%w: name: empty", ErrBadRequest)
	}
	secret := newSecret("rfa_")
	t := store.Token{ID: newID(), Name: req.Name, Role: req.Role, Hash: store.HashSecret(secret), Created: s.opts.Now().UTC()}
	if err := s.st.CreateToken(ctx, t); err != nil {
		return protocol.TokenCreateResponse{}, err
	}
	s.log.Info("admin token created", "id", t.ID, "name", t.Name, "role", t.Role)
	return protocol.TokenCreateResponse{ID: t.ID, Token: secret}, nil
}

// newSecret returns 256 random bits, URL-safe, behind a prefix that tells
// a leaked secret's kind at a glance.
func newSecret(prefix string) string {
	b := make([]byte, 32)
	rand.Read(b) // never fails; see crypto/rand.Read
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
