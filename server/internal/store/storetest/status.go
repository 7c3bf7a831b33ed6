package storetest

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Stories of a device's status for an advisory as reports and advisories
// arrive.

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
	// A changed advisory (a new CVE, so a later update) is re-indexed.
	advs[2].CVEs = append(advs[2].CVEs, "CVE-2099-0001")
	advs[2].Updated = t0.Add(2 * time.Hour)
	if n, err := s.PutAdvisories(t.Context(), advs, t0.Add(2*time.Hour), Match(advs)); err != nil || n != 1 {
		t.Errorf("PutAdvisories with one changed = %d, %v; want 1", n, err)
	}
	resp, err := s.CVE(t.Context(), "cve-2099-0001")
	if err != nil || len(resp.Exposed) != 2 {
		t.Errorf("CVE of the changed advisory: %+v, %v; want devices a and b exposed", resp, err)
	}
}
