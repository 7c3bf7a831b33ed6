// Package store keeps the fleet server's state: devices and their
// credentials, admin and enrolment tokens, advisories, the package sets
// devices report, and where every device stands with every advisory.
//
// Threat model. The store holds the secrets that let a device post reports
// and an admin read or change the fleet, so it never holds them in the
// clear: device credentials, admin tokens and enrolment tokens are stored as
// their SHA-256 (Hash). They are 256-bit random values made by the server,
// so a fast hash is enough: there is nothing to guess that a slow KDF would
// protect, and a lookup by hash stays an index probe. Someone who reads the
// database learns no usable secret. Enrolment tokens are consumed inside
// the same statement that checks them, so a counted token cannot be
// over-spent by concurrent enrolments, and an expired one never works.
//
// Data model. A device points at its package set, which is stored once per
// distinct (release, inventory digest), so many devices of one image share
// one row. The release is the device's own os-release (Release), not
// something guessed from the packages: the same packages under AlmaLinux 9
// and under RHEL 9 are two sets, matched against different advisories.
// Applicability is computed once per distinct set, by a MatchFunc the
// caller gives (the server backs it with pkg/applicability), and kept as
// findings (which installed package is older or not than which fix) and
// one affected-or-patched row per (set, advisory); the SQL stores keep each
// of the two once per distinct content, shared by the sets that give it
// (sqlstore's finding and status sets). A device's status for
// an advisory is its set's, except where the device's own history
// overrides it: failed (its last attempt failed and it is still affected)
// or pending-reboot (the fix is installed and a reboot is still pending).
// Only those overrides are stored per device. Both layers are updated
// incrementally: a report changes only its device's set pointer and
// overrides (and matches a set never seen before); an advisory's arrival
// re-matches only the sets in use, for that advisory, and touches no
// device row. The CVE question walks the cve index, the per-set rows by
// advisory, the devices by set and the findings: index probes, not a scan.
// Every report is applied with its id, atomically, so a retried report is
// a no-op and a failed one leaves nothing; implementations may write
// reports that arrive together in one transaction (group commit), and
// answer each only once that transaction committed.
//
// Two implementations exist, store/sqlite (the default, embedded) and
// store/postgres (at scale); both run the same conformance suite,
// store/storetest.
package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Sentinel errors. Implementations wrap them, so test with errors.Is.
var (
	ErrNotFound     = errors.New("store: not found")
	ErrTokenInvalid = errors.New("store: enrolment token unknown")
	ErrTokenExpired = errors.New("store: enrolment token expired")
	ErrTokenUsedUp  = errors.New("store: enrolment token used up")
	ErrTokenRevoked = errors.New("store: enrolment token revoked")
	ErrNameTaken    = errors.New("store: device name taken")
	ErrBadReport    = errors.New("store: bad report")
	// ErrStorageFull: the database's disk (or its quota) is full, so a
	// write was refused and nothing of it was stored. The caller may try
	// again once space returns.
	ErrStorageFull = errors.New("store: storage full")
)

// Hash is the SHA-256 of a secret: what the store keeps of credentials and
// tokens.
type Hash [sha256.Size]byte

// HashSecret returns the Hash of a secret as the client sends it.
func HashSecret(secret string) Hash { return sha256.Sum256([]byte(secret)) }

// Token is an admin API token.
type Token struct {
	ID      string
	Name    string
	Role    protocol.Role
	Hash    Hash
	Created time.Time
	// Revoked is zero while the token is valid.
	Revoked time.Time
}

// EnrollToken is an enrolment token.
type EnrollToken struct {
	ID      string
	Hash    Hash
	Labels  map[string]string
	Expires time.Time
	// UsesLeft is how many more devices may enrol with it.
	UsesLeft int
	Created  time.Time
	// Revoked is zero unless the token was revoked (its UsesLeft is then
	// 0).
	Revoked time.Time
}

// Device is an enrolled device.
type Device struct {
	ID             string
	Name           string
	Labels         map[string]string
	CredentialHash Hash
	Enrolled       time.Time
	// LastSeen is zero until the first report.
	LastSeen time.Time
	Info     protocol.DeviceInfo
	// Digest is the inventory digest of the device's package set; empty
	// until a full inventory arrived.
	Digest string
}

// NewDevice is what Enroll needs to create a device.
type NewDevice struct {
	ID             string
	Name           string
	CredentialHash Hash
	Info           protocol.DeviceInfo
	Enrolled       time.Time
}

// Finding is how one advisory relates to one installed package of a set:
// the package is one the advisory fixes, and it is either older than the
// fix (Affected) or at or past it.
type Finding struct {
	Advisory  string
	Package   string
	Arch      string
	Installed string // EVR, "epoch:version-release"
	Fixed     string // EVR of the fix
	Affected  bool
}

// MatchFunc computes the findings for a package set of a release (see
// Release; "" when the devices on the set did not say). For a report it is
// asked about every advisory the server knows; for PutAdvisories about
// every variant (Variant) of the ids being put, as they stand once put:
// the store keeps of a changed id's findings only what match gives, so a
// MatchFunc over the put advisories alone would drop what the id's other
// releases find. It is called once per distinct package set
// (or a few times, when reports bringing one new set arrive together: a
// report's new set is matched in its caller's goroutine, before the store
// knows whether another report is storing it).
//
// It must return a finding for every installed package an advisory names,
// fixed ones included (Affected false): those make the device "patched"
// rather than "not affected". pkg/applicability's Index.Match reports only
// exposures, so the server's MatchFunc adds the packages at or past the
// fix.
type MatchFunc func(release string, pkgs []protocol.Package) ([]Finding, error)

// Release is the release a device's package set is matched against, from
// the os-release its report carries: the ID and the major version of
// VERSION_ID, "almalinux:9". It is "" when the device gave no ID. Package
// sets are keyed by (Release, digest), so identical packages on two
// distributions are matched apart.
func Release(info protocol.DeviceInfo) string {
	id := strings.ToLower(strings.TrimSpace(info.OSID))
	if id == "" {
		return ""
	}
	major, _, _ := strings.Cut(strings.TrimSpace(info.OSVersionID), ".")
	return id + ":" + major
}

// Tokens keeps admin tokens.
type Tokens interface {
	CreateToken(ctx context.Context, t Token) error
	// TokenByHash returns a token that is not revoked, or ErrNotFound.
	TokenByHash(ctx context.Context, h Hash) (Token, error)
	ListTokens(ctx context.Context) ([]Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time) error
}

// Enrollment turns enrolment tokens into devices.
type Enrollment interface {
	CreateEnrollToken(ctx context.Context, t EnrollToken) error
	// Enroll spends one use of the enrolment token whose hash is given and
	// creates the device with the token's labels, in one transaction. It
	// fails with ErrTokenInvalid, ErrTokenRevoked, ErrTokenExpired, ErrTokenUsedUp or
	// ErrNameTaken and then changes nothing.
	Enroll(ctx context.Context, token Hash, d NewDevice) (Device, error)
	// DeviceByCredential returns the device holding the credential, or
	// ErrNotFound.
	DeviceByCredential(ctx context.Context, h Hash) (Device, error)
}

// Reports applies device reports.
type Reports interface {
	// Report applies r from device deviceID atomically, and returns once
	// it is committed. A report id
	// already applied for that device is a no-op answered Duplicate. match
	// is called only when the report brings a package set never seen
	// before. Malformed reports fail with ErrBadReport.
	Report(ctx context.Context, deviceID string, r *protocol.Report, now time.Time, match MatchFunc) (protocol.ReportResponse, error)
}

// Advisories stores advisories and brings statuses up to date with them.
type Advisories interface {
	// PutAdvisories takes in advisories, each as its id's variant for
	// its ecosystem (Variants.With: new, or superseding the stored one).
	// For the ids that changed, match is run once per package set in use
	// and the sets' applicability, and so every device's status, is
	// updated, in one transaction. It returns how many ids changed.
	PutAdvisories(ctx context.Context, advs []advisory.Advisory, now time.Time, match MatchFunc) (changed int, err error)
}

// Queries answers the admin's questions.
type Queries interface {
	CVE(ctx context.Context, cve string) (protocol.CVEResponse, error)
	// CVEPage is one page of CVE's answer: the devices named after after
	// (all when after is ""), at most limit of them, with Next set when
	// the page is full.
	CVEPage(ctx context.Context, cve, after string, limit int) (protocol.CVEResponse, error)
	Device(ctx context.Context, name string) (protocol.Device, error)
	Devices(ctx context.Context, f DeviceFilter) ([]protocol.DeviceSummary, error)
	Advisory(ctx context.Context, id string) (protocol.AdvisoryStatus, error)
	// Advisories lists advisories at least as severe as min, most severe
	// and newest first, with their fleet counts.
	Advisories(ctx context.Context, min advisory.Severity) ([]protocol.AdvisorySummary, error)
	Summary(ctx context.Context) (protocol.Summary, error)
	// DevicePlan returns the advisories affecting the device with id
	// deviceID now (status affected or failed), most severe first and then
	// by id, each with the device's installed packages older than its fix;
	// ErrNotFound for an unknown device. It is the body of the device's
	// signed plan.
	DevicePlan(ctx context.Context, deviceID string) ([]protocol.PlanAdvisory, error)
}

// DeviceFilter narrows Devices. Zero fields do not filter.
type DeviceFilter struct {
	// Labels must all match.
	Labels map[string]string
	// ExposedTo keeps devices exposed to the CVE.
	ExposedTo string
}

// Lifecycle takes back what enrolment gave: a device's credential, a
// device, an enrolment token.
type Lifecycle interface {
	// RevokeDevice revokes the device called name at at: its credential
	// hash is replaced by one of no known secret, in the same transaction,
	// so DeviceByCredential no longer finds it by its credential; it stays
	// listed, with its history. Revoking a revoked device changes nothing
	// and returns its first revocation time. ErrNotFound for an unknown
	// name.
	RevokeDevice(ctx context.Context, name string, at time.Time) (deviceID string, revoked time.Time, err error)
	// DeleteDevice deletes the device called name and every row kept
	// about it (labels, status overrides, report ids, cycles); its name
	// may then be enrolled again, as a new device. Its package set stays
	// for other devices (or, unused, is matched no more). ErrNotFound for
	// an unknown name.
	DeleteDevice(ctx context.Context, name string) (deviceID string, err error)
	// ListEnrollTokens lists every enrolment token, used up, expired and
	// revoked ones included, oldest first. Hash is left zero.
	ListEnrollTokens(ctx context.Context) ([]EnrollToken, error)
	// RevokeEnrollToken revokes the enrolment token with the given id at
	// at: no device may enrol with it from then on. ErrNotFound for an
	// unknown or already revoked id.
	RevokeEnrollToken(ctx context.Context, id string, at time.Time) error
}

// Store is everything the server keeps.
type Store interface {
	Tokens
	Enrollment
	Reports
	Advisories
	Queries
	Lifecycle
	FleetOps
	Deliveries
	Close() error
}
