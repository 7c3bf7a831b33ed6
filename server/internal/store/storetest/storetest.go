// Package storetest is the conformance suite every store.Store
// implementation runs: the same stories, against SQLite and PostgreSQL, so
// the two cannot drift apart. Each story opens a fresh database.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Backend is what the suite needs of an implementation.
type Backend struct {
	// New creates an empty database for one test and returns its address
	// (a file path, a URL); the database is removed when the test ends.
	New func(t testing.TB) string
	// Open opens the store at addr, applying its migrations.
	Open func(ctx context.Context, addr string) (store.Store, error)
}

// Run runs the suite.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"MigrationsApplyTwice", testMigrations},
		{"AdminTokens", testTokens},
		{"EnrollTokenRules", testEnrollTokenRules},
		{"EnrollConcurrentlyNeverOverspends", testEnrollConcurrent},
		{"DeviceByCredential", testDeviceByCredential},
		{"ReportIsIdempotent", testReportIdempotent},
		{"CycleKeptOnceWhateverReportCarriesIt", testCycleKeptOnce},
		{"PackageSetsAreShared", testSetDedup},
		{"PackageSetsAreKeyedByTheDevicesRelease", testSetRelease},
		{"DeltaReports", testDelta},
		{"BadReportsChangeNothing", testBadReport},
		{"FailedMatchRollsBackTheReport", testAtomicity},
		{"StatusTransitions", testStatusTransitions},
		{"NewAdvisoryUpdatesStatuses", testNewAdvisory},
		{"StatusSetsAreSharedAndPartWhenAnAdvisorySaysSo", testStatusSetsShared},
		{"CVEQuery", testCVE},
		{"DeviceQueries", testDeviceQueries},
		{"AdvisoryListAndSummary", testSummary},
		{"ConcurrentWriters", testConcurrentWriters},
		{"DevicePlan", testDevicePlan},
		{"AdvisoryVariantsPerEcosystem", testAdvisoryVariants},
		{"LifecycleRevokeAndDelete", testLifecycle},
		{"LabelsAndGroups", testLabelsAndGroups},
		{"ApprovalsAndAudit", testApprovalsAndAudit},
		{"FleetLockSlots", testFleetLockSlots},
		{"Rollouts", testRollouts},
		{"KnownCVEAndAdvisoryVariants", testAdvisoryDetail},
		{"AdvisoryDescriptions", testAdvisoryDescriptions},
		{"WebhookDeliveries", testDeliveries},
		{"SilentDevices", testSilentDevices},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, b) })
	}
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func open(t testing.TB, b Backend) store.Store {
	t.Helper()
	s, err := b.Open(t.Context(), b.New(t))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fleet is a store with the test advisories and helpers to enrol and
// report.
type fleet struct {
	t     *testing.T
	s     store.Store
	match store.MatchFunc
	ubi   []protocol.Package
	n     int
}

func newFleet(t *testing.T, b Backend) *fleet {
	t.Helper()
	s := open(t, b)
	advs := Advisories()
	if _, err := s.PutAdvisories(t.Context(), advs, t0, Match(advs)); err != nil {
		t.Fatalf("PutAdvisories: %v", err)
	}
	ubi, err := UBIInventory()
	if err != nil {
		t.Fatal(err)
	}
	return &fleet{t: t, s: s, match: Match(advs), ubi: ubi}
}

// enroll enrols a device called name with a fresh single-use token.
func (f *fleet) enroll(name string) store.Device {
	f.t.Helper()
	f.n++
	tok := fmt.Sprintf("enroll-%s-%d", name, f.n)
	err := f.s.CreateEnrollToken(f.t.Context(), store.EnrollToken{ID: "et-" + tok, Hash: store.HashSecret(tok),
		Labels: map[string]string{"site": "lab"}, Expires: t0.Add(time.Hour), UsesLeft: 1, Created: t0})
	if err != nil {
		f.t.Fatalf("CreateEnrollToken: %v", err)
	}
	d, err := f.s.Enroll(f.t.Context(), store.HashSecret(tok), store.NewDevice{ID: "dev-" + name, Name: name,
		CredentialHash: store.HashSecret("cred-" + name), Enrolled: t0,
		Info: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.0", Arch: "aarch64"}})
	if err != nil {
		f.t.Fatalf("Enroll %s: %v", name, err)
	}
	return d
}

func full(id string, pkgs []protocol.Package) *protocol.Report {
	return &protocol.Report{ID: id, Time: t0, Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.0", Arch: "aarch64", Kernel: "5.14.0"},
		Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}
}

func delta(id string, after []protocol.Package, added, removed []protocol.Package) *protocol.Report {
	r := full(id, nil)
	r.Inventory = protocol.Inventory{Kind: protocol.InventoryDelta, Added: added, Removed: removed, Digest: protocol.InventoryDigest(after)}
	return r
}

func (f *fleet) report(dev string, r *protocol.Report) protocol.ReportResponse {
	f.t.Helper()
	resp, err := f.s.Report(f.t.Context(), dev, r, t0.Add(time.Minute), f.match)
	if err != nil {
		f.t.Fatalf("Report %s from %s: %v", r.ID, dev, err)
	}
	return resp
}

// statuses returns the device's advisory statuses.
func (f *fleet) statuses(name string) map[string]protocol.Status {
	f.t.Helper()
	d, err := f.s.Device(f.t.Context(), name)
	if err != nil {
		f.t.Fatalf("Device %s: %v", name, err)
	}
	m := map[string]protocol.Status{}
	for _, a := range d.Advisories {
		m[a.Advisory] = a.Status
	}
	return m
}

// upgrade returns pkgs with the named packages at the given version and
// release, and the removed and added packages.
func upgrade(pkgs []protocol.Package, epoch, version, release string, names ...string) (after, added, removed []protocol.Package) {
	for _, p := range pkgs {
		if slices.Contains(names, p.Name) {
			removed = append(removed, p)
			p.Epoch, p.Version, p.Release = epoch, version, release
			added = append(added, p)
		}
		after = append(after, p)
	}
	return after, added, removed
}

func testMigrations(t *testing.T, b Backend) {
	addr := b.New(t)
	s, err := b.Open(t.Context(), addr)
	if err != nil {
		t.Fatalf("first open: %v", err)
	}
	if err := s.CreateToken(t.Context(), store.Token{ID: "t1", Name: "ci", Role: protocol.RoleAdmin, Hash: store.HashSecret("x"), Created: t0}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = b.Open(t.Context(), addr)
	if err != nil {
		t.Fatalf("second open, migrations already applied: %v", err)
	}
	defer s.Close()
	if _, err := s.TokenByHash(t.Context(), store.HashSecret("x")); err != nil {
		t.Errorf("token written before reopening: %v", err)
	}
}
