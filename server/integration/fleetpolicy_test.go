package integration

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestFleetPolicyNarrowedByDevice: the device's own [policy] may only
// narrow its group's policy, never widen it (agent/internal/policy.Narrow),
// on the real binaries. Three agents, window open, one fix imported:
//   - "ctl": group policy apply, local apply: installs it (the control,
//     without which the two others would prove nothing);
//   - "narrowed": group policy apply, local notify: does not install;
//   - "widened": group policy notify, local apply: does not install either.
func TestFleetPolicyNarrowedByDevice(t *testing.T) {
	repo := newFleetRepo(t)
	dir := t.TempDir()
	srv, _ := startPushServer(t, filepath.Join(dir, "data"))
	dumpOnFailure(t, srv)
	admin := adminEnv(srv)

	for group, mode := range map[string]string{"applies": "apply", "holds": "notify"} {
		must(t, admin, "rpmfleet", "group", "set", group, "site="+group)
		pf := filepath.Join(dir, group+".json")
		if err := os.WriteFile(pf, []byte(`{"mode": "`+mode+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		must(t, admin, "rpmfleet", "group", "policy", group, pf)
	}
	start := func(name, group, localMode string) *agent {
		a := startAgent(t, srv, repo, name, repo.deviceRoot(t), agentConfig{Mode: localMode, Window: "open"})
		must(t, admin, "rpmfleet", "labels", name, "site="+group)
		return a
	}
	ctl := start("ctl", "applies", "apply")
	narrowed := start("narrowed", "applies", "notify")
	widened := start("widened", "holds", "apply")
	all := []*agent{ctl, narrowed, widened}
	for _, a := range all {
		waitReported(t, srv, a)
	}
	marks := map[*agent]int{}
	for _, a := range all {
		marks[a] = a.log.Len()
	}
	importFix(t, srv, repo)
	ctl.waitInstalled(t, 60*time.Second, "demo-lib", newLib)
	for _, a := range []*agent{narrowed, widened} {
		// The fix is in its plan, with the group's policy: only the
		// narrowing holds it back.
		plan, _ := fetchPlan(t, srv, a)
		if !slices.ContainsFunc(plan.Advisories, func(pa protocol.PlanAdvisory) bool { return pa.ID == fixAdvisory }) || plan.Policy == nil {
			t.Fatalf("%s's plan = %+v (policy %+v), want %s and a policy", a.name, plan.Advisories, plan.Policy, fixAdvisory)
		}
		line := a.waitLog(t, marks[a], 60*time.Second, "group policy in force", " mode=notify")
		t.Logf("%s: %s", a.name, line)
		a.waitLog(t, marks[a], 60*time.Second, "advisories held back")
		if v := installed(t, a.root, "demo-lib"); v != oldLib {
			t.Errorf("%s installed demo-lib %s, want it left at %s", a.name, v, oldLib)
		}
	}
}
