package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestFleetRollout: ten real agents (rpmfleet-agent run, mode apply, window
// open) in a group whose policy approves only Critical fixes by itself, so
// the Important fix the import brings stays out of every plan. A rollout
// of it with a canary of 1 releases it to one device, whose health check
// fails: the update rolls back, the server pauses the rollout by itself,
// naming the device and its error, and the nine others never install it.
// The health check is fixed, an admin resumes: the canary applies it and
// the rollout reaches all ten in phases. The audit log lists every step,
// the server's own included. The plan the agents take carries the group's
// policy, a field agents before issue 13 do not know: they ignore it.
func TestFleetRollout(t *testing.T) {
	repo := newFleetRepo(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "server.toml")
	if err := os.WriteFile(cfg, []byte("[rollouts]\ntick = \"200ms\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	srv, mqttAddr := startPushServer(t, data, "--config", cfg)
	dumpOnFailure(t, srv)
	admin := adminEnv(srv)

	must(t, admin, "rpmfleet", "group", "set", "field", "site=field")
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"mode": "apply", "security_only": true, "approve_after_days": {"Critical": 0}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, admin, "rpmfleet", "group", "policy", "field", policy)

	ok := filepath.Join(dir, "health-ok")
	conf := agentConfig{Mode: "apply", Window: "open", HealthChecks: []string{"test -e " + ok}}
	var agents []*agent
	byName := map[string]*agent{}
	for i := range 10 {
		name := fmt.Sprintf("pi-field-%02d", i)
		a := startAgent(t, srv, repo, name, repo.deviceRoot(t), conf)
		must(t, admin, "rpmfleet", "labels", name, "site=field")
		agents = append(agents, a)
		byName[name] = a
	}
	for _, a := range agents {
		waitReported(t, srv, a)
	}
	importFix(t, srv, repo)
	waitExposure(t, srv, fixCVE, 30*time.Second, names(agents), nil)
	// The policy holds the Important fix back: no plan carries it.
	for _, a := range agents[:3] {
		if plan, _ := fetchPlan(t, srv, a); len(plan.Advisories) != 0 || plan.Policy == nil || plan.Policy.Group != "field" {
			t.Fatalf("%s's plan before the rollout = %+v (policy %+v), want no advisory and the field policy", a.name, plan.Advisories, plan.Policy)
		}
	}

	var r protocol.Rollout
	out := must(t, admin, "rpmfleet", "rollout", "create", "--group", "field", "--advisory", fixAdvisory, "--phases", "1,50%", "--soak", "1s", "--json")
	if err := json.Unmarshal([]byte(out.stdout), &r); err != nil || len(r.Devices) != 1 || r.Total != 10 {
		t.Fatalf("rollout create: %v\n%s", err, out.stdout)
	}
	canary := byName[r.Devices[0].Device]
	show := func() protocol.Rollout {
		t.Helper()
		var r2 protocol.Rollout
		out := must(t, admin, "rpmfleet", "rollout", "show", r.ID, "--json")
		if err := json.Unmarshal([]byte(out.stdout), &r2); err != nil {
			t.Fatal(err)
		}
		return r2
	}
	waitFor(t, 60*time.Second, "the rollout to pause on the canary's rollback", func() (bool, string) {
		r2 := show()
		return r2.State == protocol.RolloutPaused, fmt.Sprintf("%s: %s %+v", r2.State, r2.Reason, r2.Devices)
	})
	r = show()
	if !strings.Contains(r.Reason, canary.name+": ") || r.Devices[0].Result != protocol.ResultFailed || r.Devices[0].Error == "" {
		t.Errorf("paused rollout = %+v, want the canary %s and its cycle error named", r, canary.name)
	}
	t.Logf("paused: %s", r.Reason)
	for _, a := range agents {
		if v := installed(t, a.root, "demo-lib"); v != oldLib {
			t.Errorf("%s has demo-lib %s after the canary's rollback, want %s", a.name, v, oldLib)
		}
		if a != canary {
			if plan, _ := fetchPlan(t, srv, a); len(plan.Advisories) != 0 {
				t.Errorf("%s, outside the canary, has %+v in its plan", a.name, plan.Advisories)
			}
		}
	}

	// The server restarts: the rollout is still paused where it was, and
	// the agents log in again.
	marks := map[*agent]int{}
	for _, a := range agents {
		marks[a] = a.log.Len()
	}
	addr := strings.TrimPrefix(srv.url, "http://")
	srv.stop(t)
	srv = startServerAt(t, data, addr, "--mqtt-listen", mqttAddr, "--config", cfg)
	dumpOnFailure(t, srv)
	if again := show(); again.State != protocol.RolloutPaused || again.Reason != r.Reason || len(again.Devices) != 1 {
		t.Fatalf("after a restart the rollout is %+v, want it paused as before", again)
	}
	for _, a := range agents {
		a.waitLog(t, marks[a], 60*time.Second, "mqtt connected")
	}

	// The fix: the health check passes from now on; resume.
	if err := os.WriteFile(ok, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, admin, "rpmfleet", "rollout", "resume", r.ID)
	for _, a := range agents {
		a.waitInstalled(t, 90*time.Second, "demo-lib", newLib)
	}
	waitFor(t, 60*time.Second, "the rollout to complete", func() (bool, string) {
		r2 := show()
		return r2.State == protocol.RolloutCompleted, fmt.Sprintf("%s phase %d", r2.State, r2.Phase)
	})
	r = show()
	phases := map[int]int{}
	for _, d := range r.Devices {
		phases[d.Phase]++
	}
	if phases[0] != 1 || phases[1] != 4 || phases[2] != 5 {
		t.Errorf("devices by phase = %v, want 1, 4 and 5", phases)
	}

	var audit []protocol.AuditEntry
	out = must(t, admin, "rpmfleet", "audit", "--limit", "1000", "--json")
	if err := json.Unmarshal([]byte(out.stdout), &audit); err != nil {
		t.Fatal(err)
	}
	var acts []string
	for _, e := range slices.Backward(audit) {
		if !slices.Contains(acts, e.Action) {
			acts = append(acts, e.Action)
		}
	}
	for _, want := range []string{"group.put", "policy.put", "enroll-token.create", "device.labels", "import", "rollout.create",
		"rollout.auto-pause", "rollout.resume", "rollout.phase", "rollout.complete"} {
		if !slices.Contains(acts, want) {
			t.Errorf("the audit log lacks %s: %v", want, acts)
		}
	}
	for _, e := range audit {
		if e.Action == "rollout.create" && e.Target != r.ID {
			t.Errorf("rollout.create entry names %q, want the rollout %s", e.Target, r.ID)
		}
	}
	if strings.Contains(out.stdout, srv.admin) || strings.Contains(out.stdout, "rfe_") || strings.Contains(out.stdout, "rfd_") {
		t.Errorf("the audit log holds a secret")
	}
	t.Log(must(t, admin, "rpmfleet", "audit", "--limit", "12").stdout)
}

func names(as []*agent) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.name)
	}
	slices.Sort(out)
	return out
}
