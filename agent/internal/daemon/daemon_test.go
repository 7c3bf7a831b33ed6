package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// cycleReport returns the first report carrying a cycle, or nil.
func cycleReport(reps []protocol.Report) *protocol.Report {
	for i := range reps {
		if len(reps[i].Cycles) > 0 {
			return &reps[i]
		}
	}
	return nil
}

// TestPollAppliesInWindowWhenBrokerIsDown: the broker is unreachable, so no
// push comes; the first poll fetches the signed plan, the policy (apply, an
// open window) applies it, the package pinned by the plan's SHA-256 is
// installed, and one report carries the cycle and the inventory change.
func TestPollAppliesInWindowWhenBrokerIsDown(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	w.broker = "mqtt://127.0.0.1:1" // nothing listens there
	w.srv.setPlan(t, advisoryPlan(fileSHA256(t, w.rpms["demo-lib-1.1"])))
	w.writeConfig(t, policyTOML("apply", "open"))
	r := w.start(t)

	waitFor(t, 60*time.Second, "the cycle's report", func() bool { return cycleReport(w.srv.Reports()) != nil })
	if got := w.installed(t); !slices.Equal(got, []string{"demo-lib-1.1-1"}) {
		t.Fatalf("installed %v, want demo-lib-1.1-1", got)
	}
	rep := cycleReport(w.srv.Reports())
	c := rep.Cycles[0]
	if c.Outcome != protocol.OutcomeApplied || !slices.Equal(c.Advisories, []string{testAdvisory}) {
		t.Errorf("cycle result %+v, want %s applied", c, testAdvisory)
	}
	// The first report (full inventory at start) came before; this one is
	// the change the cycle made.
	if rep.Inventory.Kind != protocol.InventoryDelta || len(rep.Inventory.Added) != 1 || rep.Inventory.Added[0].Version != "1.1" {
		t.Errorf("cycle report inventory %+v, want a delta adding demo-lib 1.1", rep.Inventory)
	}
	if reps := w.srv.Reports(); reps[0].Inventory.Kind != protocol.InventoryFull {
		t.Errorf("first report is %s, want full", reps[0].Inventory.Kind)
	}
	waitFor(t, 10*time.Second, "the status to show the cycle", func() bool { return r.Status().LastCycle != nil })
	st := r.Status()
	if st.MQTT || st.LastCheck.IsZero() || st.LastCycle == nil || st.LastCycle.Phase != update.Committed.String() {
		t.Errorf("status %+v, want no mqtt, a last check and a committed cycle", st)
	}
	// The cycle's own rpm changes are not reported a second time by the
	// database watcher.
	time.Sleep(600 * time.Millisecond)
	n := 0
	for _, rep := range w.srv.Reports() {
		if rep.Inventory.Kind == protocol.InventoryDelta && len(rep.Inventory.Added) > 0 {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d reports added packages, want 1 (the cycle's)", n)
	}
}

// TestPinnedDigestRefusesAnotherFile: the plan pins a SHA-256 the
// repository's file does not have; the cycle fails verification and
// nothing is installed.
func TestPinnedDigestRefusesAnotherFile(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	w.srv.setPlan(t, advisoryPlan(strings.Repeat("ab", 32)))
	w.writeConfig(t, policyTOML("apply", ""))
	r := w.start(t)
	waitFor(t, 60*time.Second, "the failed cycle", func() bool {
		c := r.Status().LastCycle
		return c != nil && c.Phase == update.Failed.String()
	})
	if c := r.Status().LastCycle; !strings.Contains(c.Error, "pins sha256:abab") {
		t.Errorf("cycle error %q, want the pinned digest named", c.Error)
	}
	if got := w.installed(t); !slices.Equal(got, []string{"demo-lib-1.0-1"}) {
		t.Fatalf("installed %v, want demo-lib-1.0-1 untouched", got)
	}
}

// TestOutsideWindowNotifiesOnly: mode apply but the window is closed: the
// advisory is pending (notify), nothing is installed.
func TestOutsideWindowNotifiesOnly(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	w.srv.setPlan(t, advisoryPlan(""))
	w.writeConfig(t, policyTOML("apply", "closed"))
	r := w.start(t)
	waitFor(t, 30*time.Second, "the advisory pending", func() bool { return len(r.Status().Pending) == 1 })
	p := r.Status().Pending[0]
	if p.ID != testAdvisory || p.Action != "notify" || !strings.Contains(p.Reason, "outside the maintenance windows") {
		t.Errorf("pending %+v, want %s notify outside the window", p, testAdvisory)
	}
	time.Sleep(300 * time.Millisecond)
	if got := w.installed(t); !slices.Equal(got, []string{"demo-lib-1.0-1"}) {
		t.Fatalf("installed %v, want demo-lib-1.0-1 untouched", got)
	}
	if des, _ := os.ReadDir(filepath.Join(w.stateDir, "packages")); len(des) > 0 {
		t.Errorf("packages were downloaded outside the window in apply mode: %v", des)
	}
}

// TestWindowOpensLater: the plan arrives a second before the maintenance
// window opens; the advisory waits (notify), and the daemon wakes when the
// window opens and applies it without a new push or poll. The daemon's
// clock is shifted to just before the next minute, where the window starts;
// its timers run in real time.
func TestWindowOpensLater(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.srv.setPlan(t, advisoryPlan(""))
	start := time.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	offset := time.Until(start.Add(-1500 * time.Millisecond))
	w.writeConfig(t, policyTOML("apply", "")+
		fmt.Sprintf("[[policy.window]]\ndays = [\"mon-sun\"]\nstart = %q\nlength = \"1h\"\ntimezone = \"UTC\"\n", start.Format("15:04")))
	r := w.start(t, func(o *Options) { o.Now = func() time.Time { return time.Now().Add(offset) } })
	waitFor(t, 10*time.Second, "the advisory pending", func() bool {
		return len(r.Status().Pending) == 1 || slices.Equal(w.installed(t), []string{"demo-lib-1.1-1"})
	})
	if got := w.installed(t); !slices.Equal(got, []string{"demo-lib-1.0-1"}) {
		t.Fatalf("installed %v before the window opened", got)
	}
	gets := w.srv.PlanGets()
	waitFor(t, 60*time.Second, "the advisory applied when the window opened", func() bool {
		return slices.Equal(w.installed(t), []string{"demo-lib-1.1-1"})
	})
	if n := w.srv.PlanGets(); n != gets {
		t.Errorf("%d plan fetches at the window, want none: the plan held is still valid", n-gets)
	}
}
