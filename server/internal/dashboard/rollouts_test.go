package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// The rollout pages are tested over real rollouts of the fleet service on
// the real SQLite store: pi-kitchen and pi-hall (both exposed to
// CVE-2023-2650 through ALSA-2023:3722) form the group "field"; a rollout
// of ALSA-2023:3722 to it, allowing no failure, pauses itself once
// pi-kitchen reports a failed cycle.

// cycleError is what pi-kitchen's failed cycle says: a device's words,
// with markup that must reach the page escaped.
const cycleError = `rpm -U: <script>alert("owned")</script> needs 12 MB on /usr`

// pausedRollout sets the scene above and returns the paused rollout.
func pausedRollout(t *testing.T, e *env) protocol.Rollout {
	t.Helper()
	ctx := context.Background()
	kitchen := e.enroll(t, "pi-kitchen", map[string]string{"site": "field"}, alma92, kitchenPackages)
	e.enroll(t, "pi-hall", map[string]string{"site": "field"}, alma92, kitchenPackages)
	if _, err := e.svc.PutGroup(ctx, "field", protocol.GroupRequest{Selector: map[string]string{"site": "field"}}); err != nil {
		t.Fatal(err)
	}
	r, err := e.svc.CreateRollout(ctx, protocol.RolloutRequest{Advisory: "ALSA-2023:3722", Group: "field", Phases: []string{"100%"}, Soak: "1h"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != protocol.RolloutRunning || r.Total != 2 {
		t.Fatalf("new rollout = %s with %d devices, want running with 2", r.State, r.Total)
	}
	now := time.Now().UTC()
	rep := &protocol.Report{ID: "r2", Time: now, Device: alma92,
		Cycles: []protocol.CycleResult{{ID: 1, Advisories: []string{"ALSA-2023:3722"}, Outcome: protocol.OutcomeFailed,
			Error: cycleError, Started: now.Add(-time.Minute), Finished: now}},
		Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: kitchenPackages, Digest: protocol.InventoryDigest(kitchenPackages)}}
	if _, err := e.svc.Report(ctx, kitchen, rep); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Step(ctx); err != nil {
		t.Fatal(err)
	}
	r, err = e.svc.RolloutView(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != protocol.RolloutPaused {
		t.Fatalf("after pi-kitchen's failure the rollout is %s, want paused", r.State)
	}
	return r
}

func (e *env) rolloutState(t *testing.T, id string) protocol.RolloutState {
	t.Helper()
	r, err := e.st.Rollout(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r.State
}

func TestRolloutListPagesSortsAndFilters(t *testing.T) {
	e := newEnv(t, false)
	paused := pausedRollout(t, e)
	// A second rollout, newer and running, to the whole fleet.
	ctx := context.Background()
	if _, err := e.svc.PutGroup(ctx, "all", protocol.GroupRequest{}); err != nil {
		t.Fatal(err)
	}
	running, err := e.svc.CreateRollout(ctx, protocol.RolloutRequest{Advisory: protocol.AllPendingSecurity, Group: "all", MaxFailureRate: 0.25}, "alice")
	if err != nil {
		t.Fatal(err)
	}

	b := e.browser(t)
	b.login(protocol.RoleReadOnly)
	code, body, _ := b.get("/")
	if code != http.StatusOK || !strings.Contains(body, `<a href="/rollouts"`) {
		t.Errorf("the overview (%d) has no Rollouts nav entry", code)
	}
	code, body, _ = b.get("/rollouts")
	if code != http.StatusOK {
		t.Fatalf("/rollouts = %d\n%s", code, body)
	}
	rows := tableRows(t, body, "rollouts")
	if len(rows) != 2 {
		t.Fatalf("/rollouts lists %d rollouts, want 2:\n%q", len(rows), rows)
	}
	// Newest first by default.
	if !strings.Contains(rows[0], running.ID) || !strings.Contains(rows[1], paused.ID) {
		t.Errorf("rollouts not newest first: %q", rows)
	}
	for _, want := range []string{"ALSA-2023:3722", "field", "paused", "1 of 1 (100%)", "0 of 2 (0.0%)", "50.0% (1 of 2; gate 0.0%)", `class="num over"`} {
		if !strings.Contains(rows[1], want) {
			t.Errorf("the paused rollout's row lacks %q:\n%s", want, rows[1])
		}
	}
	nAdv := len(running.Advisories)
	for _, want := range []string{"all security (", "security advisories)", "running", "1 of 4 (1)", "gate 25.0%"} {
		if !strings.Contains(rows[0], want) {
			t.Errorf("the all-security rollout's row (%d advisories) lacks %q:\n%s", nAdv, want, rows[0])
		}
	}
	// Sorted by group, both ways.
	_, body, _ = b.get("/rollouts?sort=group&order=asc")
	if rows := tableRows(t, body, "rollouts"); len(rows) != 2 || !strings.Contains(rows[0], running.ID) {
		t.Errorf("sorted by group ascending, \"all\" is not first: %q", rows)
	}
	_, body, _ = b.get("/rollouts?sort=group&order=desc")
	if rows := tableRows(t, body, "rollouts"); len(rows) != 2 || !strings.Contains(rows[0], paused.ID) {
		t.Errorf("sorted by group descending, \"field\" is not first: %q", rows)
	}
	// Filtered by state.
	_, body, _ = b.get("/rollouts?state=paused")
	if rows := tableRows(t, body, "rollouts"); len(rows) != 1 || !strings.Contains(rows[0], paused.ID) {
		t.Errorf("?state=paused lists %q, want the paused rollout only", rows)
	}
	_, body, _ = b.get("/rollouts?state=completed")
	if rows := tableRows(t, body, "rollouts"); len(rows) != 1 || !strings.Contains(rows[0], "No rollouts") {
		t.Errorf("?state=completed lists %q, want none", rows)
	}
	for _, bad := range []string{"/rollouts?state=%3Cb%3E", "/rollout", "/rollout?result=nope&id=" + paused.ID} {
		if code, _, _ := b.get(bad); code != http.StatusBadRequest {
			t.Errorf("%s = %d, want 400", bad, code)
		}
	}
	if code, _, _ := b.get("/rollout?id=no-such-rollout"); code != http.StatusNotFound {
		t.Errorf("an unknown rollout's page = %d, want 404", code)
	}
}

func TestPausedRolloutPageShowsTheFailingDeviceAndItsError(t *testing.T) {
	e := newEnv(t, false)
	r := pausedRollout(t, e)
	path := "/rollout?id=" + url.QueryEscape(r.ID)

	op := e.browser(t)
	op.login(protocol.RoleOperator)
	code, body, _ := op.get(path)
	if code != http.StatusOK {
		t.Fatalf("%s = %d\n%s", path, code, body)
	}
	failing := tableRows(t, body, "rollout-failing")
	if len(failing) != 1 {
		t.Fatalf("failing devices = %q, want pi-kitchen alone", failing)
	}
	escaped := `rpm -U: &lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt; needs 12 MB on /usr`
	for _, want := range []string{`<a href="/device?name=pi-kitchen">pi-kitchen</a>`, escaped} {
		if !strings.Contains(failing[0], want) {
			t.Errorf("the failing row lacks %q:\n%s", want, failing[0])
		}
	}
	if strings.Contains(body, "<script") {
		t.Errorf("the device's cycle error reached the page unescaped")
	}
	// Its forms hold no inline code and post to this server only; the
	// policy is the one every page has.
	if regexp.MustCompile(`\s(?:on[a-z]+|style)=`).MatchString(body) {
		t.Errorf("the rollout page holds an inline style or an event handler")
	}
	for _, m := range regexp.MustCompile(`(?:href|src|action)="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		if !strings.HasPrefix(m[1], "/") || strings.HasPrefix(m[1], "//") {
			t.Errorf("the rollout page refers to %q, outside the server", m[1])
		}
	}
	if _, _, resp := op.get(path); !strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("the rollout page's CSP = %q", resp.Header.Get("Content-Security-Policy"))
	}
	if !strings.Contains(body, `<span class="tag">paused</span> phase 1: 1 of 2 devices failed`) {
		t.Errorf("the page does not say the rollout paused itself and why:\n%s", body)
	}
	// The phase table counts the phase's devices by result.
	phases := tableRows(t, body, "rollout-phases")
	if len(phases) != 1 || !strings.Contains(phases[0], `<td>100%</td><td class="num">2</td><td class="num">1</td><td class="num">0</td><td class="num">1</td><td class="num">0</td>`) {
		t.Errorf("phases = %q, want one phase of 2 devices: 1 pending, 1 failed", phases)
	}
	if !strings.Contains(body, "soak 1h0m0s (until ") || !strings.Contains(body, "above the gate") {
		t.Errorf("the gates are not shown:\n%s", body)
	}
	// The device list filters by result.
	_, body2, _ := op.get(path + "&result=pending")
	if rows := tableRows(t, body2, "rollout-devices"); len(rows) != 1 || !strings.Contains(rows[0], "pi-hall") {
		t.Errorf("pending devices = %q, want pi-hall", rows)
	}
	// A paused rollout offers resume, approve and abort, not pause.
	for _, a := range []string{"resume", "approve", "abort"} {
		if !strings.Contains(body, `action="/rollout/`+a+`"`) {
			t.Errorf("the operator is not offered %s", a)
		}
	}
	if strings.Contains(body, `action="/rollout/pause"`) {
		t.Errorf("a paused rollout offers pause")
	}
	if !strings.Contains(body, "Approve as completed") {
		t.Errorf("approving a rollout on its last phase is not shown as completing it")
	}

	ro := e.browser(t)
	ro.login(protocol.RoleReadOnly)
	_, body, _ = ro.get(path)
	if strings.Contains(body, `action="/rollout/`) || !strings.Contains(body, "pi-kitchen") {
		t.Errorf("a read-only session is offered rollout actions, or does not see the failing device")
	}
}

func TestOperatorPausesAndResumesARolloutInTheAuditLog(t *testing.T) {
	e := newEnv(t, false)
	r := pausedRollout(t, e)
	op := e.browser(t)
	op.login(protocol.RoleOperator)
	path := "/rollout?id=" + url.QueryEscape(r.ID)
	form := url.Values{"id": {r.ID}, "csrf": {op.csrf(path)}}

	code, _, resp := op.post("/rollout/resume", form)
	if code != http.StatusSeeOther || resp.Header.Get("Location") != path {
		t.Fatalf("resume = %d to %q, want 303 to the rollout", code, resp.Header.Get("Location"))
	}
	if s := e.rolloutState(t, r.ID); s != protocol.RolloutRunning {
		t.Fatalf("after resume the rollout is %s, want running", s)
	}
	_, body, _ := op.get(path)
	if !strings.Contains(body, `<span class="tag">running</span>`) || !strings.Contains(body, `action="/rollout/pause"`) {
		t.Errorf("the resumed rollout's page does not say running or offer pause")
	}
	if code, _, _ := op.post("/rollout/pause", form); code != http.StatusSeeOther {
		t.Fatalf("pause = %d, want 303", code)
	}
	if s := e.rolloutState(t, r.ID); s != protocol.RolloutPaused {
		t.Fatalf("after pause the rollout is %s, want paused", s)
	}
	// Pausing a paused rollout is refused with the fleet's reason.
	code, body, _ = op.post("/rollout/pause", form)
	if code != http.StatusConflict || !strings.Contains(body, "cannot pause a rollout that is paused") {
		t.Errorf("pausing again = %d, want 409 saying why:\n%s", code, body)
	}
	// Abort and approve cannot be undone: they need the box ticked.
	for _, a := range []string{"abort", "approve"} {
		if code, _, _ := op.post("/rollout/"+a, form); code != http.StatusBadRequest {
			t.Errorf("%s unconfirmed = %d, want 400", a, code)
		}
	}
	if s := e.rolloutState(t, r.ID); s != protocol.RolloutPaused {
		t.Fatalf("after refused actions the rollout is %s, want paused", s)
	}

	ctx := context.Background()
	var got []string
	for _, a := range []string{"rollout.resume", "rollout.pause", "rollout.abort", "rollout.approve"} {
		log, err := e.svc.AuditLog(ctx, store.AuditFilter{Action: a})
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range log {
			if en.Target != r.ID || en.Actor != "t-operator" || en.Role != protocol.RoleOperator {
				t.Errorf("audit entry %+v is not the operator's on %s", en, r.ID)
			}
			got = append(got, a+" "+http.StatusText(en.Status))
		}
	}
	want := []string{"rollout.resume OK", "rollout.pause Conflict", "rollout.pause OK"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("audit log holds %q, want %q (newest first per action; refused unconfirmed forms not at all)", got, want)
	}
}

// An operator aborts the paused rollout (ticking the box); then its group
// is deleted, which an ended rollout allows: the list and its page still
// show it, saying where its devices stand is unknown, not "no such
// rollout".
func TestAbortedRolloutOutlivesItsGroup(t *testing.T) {
	e := newEnv(t, false)
	r := pausedRollout(t, e)
	op := e.browser(t)
	op.login(protocol.RoleOperator)
	path := "/rollout?id=" + url.QueryEscape(r.ID)
	form := url.Values{"id": {r.ID}, "csrf": {op.csrf(path)}, "confirm": {"yes"}}
	if code, body, _ := op.post("/rollout/abort", form); code != http.StatusSeeOther {
		t.Fatalf("abort = %d\n%s", code, body)
	}
	if s := e.rolloutState(t, r.ID); s != protocol.RolloutAborted {
		t.Fatalf("after abort the rollout is %s, want aborted", s)
	}
	_, body, _ := op.get(path)
	if strings.Contains(body, `action="/rollout/`) {
		t.Errorf("an aborted rollout still offers actions")
	}
	if !strings.Contains(body, "aborted by an admin") || len(tableRows(t, body, "rollout-failing")) != 1 {
		t.Errorf("the aborted rollout's page does not say why, or lost its failing device:\n%s", body)
	}
	if err := e.svc.DeleteGroup(context.Background(), "field"); err != nil {
		t.Fatal(err)
	}
	code, body, _ := op.get("/rollouts")
	rows := tableRows(t, body, "rollouts")
	if code != http.StatusOK || len(rows) != 1 || !strings.Contains(rows[0], r.ID) || !strings.Contains(rows[0], "unknown: its group was deleted") {
		t.Errorf("/rollouts = %d %q, want the aborted rollout with its progress unknown", code, rows)
	}
	code, body, _ = op.get(path)
	if code != http.StatusOK || !strings.Contains(body, "since deleted") || !strings.Contains(body, "aborted by an admin") {
		t.Errorf("the rollout's page without its group = %d\n%s", code, body)
	}
}

func TestRolloutActionsNeedAnOperatorAndTheFormsCSRFToken(t *testing.T) {
	e := newEnv(t, false)
	r := pausedRollout(t, e)
	path := "/rollout?id=" + url.QueryEscape(r.ID)
	ro := e.browser(t)
	ro.login(protocol.RoleReadOnly)
	roCSRF := ro.csrf(path) // the logout form's
	op := e.browser(t)
	op.login(protocol.RoleOperator)
	opCSRF := op.csrf(path)
	form := func(csrf string) url.Values { return url.Values{"id": {r.ID}, "csrf": {csrf}} }
	for _, tc := range []struct {
		name string
		b    *browser
		form url.Values
		hdr  []string
		code int
	}{
		{"read-only with its own token", ro, form(roCSRF), nil, http.StatusForbidden},
		{"operator without the token", op, url.Values{"id": {r.ID}}, nil, http.StatusForbidden},
		{"operator with another session's token", op, form(roCSRF), nil, http.StatusForbidden},
		{"operator, sent from another site", op, form(opCSRF), []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"no session at all", e.browser(t), form(opCSRF), nil, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := tc.b.post("/rollout/resume", tc.form, tc.hdr...)
			if code != tc.code {
				t.Errorf("resume = %d, want %d\n%s", code, tc.code, body)
			}
			if s := e.rolloutState(t, r.ID); s != protocol.RolloutPaused {
				t.Fatalf("the rollout was moved to %s", s)
			}
		})
	}
	log, err := e.svc.AuditLog(context.Background(), store.AuditFilter{Action: "rollout.resume"})
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 0 {
		t.Errorf("refused attempts are in the audit log as resumes: %+v", log)
	}
}

// tableRows returns the <tr> elements of the body of the table with id.
func tableRows(t *testing.T, body, id string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(body, `<table class="list" id="`+id+`">`)
	if !ok {
		t.Fatalf("no table %s in the page:\n%s", id, body)
	}
	rest, _, _ = strings.Cut(rest, "</table>")
	_, rest, _ = strings.Cut(rest, "<tbody>")
	var rows []string
	for _, part := range strings.Split(rest, "<tr")[1:] {
		row, _, _ := strings.Cut(part, "</tr>")
		rows = append(rows, row)
	}
	return rows
}
