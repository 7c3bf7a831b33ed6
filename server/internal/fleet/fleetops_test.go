package fleet

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// clock is the injectable clock of the fleet operations' tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var day0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// opsFleet is a Service over a real SQLite file, with a signer, a
// recording publisher and a clock the test moves.
type opsFleet struct {
	svc   *Service
	st    store.Store
	pub   *recordPublisher
	clock *clock
	path  string
	opts  Options
	ids   map[string]string // device name -> id
}

func newOpsFleet(t testing.TB) *opsFleet {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "fleet.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pub, priv, err := notice.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := notice.NewSigner(priv, notice.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: day0}
	f := &opsFleet{st: st, pub: &recordPublisher{}, clock: c, path: path, ids: map[string]string{}}
	f.opts = Options{NoticeKey: pub, Signer: signer, Publisher: f.pub, Now: c.Now}
	if f.svc, err = New(ctx, st, f.opts); err != nil {
		t.Fatal(err)
	}
	return f
}

// demo-lib 1.0 is installed everywhere; each advisory below fixes one
// package of the device set.
func lib(name, ver string) protocol.Package {
	return protocol.Package{Name: name, Version: ver, Release: "1.el9", Arch: "aarch64"}
}

var opsPkgs = []protocol.Package{alma9, lib("crit-lib", "1.0"), lib("mod-lib", "1.0"), lib("imp-lib", "1.0"), lib("bug-lib", "1.0")}

func opsAdvisory(id string, typ advisory.Type, sev advisory.Severity, pkg string, issued time.Time) advisory.Advisory {
	return advisory.Advisory{ID: id, Ecosystem: "AlmaLinux:9", Type: typ, Severity: sev, Issued: issued, Title: id,
		Packages: []advisory.Package{{Name: pkg, EVR: rpmver.MustParseEVR("1.1-1.el9")}}}
}

func (f *opsFleet) enroll(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	ctx := t.Context()
	tok, err := f.svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := f.svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Name: name,
		Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64"}})
	if err != nil {
		t.Fatal(err)
	}
	f.ids[name] = dev.DeviceID
	f.reportPkgs(t, name, "r0", opsPkgs, nil)
}

func (f *opsFleet) reportPkgs(t testing.TB, name, reportID string, pkgs []protocol.Package, cycles []protocol.CycleResult) {
	t.Helper()
	_, err := f.svc.ReportNamed(t.Context(), f.ids[name], name, &protocol.Report{ID: reportID, Time: f.clock.Now(),
		Device:    protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64"},
		Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}, Cycles: cycles})
	if err != nil {
		t.Fatal(err)
	}
}

// plan returns the ids in the device's signed plan, and its policy.
func (f *opsFleet) plan(t *testing.T, name string) ([]string, *protocol.Policy) {
	t.Helper()
	msg, _, err := f.svc.Plan(t.Context(), f.ids[name])
	if err != nil {
		t.Fatal(err)
	}
	var p protocol.Plan
	(&pushFleet{key: f.opts.NoticeKey}).verify(t, msg, notice.KindPlan, f.ids[name], &p)
	var ids []string
	for _, a := range p.Advisories {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	return ids, p.Policy
}

// TestApproveAfterDays: a group's policy lets a Critical fix out at once,
// a Moderate one after 7 days (the injectable clock moves), an Important
// one only by hand, and a bugfix never (security only); a device outside
// the group gets everything, as before issue 13.
func TestApproveAfterDays(t *testing.T) {
	f := newOpsFleet(t)
	ctx := t.Context()
	advs := []advisory.Advisory{
		opsAdvisory("RFSA-C", advisory.Security, advisory.Critical, "crit-lib", day0),
		opsAdvisory("RFSA-M", advisory.Security, advisory.Moderate, "mod-lib", day0),
		opsAdvisory("RFSA-I", advisory.Security, advisory.Important, "imp-lib", day0),
		opsAdvisory("RFBA-B", advisory.Bugfix, advisory.Critical, "bug-lib", day0),
	}
	if _, err := f.svc.Import(ctx, advs); err != nil {
		t.Fatal(err)
	}
	f.enroll(t, "edge-1", map[string]string{"ring": "prod"})
	f.enroll(t, "lab-1", map[string]string{"ring": "lab"})
	if _, err := f.svc.PutGroup(ctx, "prod", protocol.GroupRequest{Selector: map[string]string{"ring": "prod"}}); err != nil {
		t.Fatal(err)
	}
	pol := &protocol.Policy{Mode: "apply", SecurityOnly: true, Reboot: "when-needed",
		Windows:          []protocol.PolicyWindow{{Days: []string{"sat-sun"}, Start: "02:30", Length: "3h", Timezone: "America/New_York"}},
		ApproveAfterDays: map[string]int{"critical": 0, "Moderate": 7}}
	f.pub.take()
	if _, err := f.svc.SetGroupPolicy(ctx, "prod", pol); err != nil {
		t.Fatal(err)
	}
	// The group's devices (edge-1 alone) are told to check their plans.
	if msgs := f.pub.take(); len(msgs) != 1 || msgs[0].topic != protocol.DeviceCommandTopic(f.ids["edge-1"]) {
		t.Errorf("a policy change published %+v, want one check command to edge-1", msgs)
	}
	all := []string{"RFBA-B", "RFSA-C", "RFSA-I", "RFSA-M"}
	for _, step := range []struct {
		name    string
		advance time.Duration
		approve string
		want    []string
	}{
		{"an hour after issue: Critical only", time.Hour, "", []string{"RFSA-C"}},
		{"six days later: still no Moderate", 6 * 24 * time.Hour, "", []string{"RFSA-C"}},
		{"seven days after issue: Moderate too", 23 * time.Hour, "", []string{"RFSA-C", "RFSA-M"}},
		{"Important approved by hand", 0, "RFSA-I", []string{"RFSA-C", "RFSA-I", "RFSA-M"}},
	} {
		t.Run(step.name, func(t *testing.T) {
			f.clock.Add(step.advance)
			if step.approve != "" {
				f.pub.take()
				if _, err := f.svc.Approve(ctx, step.approve, "alice"); err != nil {
					t.Fatal(err)
				}
				// A feed notice naming it sends every agent for its plan.
				msgs := f.pub.take()
				var fn protocol.FeedNotice
				if len(msgs) != 1 || msgs[0].topic != protocol.TopicAdvisoryFeed || !msgs[0].retained {
					t.Fatalf("approval published %+v, want the retained feed notice", msgs)
				}
				(&pushFleet{key: f.opts.NoticeKey}).verify(t, msgs[0].payload, notice.KindFeedNotice, "", &fn)
				if !slices.Equal(fn.Advisories, []string{step.approve}) {
					t.Errorf("the feed notice names %v, want %s", fn.Advisories, step.approve)
				}
			}
			got, p := f.plan(t, "edge-1")
			if !slices.Equal(got, step.want) {
				t.Errorf("edge-1's plan at %s = %v, want %v", f.clock.Now().Format(time.DateTime), got, step.want)
			}
			if p == nil || p.Group != "prod" || p.Mode != "apply" || p.Version != protocol.PolicyVersion || p.ApproveAfterDays != nil ||
				len(p.Windows) != 1 || p.Windows[0].Timezone != "America/New_York" || p.Reboot != "when-needed" {
				t.Errorf("edge-1's plan carries policy %+v", p)
			}
			if got, p := f.plan(t, "lab-1"); !slices.Equal(got, all) || p != nil {
				t.Errorf("lab-1 (no group) plan = %v with policy %+v, want every advisory and no policy", got, p)
			}
		})
	}
	if _, err := f.svc.Approve(ctx, "RFSA-NOPE", "alice"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("approving an unknown advisory: %v, want ErrBadRequest", err)
	}
}

// TestPolicyValidation: every refusal names its field.
func TestPolicyValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     protocol.Policy
		field string
	}{
		{"mode", protocol.Policy{Mode: "yolo"}, "policy.mode"},
		{"severity", protocol.Policy{Mode: "apply", MinSeverity: "urgent"}, "policy.min_severity"},
		{"glob", protocol.Policy{Mode: "apply", Exclude: []string{"kernel["}}, "policy.exclude[0]"},
		{"reboot", protocol.Policy{Mode: "apply", Reboot: "always"}, "policy.reboot"},
		{"zone", protocol.Policy{Mode: "apply", Windows: []protocol.PolicyWindow{{Days: []string{"mon"}, Start: "02:00", Length: "1h", Timezone: "Mars/Olympus"}}}, "policy.windows[0].timezone"},
		{"no zone", protocol.Policy{Mode: "apply", Windows: []protocol.PolicyWindow{{Days: []string{"mon"}, Start: "02:00", Length: "1h"}}}, "policy.windows[0].timezone"},
		{"start", protocol.Policy{Mode: "apply", Windows: []protocol.PolicyWindow{{Days: []string{"mon"}, Start: "24:00", Length: "1h", Timezone: "UTC"}}}, "policy.windows[0].start"},
		{"day", protocol.Policy{Mode: "apply", Windows: []protocol.PolicyWindow{{Days: []string{"mon-fry"}, Start: "02:00", Length: "1h", Timezone: "UTC"}}}, "policy.windows[0].days"},
		{"length", protocol.Policy{Mode: "apply", Windows: []protocol.PolicyWindow{{Days: []string{"mon"}, Start: "02:00", Length: "169h", Timezone: "UTC"}}}, "policy.windows[0].length"},
		{"days", protocol.Policy{Mode: "apply", ApproveAfterDays: map[string]int{"Moderate": -1}}, "policy.approve_after_days.Moderate"},
		{"days severity", protocol.Policy{Mode: "apply", ApproveAfterDays: map[string]int{"Severe": 1}}, "policy.approve_after_days"},
		{"days beyond a year", protocol.Policy{Mode: "apply", ApproveAfterDays: map[string]int{"Low": protocol.MaxApproveAfterDays + 1}}, "policy.approve_after_days.Low"},
		{"65 excludes", protocol.Policy{Mode: "apply", Exclude: slices.Repeat([]string{"kernel*"}, protocol.MaxPolicyExcludes+1)}, "policy.exclude"},
		{"escape in an exclude", protocol.Policy{Mode: "apply", Exclude: []string{"kernel\x1b[2J"}}, "policy.exclude[0]"},
		{"17 windows", protocol.Policy{Mode: "apply", Windows: slices.Repeat([]protocol.PolicyWindow{{Days: []string{"mon"}, Start: "02:00", Length: "1h", Timezone: "UTC"}}, protocol.MaxPolicyWindows+1)}, "policy.windows"},
		{"version from the future", protocol.Policy{Version: 2, Mode: "apply"}, "policy.version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			var fe *protocol.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("Validate = %v, want a refusal of %s", err, tc.field)
			}
		})
	}
}

// TestRolloutCanaryPausesThenPhases: ten devices; a canary of 1 whose
// cycle rolls back pauses the rollout by itself, naming the device and its
// error, and the nine others never see the advisory in their plans; after
// a resume the canary applies it, and the rollout goes on in phases after
// each soak, on the injectable clock, until it completes. A second
// Service over the same database takes the rollout up mid-way (a restart).
func TestRolloutCanaryPausesThenPhases(t *testing.T) {
	f := newOpsFleet(t)
	ctx := t.Context()
	adv := opsAdvisory("RFSA-R", advisory.Security, advisory.Important, "imp-lib", day0)
	if _, err := f.svc.Import(ctx, []advisory.Advisory{adv}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 10 {
		n := fmt.Sprintf("pi-%02d", i)
		names = append(names, n)
		f.enroll(t, n, map[string]string{"site": "field"})
	}
	if _, err := f.svc.PutGroup(ctx, "field", protocol.GroupRequest{Selector: map[string]string{"site": "field"}}); err != nil {
		t.Fatal(err)
	}
	f.pub.take()
	r, err := f.svc.CreateRollout(ctx, protocol.RolloutRequest{Advisory: "RFSA-R", Group: "field", Phases: []string{"1", "50%"}, Soak: "1h"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if r.Total != 10 || !slices.Equal(r.Phases, []string{"1", "50%", "100%"}) || len(r.Devices) != 1 || r.State != protocol.RolloutRunning {
		t.Fatalf("created rollout = %+v", r)
	}
	canary := r.Devices[0].Device
	released := func() []string {
		t.Helper()
		var out []string
		for _, n := range names {
			if got, _ := f.plan(t, n); slices.Contains(got, "RFSA-R") {
				out = append(out, n)
			}
		}
		return out
	}
	if got := released(); !slices.Equal(got, []string{canary}) {
		t.Fatalf("plans holding RFSA-R = %v, want the canary %s only", got, canary)
	}
	if msgs := f.pub.take(); len(msgs) != 1 || msgs[0].topic != protocol.DeviceCommandTopic(f.ids[canary]) {
		t.Errorf("published %+v, want one check command to the canary", msgs)
	}
	step := func() {
		t.Helper()
		if err := f.svc.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fixed := slices.Clone(opsPkgs)
	fixed[3] = lib("imp-lib", "1.1")

	// The canary's health check fails: its cycle rolls back.
	f.clock.Add(time.Minute)
	f.reportPkgs(t, canary, "r1", opsPkgs, []protocol.CycleResult{{Advisories: []string{"RFSA-R"}, Outcome: protocol.OutcomeRolledBack,
		Error: "health check demo-health: exit status 1"}})
	f.clock.Add(2 * time.Hour) // past the soak: only the failure can stop it
	step()
	r, _ = f.svc.RolloutView(ctx, r.ID)
	if r.State != protocol.RolloutPaused || !strings.Contains(r.Reason, canary+": health check demo-health: exit status 1") || r.Phase != 0 {
		t.Fatalf("after the canary's rollback: %+v", r)
	}
	if got := released(); !slices.Equal(got, []string{canary}) {
		t.Errorf("while paused, plans holding RFSA-R = %v, want the canary only", got)
	}
	step()
	if again, _ := f.svc.RolloutView(ctx, r.ID); again.State != protocol.RolloutPaused {
		t.Errorf("a step moved a paused rollout: %+v", again)
	}
	if _, err := f.svc.ActRollout(ctx, r.ID, protocol.RolloutPause); !errors.Is(err, ErrBadRequest) {
		t.Errorf("pausing a paused rollout: %v, want ErrBadRequest", err)
	}

	// Fixed: resume; the canary is told to check and applies it.
	f.pub.take()
	if r, err = f.svc.ActRollout(ctx, r.ID, protocol.RolloutResume); err != nil || r.State != protocol.RolloutRunning {
		t.Fatalf("resume: %+v, %v", r, err)
	}
	if msgs := f.pub.take(); len(msgs) != 1 || msgs[0].topic != protocol.DeviceCommandTopic(f.ids[canary]) {
		t.Errorf("resume published %+v, want a check command to the canary", msgs)
	}
	step()
	if r, _ = f.svc.RolloutView(ctx, r.ID); r.State != protocol.RolloutRunning || r.Phase != 0 || r.Devices[0].Result != protocol.ResultPending {
		t.Errorf("after resume the old failure still counts: %+v", r)
	}
	f.clock.Add(time.Minute)
	f.reportPkgs(t, canary, "r2", fixed, []protocol.CycleResult{{Advisories: []string{"RFSA-R"}, Outcome: protocol.OutcomeApplied}})
	step() // the soak has not passed since the resume
	if r, _ = f.svc.RolloutView(ctx, r.ID); r.Phase != 0 {
		t.Fatalf("phase 2 started before the soak: %+v", r)
	}

	// A restart: a new Service over the same database goes on.
	svc2, err := New(ctx, f.st, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc2
	f.clock.Add(time.Hour)
	step()
	if r, _ = f.svc.RolloutView(ctx, r.ID); r.Phase != 1 || len(r.Devices) != 5 {
		t.Fatalf("after the soak: %+v, want phase 2 with 5 devices", r)
	}
	// The canary is patched: its plan no longer holds the fix.
	if got := released(); len(got) != 4 || slices.Contains(got, canary) {
		t.Errorf("phase 2: plans holding RFSA-R = %v, want the 4 new devices", got)
	}
	for _, d := range r.Devices[1:] {
		f.reportPkgs(t, d.Device, "r9", fixed, []protocol.CycleResult{{Advisories: []string{"RFSA-R"}, Outcome: protocol.OutcomeApplied}})
	}
	f.clock.Add(time.Hour)
	step()
	if r, _ = f.svc.RolloutView(ctx, r.ID); r.Phase != 2 || len(r.Devices) != 10 {
		t.Fatalf("phase 3: %+v, want 10 devices", r)
	}
	for _, d := range r.Devices {
		if d.Phase == 2 {
			f.reportPkgs(t, d.Device, "r9", fixed, []protocol.CycleResult{{Advisories: []string{"RFSA-R"}, Outcome: protocol.OutcomeApplied}})
		}
	}
	f.clock.Add(time.Hour)
	step()
	if r, _ = f.svc.RolloutView(ctx, r.ID); r.State != protocol.RolloutCompleted {
		t.Fatalf("after the last phase: %+v, want completed", r)
	}
	for _, d := range r.Devices {
		if d.Result != protocol.ResultApplied {
			t.Errorf("%s: %s, want applied", d.Device, d.Result)
		}
	}
	es, err := f.svc.AuditLog(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var acts []string
	for _, e := range slices.Backward(es) {
		if e.Actor == protocol.ActorSystem {
			acts = append(acts, e.Action)
		}
	}
	if want := []string{"rollout.auto-pause", "rollout.phase", "rollout.phase", "rollout.complete"}; !slices.Equal(acts, want) {
		t.Errorf("the server's own audit entries = %v, want %v", acts, want)
	}
}

// TestRolloutRequestRefusals: each bad request names its field.
func TestRolloutRequestRefusals(t *testing.T) {
	f := newOpsFleet(t)
	ctx := t.Context()
	if _, err := f.svc.Import(ctx, []advisory.Advisory{opsAdvisory("RFSA-R", advisory.Security, advisory.Important, "imp-lib", day0)}); err != nil {
		t.Fatal(err)
	}
	f.enroll(t, "pi-1", map[string]string{"site": "field"})
	if _, err := f.svc.PutGroup(ctx, "field", protocol.GroupRequest{Selector: map[string]string{"site": "field"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutGroup(ctx, "moon", protocol.GroupRequest{Selector: map[string]string{"site": "moon"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  protocol.RolloutRequest
		want string
	}{
		{"unknown group", protocol.RolloutRequest{Advisory: "RFSA-R", Group: "mars"}, "group: unknown group"},
		{"unknown advisory", protocol.RolloutRequest{Advisory: "RFSA-X", Group: "field"}, "advisory: unknown advisory"},
		{"no advisory", protocol.RolloutRequest{Group: "field"}, "advisory: empty"},
		{"nobody exposed", protocol.RolloutRequest{Advisory: "RFSA-R", Group: "moon"}, "group: no device of group moon is exposed"},
		{"falling phases", protocol.RolloutRequest{Advisory: "RFSA-R", Group: "field", Phases: []string{"50%", "10%"}}, "phases[1]"},
		{"count late", protocol.RolloutRequest{Advisory: "RFSA-R", Group: "field", Phases: []string{"1", "5"}}, "phases[1]"},
		{"soak", protocol.RolloutRequest{Advisory: "RFSA-R", Group: "field", Soak: "soon"}, "soak:"},
		{"rate", protocol.RolloutRequest{Advisory: "RFSA-R", Group: "field", MaxFailureRate: 1.5}, "max_failure_rate:"},
		{"21 phases", protocol.RolloutRequest{Advisory: "RFSA-R", Group: "field", Phases: slices.Repeat([]string{"10%"}, protocol.MaxRolloutPhases+1)}, "phases: 21 phases"},
		{"over 100%", protocol.RolloutRequest{Advisory: "RFSA-R", Group: "field", Phases: []string{"1", "150%"}}, "phases[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.CreateRollout(ctx, tc.req, "alice")
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CreateRollout = %v, want a bad request naming %q", err, tc.want)
			}
		})
	}
	// All pending security advisories of the group.
	r, err := f.svc.CreateRollout(ctx, protocol.RolloutRequest{Advisory: protocol.AllPendingSecurity, Group: "field"}, "alice")
	if err != nil || !slices.Equal(r.Advisories, []string{"RFSA-R"}) || !slices.Equal(r.Phases, DefaultPhases) {
		t.Errorf("all-security rollout = %+v, %v", r, err)
	}
	if err := f.svc.DeleteGroup(ctx, "field"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("deleting a group with a running rollout: %v, want ErrBadRequest", err)
	}
	if r, err = f.svc.ActRollout(ctx, r.ID, protocol.RolloutAbort); err != nil || r.State != protocol.RolloutAborted {
		t.Errorf("abort: %+v, %v", r, err)
	}
	if _, err := f.svc.ActRollout(ctx, r.ID, protocol.RolloutResume); !errors.Is(err, ErrBadRequest) {
		t.Errorf("resuming an aborted rollout: %v, want ErrBadRequest", err)
	}
	// An ended rollout outlives its group: still shown, marked unjudged.
	if v, err := f.svc.RolloutView(ctx, r.ID); err != nil || v.GroupDeleted || len(v.Devices) == 0 {
		t.Errorf("aborted rollout with its group = %+v, %v; want its devices", v, err)
	}
	if err := f.svc.DeleteGroup(ctx, "field"); err != nil {
		t.Fatalf("deleting the group of an aborted rollout: %v", err)
	}
	if v, err := f.svc.RolloutView(ctx, r.ID); err != nil || !v.GroupDeleted || v.ID != r.ID || v.State != protocol.RolloutAborted || len(v.Devices) != 0 {
		t.Errorf("aborted rollout without its group = %+v, %v; want it, marked group_deleted, without devices", v, err)
	}
}

// TestGroupsBounded: the 1,001st group is refused, naming the limit;
// replacing an existing group's selector still works at the limit.
func TestGroupsBounded(t *testing.T) {
	f := newOpsFleet(t)
	ctx := t.Context()
	for i := range protocol.MaxGroups {
		if err := f.st.PutGroup(ctx, store.Group{Name: fmt.Sprint("g", i), Created: day0, Updated: day0}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.svc.PutGroup(ctx, "one-more", protocol.GroupRequest{})
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "at most 1000 allowed") {
		t.Errorf("the 1,001st group: %v, want a bad request naming the limit", err)
	}
	if _, err := f.svc.PutGroup(ctx, "g7", protocol.GroupRequest{Selector: map[string]string{"site": "lab"}}); err != nil {
		t.Errorf("replacing a group at the limit: %v", err)
	}
	for _, bad := range []struct{ name, field string }{{"", "name"}, {"-lead", "name"}, {"a\x1b[2J", "name"}} {
		if _, err := f.svc.PutGroup(ctx, bad.name, protocol.GroupRequest{}); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("group named %q: %v, want a bad request", bad.name, err)
		}
	}
	if _, err := f.svc.PutGroup(ctx, "g8", protocol.GroupRequest{Selector: map[string]string{"k": "v\u202e"}}); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "selector: labels.k") {
		t.Errorf("a selector with U+202E: %v, want a bad request naming selector: labels.k", err)
	}
}

// TestPhaseTarget: how many devices a phase reaches in all.
func TestPhaseTarget(t *testing.T) {
	for _, tc := range []struct {
		phase string
		total int
		want  int
	}{
		{"1", 10, 1}, {"5", 3, 3}, {"10%", 10, 1}, {"50%", 10, 5}, {"33%", 10, 4},
		{"100%", 10, 10}, {"1%", 1000, 10}, {"0.1%", 10, 1}, {"30%", 10, 3},
	} {
		if got := target(tc.phase, tc.total); got != tc.want {
			t.Errorf("target(%s of %d) = %d, want %d", tc.phase, tc.total, got, tc.want)
		}
	}
	// The same rollout picks the same devices in the same order; another
	// rollout spreads differently.
	var ds []store.DeviceRef
	for i := range 100 {
		ds = append(ds, store.DeviceRef{ID: fmt.Sprint("d", i), Name: fmt.Sprint("pi-", i)})
	}
	a, b, c := pick("r1", ds, nil, 10), pick("r1", ds, nil, 10), pick("r2", ds, nil, 10)
	if !slices.Equal(a, b) || slices.Equal(a, c) || len(a) != 10 {
		t.Errorf("pick r1 = %v, again %v, r2 %v", a, b, c)
	}
	have := map[string]bool{}
	for _, d := range a {
		have[d.ID] = true
	}
	next := pick("r1", ds, have, 15)
	if len(next) != 5 || slices.ContainsFunc(next, func(d store.DeviceRef) bool { return have[d.ID] }) {
		t.Errorf("the next 5 = %v, overlapping %v", next, a)
	}
}

// TestRolloutPauseReasonBounded: twelve devices fail at once, each with a
// 100 KB error (a device's own words, bounded only by a report's size): the
// pause reason names ten, each error cut, and counts the rest; the view
// cuts each device's error too.
func TestRolloutPauseReasonBounded(t *testing.T) {
	f := newOpsFleet(t)
	ctx := t.Context()
	if _, err := f.svc.Import(ctx, []advisory.Advisory{opsAdvisory("RFSA-R", advisory.Security, advisory.Important, "imp-lib", day0)}); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		f.enroll(t, fmt.Sprintf("pi-%02d", i), map[string]string{"site": "field"})
	}
	if _, err := f.svc.PutGroup(ctx, "field", protocol.GroupRequest{Selector: map[string]string{"site": "field"}}); err != nil {
		t.Fatal(err)
	}
	r, err := f.svc.CreateRollout(ctx, protocol.RolloutRequest{Advisory: "RFSA-R", Group: "field", Phases: []string{"100%"}, MaxFailureRate: 0.5}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("é", 50_000)
	for _, d := range r.Devices {
		f.reportPkgs(t, d.Device, "r1", opsPkgs, []protocol.CycleResult{{Advisories: []string{"RFSA-R"}, Outcome: protocol.OutcomeFailed, Error: huge}})
	}
	if err := f.svc.Step(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ = f.svc.RolloutView(ctx, r.ID)
	if r.State != protocol.RolloutPaused || len(r.Reason) > 4096 || !strings.HasSuffix(r.Reason, "; and 2 more") || !utf8.ValidString(r.Reason) {
		t.Errorf("reason (%d bytes) = %.300q..., state %s; want a paused rollout naming 10 devices and 2 more", len(r.Reason), r.Reason, r.State)
	}
	for _, d := range r.Devices {
		if len(d.Error) > maxCycleError+3 || !utf8.ValidString(d.Error) {
			t.Errorf("%s's error is %d bytes", d.Device, len(d.Error))
		}
	}
}

// TestSelectionOfTheWholeFleet: a selection that selects every device
// answers as the unselected queries do (summary, advisories, CVE), and
// one that selects a part counts that part alone: the selection's own
// queries are checked against the fleet's.
func TestSelectionOfTheWholeFleet(t *testing.T) {
	f := newOpsFleet(t)
	ctx := t.Context()
	advs := []advisory.Advisory{
		opsAdvisory("RFSA-C", advisory.Security, advisory.Critical, "crit-lib", day0.Add(-48*time.Hour)),
		opsAdvisory("RFSA-M", advisory.Security, advisory.Moderate, "mod-lib", day0),
		opsAdvisory("RFSA-I", advisory.Security, advisory.Important, "imp-lib", day0),
	}
	advs[0].CVEs = []string{"CVE-2026-0001"}
	if _, err := f.svc.Import(ctx, advs); err != nil {
		t.Fatal(err)
	}
	patched := slices.Clone(opsPkgs)
	patched[1] = lib("crit-lib", "1.1")
	for i := range 6 {
		site := "lab"
		if i%2 == 1 {
			site = "field"
		}
		n := fmt.Sprint("pi-", i)
		f.enroll(t, n, map[string]string{"site": site})
		switch i {
		case 2, 3:
			f.reportPkgs(t, n, "r1", patched, nil)
		case 4:
			f.reportPkgs(t, n, "r1", opsPkgs, []protocol.CycleResult{{Advisories: []string{"RFSA-M"}, Outcome: protocol.OutcomeFailed, Error: "no space"}})
		case 5:
			f.reportPkgs(t, n, "r1", patched, []protocol.CycleResult{{Advisories: []string{"RFSA-C"}, Outcome: protocol.OutcomeApplied, RebootNeeded: true}})
		}
	}
	if _, err := f.svc.PutGroup(ctx, "everyone", protocol.GroupRequest{}); err != nil {
		t.Fatal(err)
	}
	all := Selection{Group: "everyone"}
	wantSum, err := f.st.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gotSum, err := f.svc.Summary(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b *protocol.AdvisorySummary) bool {
		return a == nil && b == nil || a != nil && b != nil && fmt.Sprint(*a) == fmt.Sprint(*b)
	}
	if !same(gotSum.OldestUnpatchedCritical, wantSum.OldestUnpatchedCritical) || wantSum.OldestUnpatchedCritical == nil {
		t.Errorf("oldest unpatched critical of everyone = %+v, want the fleet's %+v", gotSum.OldestUnpatchedCritical, wantSum.OldestUnpatchedCritical)
	}
	gotSum.OldestUnpatchedCritical, wantSum.OldestUnpatchedCritical = nil, nil
	if fmt.Sprint(gotSum) != fmt.Sprint(wantSum) {
		t.Errorf("summary of everyone =\n%+v\nwant the fleet's\n%+v", gotSum, wantSum)
	}
	wantAdv, _ := f.svc.Advisories(ctx, advisory.SeverityNone, Selection{})
	gotAdv, err := f.svc.Advisories(ctx, advisory.SeverityNone, all)
	if err != nil || fmt.Sprint(gotAdv) != fmt.Sprint(wantAdv) {
		t.Errorf("advisories of everyone =\n%+v (%v)\nwant the fleet's\n%+v", gotAdv, err, wantAdv)
	}
	wantCVE, _ := f.st.CVE(ctx, "CVE-2026-0001")
	gotCVE, err := f.svc.CVE(ctx, "CVE-2026-0001", all, "", 0)
	if err != nil || fmt.Sprint(gotCVE) != fmt.Sprint(wantCVE) || len(wantCVE.Exposed) == 0 || len(wantCVE.Patched) == 0 {
		t.Errorf("CVE of everyone = %+v (%v), want the fleet's %+v", gotCVE, err, wantCVE)
	}

	// The field devices alone: pi-1, exposed to RFSA-C; pi-3 and pi-5,
	// patched against it (pi-5 by a cycle, its reboot done).
	field := Selection{Labels: map[string]string{"site": "field"}}
	sum, err := f.svc.Summary(ctx, field)
	if err != nil || sum.Devices != 3 || sum.ExposedBySeverity["Critical"] != 1 || sum.ExposedBySeverity["Important"] != 2 || sum.OldestUnpatchedCritical == nil ||
		sum.OldestUnpatchedCritical.ID != "RFSA-C" || sum.OldestUnpatchedCritical.Affected != 1 {
		t.Errorf("summary of site=field = %+v (%v)", sum, err)
	}
	as, err := f.svc.Advisories(ctx, advisory.SeverityNone, field)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.ID == "RFSA-C" && (a.Affected != 1 || a.Patched != 2 || a.PendingReboot != 0 || a.Failed != 0 || a.CVEs[0] != "CVE-2026-0001") {
			t.Errorf("RFSA-C over site=field = %+v, want 1 affected, 2 patched", a)
		}
	}
	cve, err := f.svc.CVE(ctx, "CVE-2026-0001", field, "", 0)
	if err != nil || len(cve.Exposed) != 1 || cve.Exposed[0].Device != "pi-1" || len(cve.Patched) != 2 {
		t.Errorf("CVE over site=field = %+v (%v), want pi-1 exposed, pi-3 and pi-5 patched", cve, err)
	}
	// Labels that contradict the group select nothing.
	none := Selection{Group: "everyone", Labels: map[string]string{"site": "moon"}}
	if ds, err := f.svc.Devices(ctx, none, ""); err != nil || len(ds) != 0 {
		t.Errorf("devices of site=moon = %v, %v", ds, err)
	}
	if _, err := f.svc.Devices(ctx, Selection{Group: "nope"}, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unknown group: %v, want ErrNotFound", err)
	}
}

// TestNudgePendingOnNewLeader: a leader that stepped a rollout may die
// before its nudges reach the phase's devices (TestFaultReplicaKilledDuringRolloutPhase
// stalled so: the added device's MQTT session was up on a live replica,
// so it polled only every 12 h). The next leader's RunRollouts nudges
// again the current phase's devices without a result, and only those.
func TestNudgePendingOnNewLeader(t *testing.T) {
	f := newOpsFleet(t)
	ctx := t.Context()
	adv := opsAdvisory("RFSA-N", advisory.Security, advisory.Important, "imp-lib", day0)
	if _, err := f.svc.Import(ctx, []advisory.Advisory{adv}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		f.enroll(t, fmt.Sprintf("pi-%d", i), map[string]string{"site": "field"})
	}
	if _, err := f.svc.PutGroup(ctx, "field", protocol.GroupRequest{Selector: map[string]string{"site": "field"}}); err != nil {
		t.Fatal(err)
	}
	r, err := f.svc.CreateRollout(ctx, protocol.RolloutRequest{Advisory: "RFSA-N", Group: "field", Phases: []string{"1", "50%"}, Soak: "1s"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	canary := r.Devices[0].Device
	fixed := slices.Clone(opsPkgs)
	fixed[3] = lib("imp-lib", "1.1")
	f.clock.Add(time.Minute)
	f.reportPkgs(t, canary, "r1", fixed, []protocol.CycleResult{{Advisories: []string{"RFSA-N"}, Outcome: protocol.OutcomeApplied}})
	f.clock.Add(time.Minute)
	if err := f.svc.Step(ctx); err != nil {
		t.Fatal(err)
	}
	r, err = f.svc.RolloutView(ctx, r.ID)
	if err != nil || r.Phase != 1 {
		t.Fatalf("after the step: %+v, %v; want phase 2", r, err)
	}
	var second []string
	for _, d := range r.Devices {
		if d.Phase == 1 {
			second = append(second, protocol.DeviceCommandTopic(f.ids[d.Device]))
		}
	}
	if len(second) != 1 {
		t.Fatalf("phase 2 devices %v, want 1", second)
	}
	f.pub.take() // the old leader's nudges: say they were lost with it

	// A new leader takes over.
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { f.svc.RunRollouts(lctx, nil); close(done) }()
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for len(got) == 0 && time.Now().Before(deadline) {
		for _, m := range f.pub.take() {
			got = append(got, m.topic)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if !slices.Equal(got, second) {
		t.Errorf("the new leader nudged %v, want the pending phase-2 device %v (not the canary, which applied)", got, second)
	}
}
