package daemon

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/config"
	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
)

// TestStandaloneAllowListed: standalone, the device's own allow_updates
// takes demo-lib to its newest build although the policy holds its
// advisory back (min_severity critical; the fix is Important), through
// the real rpm. Then every check looks again and finds nothing newer:
// those looks make no cycle, hold nothing back as if a cycle had failed,
// and do not chain into checks of their own (one look per check).
func TestStandaloneAllowListed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	w.standaloneConfig(t, policyTOML("apply", "", "min_severity = \"critical\"", "allow_updates = [\"demo-lib\"]")+
		"\n[poll]\ninterval = \"1s\"\njitter = \"0s\"\nconnected_interval = \"1s\"\n")
	r := w.start(t)
	waitFor(t, 60*time.Second, "demo-lib 1.1 by allow-list", func() bool { return slices.Contains(w.installed(t), "demo-lib-1.1-1") })
	waitFor(t, 30*time.Second, "the committed cycle in the status", func() bool {
		st := r.Status()
		return st.LastCycle != nil && st.LastCycle.Phase == "committed"
	})
	if st := r.Status(); len(st.LastCycle.Advisories) != 0 {
		t.Errorf("the allow-listed cycle names advisories %v; the policy held %s back", st.LastCycle.Advisories, testAdvisory)
	}
	// From now on each check reads repomd.xml once, and so does the look
	// for allow-listed updates that follows it: two reads a look. A look
	// that made the standalone agent check again at once (as after a
	// cycle) would make three, and one taken for a failed cycle would
	// hold the next looks back.
	// The two counts are not read at one instant, so each end may be one
	// look off: over 18 reads, this agent makes 9 looks (at least 8 as
	// counted), one that checked again after each look 6 (at most 7).
	const repomd = "/repodata/repomd.xml"
	reads := w.repo.Requests(repomd)
	looks := strings.Count(r.log.String(), `"allow-listed updates"`)
	waitFor(t, 60*time.Second, "18 more repomd.xml reads", func() bool { return w.repo.Requests(repomd) >= reads+18 })
	dReads := w.repo.Requests(repomd) - reads
	dLooks := strings.Count(r.log.String(), `"allow-listed updates"`) - looks
	if dLooks == 0 || dReads > 2*dLooks+3 {
		t.Errorf("%d looks for allow-listed updates over %d repomd.xml reads, want one look a check (two reads a look)", dLooks, dReads)
	}
	if n := strings.Count(r.log.String(), "update cycle finished"); n != 1 {
		t.Errorf("%d cycles finished, want the one that installed demo-lib 1.1", n)
	}
	for _, p := range r.Status().Pending {
		if strings.Contains(p.Reason, "last update cycle failed") {
			t.Errorf("a look that found nothing held %s back as after a failure: %s", p.ID, p.Reason)
		}
	}
}

// TestAllowListedDownloadMode: in mode download the allow-listed build is
// fetched and verified into the state dir ahead of an apply, and nothing
// is installed; its advisory, held back by severity, plays no part.
func TestAllowListedDownloadMode(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	w.standaloneConfig(t, policyTOML("download", "", "min_severity = \"critical\"", "allow_updates = [\"demo-lib\"]"))
	r := w.start(t)
	waitFor(t, 60*time.Second, "the allow-listed prefetch", func() bool {
		return strings.Contains(r.log.String(), "prefetch finished") && strings.Contains(r.log.String(), "allow-listed updates")
	})
	if _, err := os.Stat(filepath.Join(w.stateDir, "packages", filepath.Base(w.rpms["demo-lib-1.1"]))); err != nil {
		t.Errorf("demo-lib 1.1 not kept in the state dir: %v", err)
	}
	if got := w.installed(t); !slices.Contains(got, "demo-lib-1.0-1") || slices.Contains(got, "demo-lib-1.1-1") {
		t.Errorf("download mode installed something: %v", got)
	}
	if strings.Contains(r.log.String(), "update cycle starting") {
		t.Errorf("download mode started a cycle")
	}
}

// TestEveryCycleKeepsTheDevicesInstallonlyLimit: the install-only limit of
// the device's [policy] reaches every cycle's options (all pass through
// updateOptions): an apply's, a spool bundle's (its own repository), and
// the settle's of a cycle a crash cut (no selection at all); 0, keep every
// kernel, is update's -1.
func TestEveryCycleKeepsTheDevicesInstallonlyLimit(t *testing.T) {
	for _, tt := range []struct{ limit, want int }{{2, 2}, {5, 5}, {0, -1}} {
		d := &daemon{cfg: &config.Config{Policy: policy.Policy{InstallonlyLimit: tt.limit}}}
		for name, o := range map[string]update.Options{
			"apply":  {Select: update.Selection{IDs: []string{testAdvisory}}},
			"bundle": {Repos: []string{"/var/lib/rpmfleet/spool/b/repo"}, Select: update.Selection{IDs: []string{testAdvisory}}},
			"settle": {},
		} {
			if got := d.updateOptions(o).InstallonlyLimit; got != tt.want {
				t.Errorf("installonly_limit %d: the %s cycle's limit is %d, want %d", tt.limit, name, got, tt.want)
			}
		}
	}
}
