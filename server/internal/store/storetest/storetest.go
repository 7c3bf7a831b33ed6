// Package storetest is the conformance suite every store.Store
// implementation runs: the same stories, against SQLite and PostgreSQL, so
// the two cannot drift apart. Each story opens a fresh database.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
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

func testTokens(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	for i, role := range []protocol.Role{protocol.RoleReadOnly, protocol.RoleOperator, protocol.RoleAdmin} {
		err := s.CreateToken(ctx, store.Token{ID: fmt.Sprint("tok", i), Name: string(role), Role: role, Hash: store.HashSecret(string(role)), Created: t0.Add(time.Duration(i))})
		if err != nil {
			t.Fatal(err)
		}
	}
	tok, err := s.TokenByHash(ctx, store.HashSecret("operator"))
	if err != nil || tok.Role != protocol.RoleOperator || tok.ID != "tok1" {
		t.Errorf("TokenByHash(operator) = %+v, %v", tok, err)
	}
	if _, err := s.TokenByHash(ctx, store.HashSecret("guess")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByHash(unknown) error = %v, want ErrNotFound", err)
	}
	if err := s.CreateToken(ctx, store.Token{ID: "dup", Role: protocol.RoleAdmin, Hash: store.HashSecret("admin")}); err == nil {
		t.Errorf("a second token with the same hash was accepted")
	}
	if err := s.RevokeToken(ctx, "tok2", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenByHash(ctx, store.HashSecret("admin")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoked token still works: %v", err)
	}
	if err := s.RevokeToken(ctx, "tok2", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking twice: %v, want ErrNotFound", err)
	}
	ts, err := s.ListTokens(ctx)
	if err != nil || len(ts) != 3 || ts[2].Revoked.IsZero() || !ts[0].Revoked.IsZero() {
		t.Errorf("ListTokens = %+v, %v; want 3, the last revoked", ts, err)
	}
}

func testEnrollTokenRules(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	mk := func(secret string, uses int, expires time.Time) {
		t.Helper()
		err := s.CreateEnrollToken(ctx, store.EnrollToken{ID: "id-" + secret, Hash: store.HashSecret(secret),
			Labels: map[string]string{"site": "barn", "image": "pi"}, Expires: expires, UsesLeft: uses, Created: t0})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("once", 1, t0.Add(time.Hour))
	mk("thrice", 3, t0.Add(time.Hour))
	mk("stale", 5, t0.Add(-time.Second))
	n := 0
	enroll := func(secret, name string) error {
		n++
		_, err := s.Enroll(ctx, store.HashSecret(secret), store.NewDevice{ID: fmt.Sprint("d", n), Name: name,
			CredentialHash: store.HashSecret(fmt.Sprint("cred", n)), Enrolled: t0})
		return err
	}
	steps := []struct {
		name, secret, device string
		want                 error
	}{
		{"single-use token works once", "once", "a", nil},
		{"single-use token refused after", "once", "b", store.ErrTokenUsedUp},
		{"counted token 1/3", "thrice", "c", nil},
		{"name taken does not spend a use", "thrice", "c", store.ErrNameTaken},
		{"counted token 2/3", "thrice", "d", nil},
		{"counted token 3/3", "thrice", "e", nil},
		{"counted token used up", "thrice", "f", store.ErrTokenUsedUp},
		{"expired token", "stale", "g", store.ErrTokenExpired},
		{"unknown token", "forged", "h", store.ErrTokenInvalid},
	}
	for _, st := range steps {
		err := enroll(st.secret, st.device)
		if !errors.Is(err, st.want) || (st.want == nil) != (err == nil) {
			t.Errorf("%s: Enroll error = %v, want %v", st.name, err, st.want)
		}
	}
	ds, err := s.Devices(ctx, store.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
		if d.Labels["site"] != "barn" || d.Labels["image"] != "pi" {
			t.Errorf("device %s labels = %v, want the token's", d.Name, d.Labels)
		}
	}
	if want := []string{"a", "c", "d", "e"}; !slices.Equal(names, want) {
		t.Errorf("devices = %v, want %v", names, want)
	}
	got, err := s.Devices(ctx, store.DeviceFilter{Labels: map[string]string{"site": "barn"}})
	if err != nil || len(got) != 4 {
		t.Errorf("Devices(site=barn) = %d, %v; want 4", len(got), err)
	}
	got, err = s.Devices(ctx, store.DeviceFilter{Labels: map[string]string{"site": "kitchen"}})
	if err != nil || len(got) != 0 {
		t.Errorf("Devices(site=kitchen) = %d, %v; want 0", len(got), err)
	}
}

func testEnrollConcurrent(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	if err := s.CreateEnrollToken(ctx, store.EnrollToken{ID: "e", Hash: store.HashSecret("five"), Expires: t0.Add(time.Hour), UsesLeft: 5, Created: t0}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.Enroll(ctx, store.HashSecret("five"), store.NewDevice{ID: fmt.Sprint("d", i), Name: fmt.Sprint("n", i),
				CredentialHash: store.HashSecret(fmt.Sprint("c", i)), Enrolled: t0})
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrTokenUsedUp):
			t.Errorf("enrolment %d: %v, want success or ErrTokenUsedUp", i, err)
		}
	}
	if ok != 5 {
		t.Errorf("%d concurrent enrolments succeeded with a 5-use token, want 5", ok)
	}
}

func testDeviceByCredential(t *testing.T, b Backend) {
	f := newFleet(t, b)
	d := f.enroll("pi-kitchen")
	got, err := f.s.DeviceByCredential(t.Context(), store.HashSecret("cred-pi-kitchen"))
	if err != nil || got.ID != d.ID || got.Name != "pi-kitchen" || got.Labels["site"] != "lab" {
		t.Errorf("DeviceByCredential = %+v, %v", got, err)
	}
	if _, err := f.s.DeviceByCredential(t.Context(), store.HashSecret("cred-pi-garage")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown credential: %v, want ErrNotFound", err)
	}
	f.report(d.ID, full("r1", f.ubi))
	got, _ = f.s.DeviceByCredential(t.Context(), store.HashSecret("cred-pi-kitchen"))
	if got.Digest != protocol.InventoryDigest(f.ubi) || got.Info.Kernel != "5.14.0" {
		t.Errorf("after a report, device = %+v; want its digest and kernel", got)
	}
}

func testReportIdempotent(t *testing.T, b Backend) {
	f := newFleet(t, b)
	d := f.enroll("pi")
	if resp := f.report(d.ID, delta("r0", f.ubi, f.ubi, nil)); !resp.NeedFullInventory {
		t.Errorf("a delta before any full inventory: %+v, want NeedFullInventory", resp)
	}
	if resp := f.report(d.ID, full("r1", f.ubi)); resp.NeedFullInventory || resp.Duplicate {
		t.Errorf("first full report: %+v", resp)
	}
	after, added, removed := upgrade(f.ubi, "1", "3.0.7", "16.el9_2", "openssl", "openssl-libs")
	cycle := delta("r2", after, added, removed)
	cycle.Cycles = []protocol.CycleResult{{Advisories: []string{"ALSA-2023:3722"}, Outcome: protocol.OutcomeApplied}}
	f.report(d.ID, cycle)
	// The same report again, and an older one, change nothing.
	if resp := f.report(d.ID, cycle); !resp.Duplicate || resp.NeedFullInventory {
		t.Errorf("retried report: %+v, want Duplicate only", resp)
	}
	if resp := f.report(d.ID, full("r1", f.ubi)); !resp.Duplicate {
		t.Errorf("retried older report: %+v, want Duplicate", resp)
	}
	if st := f.statuses("pi")["ALSA-2023:3722"]; st != protocol.StatusPatched {
		t.Errorf("after retries, ALSA-2023:3722 is %q, want patched (the retries changed nothing)", st)
	}
	// Ids are per device: another device may use "r1".
	e := f.enroll("pi2")
	if resp := f.report(e.ID, full("r1", f.ubi)); resp.Duplicate {
		t.Errorf("another device's r1 was taken for a duplicate")
	}
}

func testSetDedup(t *testing.T, b Backend) {
	f := newFleet(t, b)
	a, c := f.enroll("a"), f.enroll("b")
	f.report(a.ID, full("r1", f.ubi))
	shuffled := slices.Clone(f.ubi)
	slices.Reverse(shuffled)
	f.report(c.ID, full("r1", shuffled))
	da, _ := f.s.DeviceByCredential(t.Context(), store.HashSecret("cred-a"))
	db, _ := f.s.DeviceByCredential(t.Context(), store.HashSecret("cred-b"))
	if da.Digest != db.Digest || da.Digest == "" {
		t.Fatalf("two devices of one image have digests %q and %q", da.Digest, db.Digest)
	}
	if sets := countSets(t, f.s); sets != 1 {
		t.Errorf("%d package sets stored for two devices of one image, want 1", sets)
	}
	// Both see the same statuses, computed once.
	if sa, sb := f.statuses("a"), f.statuses("b"); !maps.Equal(sa, sb) || len(sa) != 4 {
		t.Errorf("statuses differ or are not the 4 advisories: %v vs %v", sa, sb)
	}
}

// testSetRelease: the release a set is matched against is the os-release
// its devices report, not the release packages in it. The UBI 9 image holds
// redhat-release; on a device whose os-release says AlmaLinux it must be
// matched as AlmaLinux. (Before sets were keyed by release, both devices
// below shared one set, matched once, with no release at all.)
func testSetRelease(t *testing.T, b Backend) {
	f := newFleet(t, b)
	advs := Advisories()
	var mu sync.Mutex // guards asked
	asked := map[string]int{}
	// Only AlmaLinux 9 takes these AlmaLinux advisories, as the server's
	// matcher decides.
	almaOnly := func(advs []advisory.Advisory) store.MatchFunc {
		return func(rel string, pkgs []protocol.Package) ([]store.Finding, error) {
			mu.Lock()
			asked[rel]++
			mu.Unlock()
			if rel != "almalinux:9" {
				return nil, nil
			}
			return Match(advs)(rel, pkgs)
		}
	}
	f.match = almaOnly(advs)
	as := func(id, osid, version string, r *protocol.Report) *protocol.Report {
		r.ID, r.Device.OSID, r.Device.OSVersionID = id, osid, version
		return r
	}
	alma, rhel := f.enroll("converted"), f.enroll("rhel")
	f.report(alma.ID, as("r1", "almalinux", "9.2", full("", f.ubi)))
	f.report(rhel.ID, as("r1", "rhel", "9.0", full("", f.ubi)))
	if n := countSets(t, f.s); n != 2 {
		t.Errorf("one image on AlmaLinux 9 and on RHEL 9: %d package sets, want 2", n)
	}
	if asked["almalinux:9"] != 1 || asked["rhel:9"] != 1 || len(asked) != 2 {
		t.Errorf("match asked about releases %v, want almalinux:9 and rhel:9 once each", asked)
	}
	if st := f.statuses("converted")["ALSA-2023:3722"]; st != protocol.StatusAffected {
		t.Errorf("AlmaLinux device holding redhat-release: ALSA-2023:3722 is %q, want affected", st)
	}
	if st := f.statuses("rhel"); len(st) != 0 {
		t.Errorf("RHEL device: statuses %v, want none from AlmaLinux advisories", st)
	}
	resp, err := f.s.CVE(t.Context(), "CVE-2023-2650")
	if err != nil || len(resp.Exposed) != 2 || resp.Exposed[0].Device != "converted" || resp.Exposed[1].Device != "converted" {
		t.Errorf("CVE-2023-2650 = %+v, %v; want the converted device's openssl and openssl-libs", resp, err)
	}

	// An advisory changing reaches each set with its own release.
	clear(asked)
	advs[0].Title += " (revised)"
	if _, err := f.s.PutAdvisories(t.Context(), advs, t0, almaOnly(advs)); err != nil {
		t.Fatal(err)
	}
	if asked["almalinux:9"] != 1 || asked["rhel:9"] != 1 || len(asked) != 2 {
		t.Errorf("PutAdvisories asked about releases %v, want almalinux:9 and rhel:9 once each", asked)
	}

	// The RHEL device converts to AlmaLinux 9.3 with no package changed:
	// an empty delta moves it to the AlmaLinux set.
	if resp := f.report(rhel.ID, as("r2", "almalinux", "9.3", delta("", f.ubi, nil, nil))); resp.NeedFullInventory {
		t.Fatalf("empty delta after a release change: %+v", resp)
	}
	if st := f.statuses("rhel")["ALSA-2023:3722"]; st != protocol.StatusAffected {
		t.Errorf("device converted to AlmaLinux: ALSA-2023:3722 is %q, want affected", st)
	}
	if n := countSets(t, f.s); n != 2 {
		t.Errorf("after the conversion: %d package sets, want 2 (it joined the AlmaLinux one)", n)
	}
}

// countSets counts stored package sets, through the optional
// interface implementations give the suite.
func countSets(t *testing.T, s store.Store) int {
	c, ok := s.(interface {
		PackageSets(ctx context.Context) (int, error)
	})
	if !ok {
		t.Fatalf("%T has no PackageSets(ctx) (int, error) to count package sets", s)
	}
	n, err := c.PackageSets(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func testDelta(t *testing.T, b Backend) {
	f := newFleet(t, b)
	d := f.enroll("pi")
	f.report(d.ID, full("r1", f.ubi))
	after, added, removed := upgrade(f.ubi, "0", "1.2.11", "32.el9_0", "zlib")
	if resp := f.report(d.ID, delta("r2", after, added, removed)); resp.NeedFullInventory {
		t.Fatalf("a correct delta: %+v", resp)
	}
	if st := f.statuses("pi")["ALSA-2022:7314"]; st != protocol.StatusPatched {
		t.Errorf("zlib upgraded by a delta: ALSA-2022:7314 is %q, want patched", st)
	}
	got, _ := f.s.DeviceByCredential(t.Context(), store.HashSecret("cred-pi"))
	if got.Digest != protocol.InventoryDigest(after) {
		t.Errorf("digest after delta = %s, want %s", got.Digest, protocol.InventoryDigest(after))
	}
	// A delta whose digest disagrees asks for a full inventory, keeps the
	// set, and keeps asking until a full one comes.
	after2, added2, removed2 := upgrade(after, "0", "2.9.13", "3.el9_1", "libxml2")
	wrong := delta("r3", f.ubi, added2, removed2)
	if resp := f.report(d.ID, wrong); !resp.NeedFullInventory {
		t.Errorf("delta with a wrong digest: %+v, want NeedFullInventory", resp)
	}
	if resp := f.report(d.ID, delta("r4", after2, nil, nil)); !resp.NeedFullInventory {
		t.Errorf("delta after a mismatch: %+v, want NeedFullInventory until a full report", resp)
	}
	if st := f.statuses("pi")["ALSA-2023:0338"]; st != protocol.StatusAffected {
		t.Errorf("after a rejected delta, ALSA-2023:0338 is %q, want still affected", st)
	}
	if resp := f.report(d.ID, full("r5", after2)); resp.NeedFullInventory {
		t.Errorf("full report after mismatch: %+v", resp)
	}
	if st := f.statuses("pi")["ALSA-2023:0338"]; st != protocol.StatusPatched {
		t.Errorf("after the full report, ALSA-2023:0338 is %q, want patched", st)
	}
	// An rpmdb listing a package twice: the digest counts it twice, and so
	// must the stored set, or every later delta would mismatch.
	twice := append(slices.Clone(after2), after2[0])
	if resp := f.report(d.ID, full("r6", twice)); resp.NeedFullInventory {
		t.Errorf("full report with a repeated package: %+v", resp)
	}
	after3, added3, removed3 := upgrade(twice, "0", "1.2.11", "33.el9", "zlib")
	if resp := f.report(d.ID, delta("r7", after3, added3, removed3)); resp.NeedFullInventory {
		t.Errorf("delta on a set with a repeated package: %+v, want accepted", resp)
	}
}

func testBadReport(t *testing.T, b Backend) {
	f := newFleet(t, b)
	d := f.enroll("pi")
	good := full("r1", f.ubi)
	noName := full("r2", append([]protocol.Package{{Version: "1", Release: "1", Arch: "noarch"}}, f.ubi...))
	noName.Inventory.Digest = good.Inventory.Digest
	lying := full("r3", f.ubi[1:])
	lying.Inventory.Digest = good.Inventory.Digest
	tests := []struct {
		name  string
		r     *protocol.Report
		field string
	}{
		{"empty id", full("", f.ubi), "id"},
		{"package without a name", noName, "inventory.packages[0].name"},
		{"unknown inventory kind", func() *protocol.Report { r := full("r4", f.ubi); r.Inventory.Kind = "some"; return r }(), "inventory.kind"},
		{"malformed digest", func() *protocol.Report {
			r := full("r5", f.ubi)
			r.Inventory.Digest = "sha256:" + r.Inventory.Digest
			return r
		}(), "inventory.digest"},
		{"digest not of the packages", lying, "inventory.digest"},
		{"bad epoch", full("r6", []protocol.Package{{Name: "x", Epoch: "one", Version: "1", Arch: "noarch"}}), "inventory.packages[0].epoch"},
		{"unknown outcome", func() *protocol.Report {
			r := full("r7", f.ubi)
			r.Cycles = []protocol.CycleResult{{Outcome: "maybe"}}
			return r
		}(), "cycles[0].outcome"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.s.Report(t.Context(), d.ID, tt.r, t0, f.match)
			if !errors.Is(err, store.ErrBadReport) {
				t.Fatalf("error = %v, want ErrBadReport", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
	if _, err := f.s.Report(t.Context(), "dev-nobody", good, t0, f.match); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("report from an unknown device: %v, want ErrNotFound", err)
	}
	// None of them left a trace: the device has no set, and "r3" (refused)
	// can still be sent.
	if got, _ := f.s.DeviceByCredential(t.Context(), store.HashSecret("cred-pi")); got.Digest != "" || !got.LastSeen.IsZero() {
		t.Errorf("bad reports changed the device: %+v", got)
	}
	if resp := f.report(d.ID, full("r3", f.ubi)); resp.Duplicate {
		t.Errorf("a refused report id was recorded")
	}
}

func testAtomicity(t *testing.T, b Backend) {
	f := newFleet(t, b)
	d := f.enroll("pi")
	boom := errors.New("matcher crashed")
	r := full("r1", f.ubi)
	r.Cycles = []protocol.CycleResult{{Advisories: []string{"ALSA-2023:3722"}, Outcome: protocol.OutcomeFailed}}
	_, err := f.s.Report(t.Context(), d.ID, r, t0, func(string, []protocol.Package) ([]store.Finding, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("report with a failing matcher: %v, want the matcher's error", err)
	}
	got, _ := f.s.DeviceByCredential(t.Context(), store.HashSecret("cred-pi"))
	if got.Digest != "" || !got.LastSeen.IsZero() || got.Info.Kernel != "" {
		t.Errorf("failed report left the device changed: %+v", got)
	}
	if n := countSets(t, f.s); n != 0 {
		t.Errorf("failed report left %d package sets", n)
	}
	// The id was not recorded: the retry is applied in full.
	if resp := f.report(d.ID, r); resp.Duplicate {
		t.Fatalf("retry of a failed report was taken for a duplicate")
	}
	if st := f.statuses("pi")["ALSA-2023:3722"]; st != protocol.StatusFailed {
		t.Errorf("after the retry, ALSA-2023:3722 is %q, want failed", st)
	}
}

func testStatusTransitions(t *testing.T, b Backend) {
	f := newFleet(t, b)
	d := f.enroll("pi")
	const ssl, glibc = "ALSA-2023:3722", "ALSA-2023:5453"
	cur := f.ubi
	steps := []struct {
		name     string
		report   func(id string) *protocol.Report
		want     map[string]protocol.Status
		unlisted []string // advisories that must not apply
	}{
		{"first full report: all affected", func(id string) *protocol.Report { return full(id, cur) },
			map[string]protocol.Status{ssl: protocol.StatusAffected, glibc: protocol.StatusAffected}, nil},
		{"failed openssl update", func(id string) *protocol.Report {
			r := delta(id, cur, nil, nil)
			r.Cycles = []protocol.CycleResult{{Advisories: []string{ssl}, Outcome: protocol.OutcomeFailed, Error: "rpm: transaction failed"}}
			return r
		}, map[string]protocol.Status{ssl: protocol.StatusFailed, glibc: protocol.StatusAffected}, nil},
		{"an unrelated change keeps failed", func(id string) *protocol.Report {
			after, added, removed := upgrade(cur, "0", "1.2.11", "32.el9_0", "zlib")
			cur = after
			return delta(id, after, added, removed)
		}, map[string]protocol.Status{ssl: protocol.StatusFailed, "ALSA-2022:7314": protocol.StatusPatched}, nil},
		{"glibc applied, reboot needed", func(id string) *protocol.Report {
			after, added, removed := upgrade(cur, "0", "2.34", "60.el9_2.7", "glibc", "glibc-common", "glibc-minimal-langpack")
			cur = after
			r := delta(id, after, added, removed)
			r.Cycles = []protocol.CycleResult{{Advisories: []string{glibc}, Outcome: protocol.OutcomeApplied, RebootNeeded: true}}
			r.RebootPending = true
			return r
		}, map[string]protocol.Status{glibc: protocol.StatusPendingReboot, ssl: protocol.StatusFailed}, nil},
		{"still waiting for the reboot", func(id string) *protocol.Report {
			r := delta(id, cur, nil, nil)
			r.RebootPending = true
			return r
		}, map[string]protocol.Status{glibc: protocol.StatusPendingReboot}, nil},
		{"rebooted", func(id string) *protocol.Report { return delta(id, cur, nil, nil) },
			map[string]protocol.Status{glibc: protocol.StatusPatched, ssl: protocol.StatusFailed}, nil},
		{"openssl retried and applied", func(id string) *protocol.Report {
			after, added, removed := upgrade(cur, "1", "3.0.7", "16.el9_2", "openssl", "openssl-libs")
			cur = after
			r := delta(id, after, added, removed)
			r.Cycles = []protocol.CycleResult{{Advisories: []string{ssl}, Outcome: protocol.OutcomeApplied}}
			return r
		}, map[string]protocol.Status{ssl: protocol.StatusPatched, glibc: protocol.StatusPatched}, nil},
		{"libxml2 removed: not affected", func(id string) *protocol.Report {
			var after, removed []protocol.Package
			for _, p := range cur {
				if p.Name == "libxml2" {
					removed = append(removed, p)
					continue
				}
				after = append(after, p)
			}
			cur = after
			return delta(id, after, nil, removed)
		}, map[string]protocol.Status{ssl: protocol.StatusPatched}, []string{"ALSA-2023:0338"}},
		{"openssl downgraded: affected again", func(id string) *protocol.Report {
			after, added, removed := upgrade(cur, "1", "3.0.1", "23.el9_0", "openssl", "openssl-libs")
			cur = after
			return delta(id, after, added, removed)
		}, map[string]protocol.Status{ssl: protocol.StatusAffected}, nil},
	}
	for i, st := range steps {
		resp := f.report(d.ID, st.report(fmt.Sprint("r", i)))
		if resp.NeedFullInventory {
			t.Fatalf("%s: server asked for a full inventory", st.name)
		}
		got := f.statuses("pi")
		for a, want := range st.want {
			if got[a] != want {
				t.Errorf("%s: %s is %q, want %q", st.name, a, got[a], want)
			}
		}
		for _, a := range st.unlisted {
			if s, ok := got[a]; ok {
				t.Errorf("%s: %s is %q, want no row (not affected)", st.name, a, s)
			}
		}
	}
}

func testNewAdvisory(t *testing.T, b Backend) {
	s := open(t, b)
	advs := Advisories()
	f := &fleet{t: t, s: s, match: Match(advs[:1])}
	f.ubi, _ = UBIInventory()
	_, _ = s.PutAdvisories(t.Context(), advs[:1], t0, Match(advs[:1]))
	a, c := f.enroll("a"), f.enroll("b")
	f.report(a.ID, full("r1", f.ubi))
	after, _, _ := upgrade(f.ubi, "0", "2.34", "60.el9_2.7", "glibc", "glibc-common", "glibc-minimal-langpack")
	f.report(c.ID, full("r1", after))
	// A device that moved off a set leaves it unused; it must still be
	// right when a device comes back to it after new advisories.
	e := f.enroll("c")
	f.report(e.ID, full("r1", f.ubi[:10]))
	f.report(e.ID, full("r2", f.ubi[:20]))

	n, err := s.PutAdvisories(t.Context(), advs, t0.Add(time.Hour), Match(advs))
	if err != nil || n != 3 {
		t.Fatalf("PutAdvisories = %d, %v; want 3 new (one unchanged)", n, err)
	}
	if n, err := s.PutAdvisories(t.Context(), advs, t0.Add(time.Hour), Match(advs)); err != nil || n != 0 {
		t.Errorf("re-import of the same advisories = %d, %v; want 0 changed", n, err)
	}
	if st := f.statuses("a")["ALSA-2023:5453"]; st != protocol.StatusAffected {
		t.Errorf("device a after the glibc advisory arrived: %q, want affected", st)
	}
	if st := f.statuses("b")["ALSA-2023:5453"]; st != protocol.StatusPatched {
		t.Errorf("device b after the glibc advisory arrived: %q, want patched", st)
	}
	f.match = Match(advs)
	f.report(e.ID, full("r3", f.ubi[:10]))
	wantE := map[string]protocol.Status{}
	fs, _ := Match(advs)("almalinux:9", f.ubi[:10])
	for _, x := range fs {
		if x.Affected {
			wantE[x.Advisory] = protocol.StatusAffected
		} else if _, ok := wantE[x.Advisory]; !ok {
			wantE[x.Advisory] = protocol.StatusPatched
		}
	}
	if got := f.statuses("c"); !maps.Equal(got, wantE) {
		t.Errorf("device back on an unused set: %v, want %v", got, wantE)
	}
	// A changed advisory (a new CVE) is re-indexed.
	advs[2].CVEs = append(advs[2].CVEs, "CVE-2099-0001")
	if n, err := s.PutAdvisories(t.Context(), advs, t0.Add(2*time.Hour), Match(advs)); err != nil || n != 1 {
		t.Errorf("PutAdvisories with one changed = %d, %v; want 1", n, err)
	}
	resp, err := s.CVE(t.Context(), "cve-2099-0001")
	if err != nil || len(resp.Exposed) != 2 {
		t.Errorf("CVE of the changed advisory: %+v, %v; want devices a and b exposed", resp, err)
	}
}

func testCVE(t *testing.T, b Backend) {
	f := newFleet(t, b)
	kitchen, garage, barn := f.enroll("pi-kitchen"), f.enroll("pi-garage"), f.enroll("pi-barn")
	f.report(kitchen.ID, full("r1", f.ubi))
	fixed, _, _ := upgrade(f.ubi, "1", "3.0.7", "16.el9_2", "openssl", "openssl-libs")
	f.report(garage.ID, full("r1", fixed))
	var noSSL []protocol.Package
	for _, p := range f.ubi {
		if p.Name != "openssl" && p.Name != "openssl-libs" {
			noSSL = append(noSSL, p)
		}
	}
	f.report(barn.ID, full("r1", noSSL))
	// A name may hold any character; the answer must not split it.
	odd := f.enroll("pi:3:é\n")
	f.report(odd.ID, full("r1", f.ubi))

	got, err := f.s.CVE(t.Context(), "CVE-2023-2650")
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.CVEResponse{CVE: "CVE-2023-2650",
		Exposed: []protocol.CVEExposure{
			{Device: "pi-kitchen", Advisory: "ALSA-2023:3722", Package: "openssl", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"},
			{Device: "pi-kitchen", Advisory: "ALSA-2023:3722", Package: "openssl-libs", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"},
			{Device: "pi:3:é\n", Advisory: "ALSA-2023:3722", Package: "openssl", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"},
			{Device: "pi:3:é\n", Advisory: "ALSA-2023:3722", Package: "openssl-libs", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"},
		},
		Patched: []protocol.CVEPatched{{Device: "pi-garage", Advisory: "ALSA-2023:3722"}}}
	if !equalCVE(got, want) {
		t.Errorf("CVE(CVE-2023-2650) =\n%+v\nwant\n%+v", got, want)
	}
	// Pages of one and two devices put together are the whole answer.
	for _, limit := range []int{1, 2} {
		all := protocol.CVEResponse{CVE: "CVE-2023-2650", Exposed: []protocol.CVEExposure{}, Patched: []protocol.CVEPatched{}}
		after := ""
		for pages := 0; ; pages++ {
			page, err := f.s.CVEPage(t.Context(), "cve-2023-2650", after, limit)
			if err != nil || pages > 5 {
				t.Fatalf("CVEPage(after %q, limit %d) = %+v, %v (page %d)", after, limit, page, err, pages)
			}
			all.Exposed = append(all.Exposed, page.Exposed...)
			all.Patched = append(all.Patched, page.Patched...)
			if page.Next == "" {
				break
			}
			after = page.Next
		}
		if !equalCVE(all, want) {
			t.Errorf("CVE-2023-2650 in pages of %d =\n%+v\nwant\n%+v", limit, all, want)
		}
	}
	if _, err := f.s.CVEPage(t.Context(), "CVE-2023-2650", "", 0); err == nil {
		t.Errorf("CVEPage with limit 0: no error")
	}
	got, err = f.s.CVE(t.Context(), "CVE-1999-0001")
	if err != nil || len(got.Exposed)+len(got.Patched) != 0 || got.Exposed == nil || got.Patched == nil {
		t.Errorf("unknown CVE: %+v, %v; want empty, non-nil lists", got, err)
	}
	ds, err := f.s.Devices(t.Context(), store.DeviceFilter{ExposedTo: "CVE-2023-2650"})
	if err != nil || len(ds) != 2 || ds[0].Name != "pi-kitchen" {
		t.Errorf("Devices(exposed to CVE-2023-2650) = %+v, %v; want pi-kitchen and pi:3:é", ds, err)
	}
}

func equalCVE(a, b protocol.CVEResponse) bool {
	return a.CVE == b.CVE && slices.Equal(a.Exposed, b.Exposed) && slices.Equal(a.Patched, b.Patched)
}

func testDeviceQueries(t *testing.T, b Backend) {
	f := newFleet(t, b)
	d := f.enroll("pi")
	f.report(d.ID, full("r1", f.ubi))
	dev, err := f.s.Device(t.Context(), "pi")
	if err != nil {
		t.Fatal(err)
	}
	if dev.Packages != len(f.ubi) || dev.Affected != 4 || dev.WorstSeverity != "Important" || dev.LastSeen.IsZero() {
		t.Errorf("Device = %+v; want %d packages, 4 affected, worst Important, seen", dev.DeviceSummary, len(f.ubi))
	}
	if len(dev.Advisories) != 4 || dev.Advisories[0].Advisory != "ALSA-2023:5453" {
		t.Errorf("Device advisories = %+v; want 4, the Important glibc one first", dev.Advisories)
	}
	if _, err := f.s.Device(t.Context(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Device(unknown) error = %v, want ErrNotFound", err)
	}
	adv, err := f.s.Advisory(t.Context(), "ALSA-2023:3722")
	if err != nil || adv.Affected != 1 || adv.Patched != 0 || len(adv.CVEs) != 5 || adv.Severity != "Moderate" ||
		len(adv.Devices) != 1 || adv.Devices[0] != (protocol.AdvisoryDevice{Device: "pi", Status: protocol.StatusAffected}) {
		t.Errorf("Advisory = %+v, %v", adv, err)
	}
	if _, err := f.s.Advisory(t.Context(), "ALSA-0000:0000"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Advisory(unknown) error = %v, want ErrNotFound", err)
	}
}

func testConcurrentWriters(t *testing.T, b Backend) {
	f := newFleet(t, b)
	const devices, reports = 8, 5
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = f.enroll(fmt.Sprint("pi", i)).ID
	}
	var wg sync.WaitGroup
	errs := make(chan error, devices*reports*2)
	for i, id := range ids {
		wg.Go(func() {
			cur := f.ubi
			for r := range reports {
				var rep *protocol.Report
				if r == 0 {
					rep = full("r0", cur)
				} else {
					// Each device drops a different package each time: many new sets.
					drop := cur[(i*reports+r)%len(cur)]
					next := slices.DeleteFunc(slices.Clone(cur), func(p protocol.Package) bool { return p == drop })
					rep = delta(fmt.Sprint("r", r), next, nil, []protocol.Package{drop})
					cur = next
				}
				// Every report is sent twice at once, as a retry racing the original.
				var inner sync.WaitGroup
				var dup [2]bool
				for k := range 2 {
					inner.Go(func() {
						resp, err := f.s.Report(t.Context(), id, rep, t0, f.match)
						if err != nil {
							errs <- err
						}
						dup[k] = resp.Duplicate
					})
				}
				inner.Wait()
				if dup[0] == dup[1] {
					errs <- fmt.Errorf("device %s report %s: duplicate flags %v, want exactly one applied", id, rep.ID, dup)
				}
			}
		})
	}
	// Advisories arrive while reports flow.
	wg.Go(func() {
		advs := Advisories()
		advs[0].Title += " (revised)"
		if _, err := f.s.PutAdvisories(t.Context(), advs, t0, Match(advs)); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range ids {
		d, err := f.s.DeviceByCredential(t.Context(), store.HashSecret(fmt.Sprint("cred-pi", i)))
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest == "" {
			t.Errorf("device pi%d has no package set after its reports", i)
		}
	}
}

func testSummary(t *testing.T, b Backend) {
	f := newFleet(t, b)
	// No device yet: nothing exposed, nothing divided by zero.
	sum, err := f.s.Summary(t.Context())
	if err != nil || sum.Devices != 0 || sum.FullyPatchedShare != 0 || sum.OldestUnpatchedCritical != nil {
		t.Errorf("empty fleet summary = %+v, %v", sum, err)
	}
	a, c, e := f.enroll("a"), f.enroll("b"), f.enroll("c")
	f.report(a.ID, full("r1", f.ubi))
	glibcFixed, _, _ := upgrade(f.ubi, "0", "2.34", "60.el9_2.7", "glibc", "glibc-common", "glibc-minimal-langpack")
	f.report(c.ID, full("r1", glibcFixed))
	var clean []protocol.Package
	for _, p := range f.ubi {
		switch p.Name {
		case "openssl", "openssl-libs", "glibc", "glibc-common", "glibc-minimal-langpack", "zlib", "libxml2":
		default:
			clean = append(clean, p)
		}
	}
	f.report(e.ID, full("r1", clean))

	advs, err := f.s.Advisories(t.Context(), 3) // Important and above
	if err != nil || len(advs) != 1 || advs[0].ID != "ALSA-2023:5453" || advs[0].Affected != 1 || advs[0].Patched != 1 || len(advs[0].CVEs) != 3 {
		t.Errorf("Advisories(Important) = %+v, %v; want the glibc one, 1 affected, 1 patched, 3 CVEs", advs, err)
	}
	all, err := f.s.Advisories(t.Context(), 0)
	if err != nil || len(all) != 4 || all[0].ID != "ALSA-2023:5453" {
		t.Errorf("Advisories(all) = %d, %v; want 4, the Important one first", len(all), err)
	}
	sum, err = f.s.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"Important": 1, "Moderate": 1}
	if sum.Devices != 3 || sum.FullyPatched != 1 || !maps.Equal(sum.ExposedBySeverity, want) || sum.OldestUnpatchedCritical != nil {
		t.Errorf("Summary = %+v; want 3 devices, 1 fully patched, exposure %v, no critical", sum, want)
	}
	if sum.FullyPatchedShare < 0.33 || sum.FullyPatchedShare > 0.34 {
		t.Errorf("FullyPatchedShare = %v, want 1/3", sum.FullyPatchedShare)
	}
	// An override moves a device from one count to another.
	failed := delta("r2", f.ubi, nil, nil)
	failed.Cycles = []protocol.CycleResult{{Advisories: []string{"ALSA-2023:3722"}, Outcome: protocol.OutcomeRolledBack}}
	f.report(a.ID, failed)
	all, err = f.s.Advisories(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, adv := range all {
		if adv.ID == "ALSA-2023:3722" && (adv.Affected != 1 || adv.Failed != 1 || adv.Patched != 0) {
			t.Errorf("after a rolled-back update on a: %+v; want 1 affected (b), 1 failed (a)", adv)
		}
	}
	// A Critical advisory affecting device a becomes the oldest unpatched.
	crit := Advisories()
	crit[2].Severity = 4
	if _, err := f.s.PutAdvisories(t.Context(), crit, t0, Match(crit)); err != nil {
		t.Fatal(err)
	}
	sum, err = f.s.Summary(t.Context())
	if err != nil || sum.OldestUnpatchedCritical == nil || sum.OldestUnpatchedCritical.ID != "ALSA-2022:7314" || sum.OldestUnpatchedCritical.Affected != 2 {
		t.Errorf("Summary after a critical zlib advisory: %+v, %v; want ALSA-2022:7314 affecting 2", sum.OldestUnpatchedCritical, err)
	}
}
