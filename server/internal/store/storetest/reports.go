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

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Stories of reports: idempotence, shared package sets, deltas, bad and
// failing reports, concurrent writers.

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
