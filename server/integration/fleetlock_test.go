package integration

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres/pgtest"
)

// httpDevice is a device enrolled over HTTP, as an agent would, for the
// tests that need its credential and nothing of the agent.
type httpDevice struct {
	name, id, credential string
	key                  ed25519.PublicKey
}

func enrollHTTP(t *testing.T, srv *server, names ...string) map[string]httpDevice {
	t.Helper()
	admin := adminEnv(srv)
	tok := strings.TrimSpace(must(t, admin, "rpmfleet", "enroll-token", "create", "--uses", fmt.Sprint(len(names))).stdout)
	out := map[string]httpDevice{}
	for _, n := range names {
		var resp protocol.EnrollResponse
		if code, raw := call(t, "POST", srv.url+protocol.PathEnroll, "", protocol.EnrollRequest{Token: tok, Name: n,
			Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64", Hostname: n}}, &resp); code != 200 {
			t.Fatalf("enrol %s: %d %s", n, code, raw)
		}
		out[n] = httpDevice{name: n, id: resp.DeviceID, credential: resp.Credential, key: resp.NoticeKey}
	}
	return out
}

// curlFleetLock sends what the FleetLock specification's example sends:
//
//	curl -H "fleet-lock-protocol: true" -d @body.json http://example.com/base/v1/pre-reboot
//
// (curl -d posts the file as application/x-www-form-urlencoded), with
// -H "Authorization: Bearer CREDENTIAL" when a credential is given.
func curlFleetLock(t *testing.T, url, credential, body string) (int, protocol.FleetLockError) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("fleet-lock-protocol", "true")
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e protocol.FleetLockError
	if resp.StatusCode != 200 {
		if err := json.Unmarshal(raw, &e); err != nil || e.Kind == "" || e.Value == "" {
			t.Errorf("%d answer %q is not the specification's error (kind and value, non-empty strings)", resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, e
}

// specBody is the specification's example body, its group and id replaced.
func specBody(group, id string) string {
	return fmt.Sprintf("{\n  \"client_params\": {\n    \"group\": %q,\n    \"id\": %q\n  }\n}\n", group, id)
}

// TestFleetLockRealServer: the real server answers FleetLock requests
// written as the specification's example; five devices asking at once for
// the one slot never both get it; a device that dies mid-reboot holds its
// slot until an operator releases it (rpmfleet fleetlock release) or its
// timeout passes; the audit log lists the locks, unlocks and the release.
func TestFleetLockRealServer(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "server.toml")
	if err := os.WriteFile(cfg, []byte("[fleetlock]\nslots = 1\ntimeout = \"2s\"\n[fleetlock.groups]\nworkers = 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, filepath.Join(dir, "data"), "--config", cfg)
	dumpOnFailure(t, srv)
	admin := adminEnv(srv)
	names := []string{"pi-1", "pi-2", "pi-3", "pi-4", "pi-5"}
	devs := enrollHTTP(t, srv, names...)
	pre, steady := srv.url+protocol.PathPreReboot, srv.url+protocol.PathSteadyState

	// The specification's own example client, with no credential: this
	// server wants a device's (docs/api.md says why).
	if code, e := curlFleetLock(t, pre, "", specBody("default", "c988d2509fdf5cdcbed39037c56406fb")); code != 401 || e.Kind != protocol.FleetLockUnauthorized {
		t.Errorf("the spec's example without a credential: %d %+v, want 401 unauthorized", code, e)
	}
	if code, e := curlFleetLock(t, pre, devs["pi-1"].credential, specBody("default", "c988d2509fdf5cdcbed39037c56406fb")); code != 403 || e.Kind != protocol.FleetLockForbidden {
		t.Errorf("pi-1's credential for another id: %d %+v, want 403 forbidden", code, e)
	}
	// Its id may be its name or its server id.
	if code, e := curlFleetLock(t, pre, devs["pi-1"].credential, specBody("workers", devs["pi-1"].id)); code != 200 {
		t.Errorf("pi-1 by its id in workers: %d %+v", code, e)
	}
	if code, e := curlFleetLock(t, steady, devs["pi-1"].credential, specBody("workers", "pi-1")); code != 200 {
		t.Errorf("pi-1 unlocks workers: %d %+v", code, e)
	}

	// Five clients, one slot, twenty rounds.
	for round := range 20 {
		var mu sync.Mutex
		var holders []string
		var wg sync.WaitGroup
		for _, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, e := curlFleetLock(t, pre, devs[n].credential, specBody("default", n))
				switch {
				case code == 200:
					mu.Lock()
					holders = append(holders, n)
					mu.Unlock()
				case code != 409 || e.Kind != protocol.FleetLockFull:
					t.Errorf("%s: %d %+v, want 200 or 409 failed_lock_semaphore_full", n, code, e)
				}
			}()
		}
		wg.Wait()
		if len(holders) != 1 {
			t.Fatalf("round %d: %v hold the one slot at once", round, holders)
		}
		if code, e := curlFleetLock(t, steady, devs[holders[0]].credential, specBody("default", holders[0])); code != 200 {
			t.Fatalf("round %d: %s unlocks: %d %+v", round, holders[0], code, e)
		}
	}

	// pi-3 takes the slot and dies mid-reboot: it never says it is steady.
	if code, e := curlFleetLock(t, pre, devs["pi-3"].credential, specBody("default", "pi-3")); code != 200 {
		t.Fatalf("pi-3 locks: %d %+v", code, e)
	}
	if code, e := curlFleetLock(t, pre, devs["pi-4"].credential, specBody("default", "pi-4")); code != 409 || e.Kind != protocol.FleetLockFull {
		t.Errorf("pi-4 while pi-3 holds the slot: %d %+v, want 409 failed_lock_semaphore_full", code, e)
	}
	if out := must(t, admin, "rpmfleet", "fleetlock", "list").stdout; !strings.Contains(out, "pi-3") {
		t.Errorf("rpmfleet fleetlock list:\n%s\nwant pi-3's slot", out)
	}
	must(t, admin, "rpmfleet", "fleetlock", "release", "default", "pi-3")
	if code, e := curlFleetLock(t, pre, devs["pi-4"].credential, specBody("default", "pi-4")); code != 200 {
		t.Errorf("pi-4 after the release: %d %+v", code, e)
	}
	// pi-4 dies too; nobody releases it: its slot frees itself after the
	// 2 s timeout.
	taken := time.Now()
	waitFor(t, 10*time.Second, "pi-4's slot to time out", func() (bool, string) {
		code, e := curlFleetLock(t, pre, devs["pi-5"].credential, specBody("default", "pi-5"))
		return code == 200, fmt.Sprintf("%d %s", code, e.Kind)
	})
	if held := time.Since(taken); held < 2*time.Second {
		t.Errorf("pi-5 took pi-4's slot after %v, before its 2 s timeout", held)
	}

	var audit []protocol.AuditEntry
	out := must(t, admin, "rpmfleet", "audit", "--limit", "1000", "--json")
	if err := json.Unmarshal([]byte(out.stdout), &audit); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range audit {
		count[e.Action]++
		if e.Action == "fleetlock.release" && (e.Target != "default/pi-3" || e.Status != 204 || e.Actor != "initial-admin") {
			t.Errorf("release entry = %+v", e)
		}
	}
	if count["fleetlock.lock"] != 24 || count["fleetlock.unlock"] != 21 || count["fleetlock.release"] != 1 {
		t.Errorf("audit counts = %v, want 24 locks, 21 unlocks, 1 release", count)
	}
}

// TestApproveAfterDaysRealServer: the real server's plans follow a group
// policy's approve-after-days against its own clock: advisories are
// written with issue dates relative to now (a Critical one an hour old, a
// Moderate one three days old and another ten days old, an Important
// one), the policy lets Critical out at once and Moderate after 7 days;
// the Important one goes out when an operator approves it (rpmfleet
// approve). A device outside the group gets all four.
func TestApproveAfterDaysRealServer(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, filepath.Join(dir, "data"))
	dumpOnFailure(t, srv)
	admin := adminEnv(srv)
	now := time.Now().UTC()
	type adv struct {
		id  string
		sev advisory.Severity
		age time.Duration
		pkg string
	}
	advs := []adv{
		{"RFSA-2026:9001", advisory.Critical, time.Hour, "crit-lib"},
		{"RFSA-2026:9002", advisory.Moderate, 3 * 24 * time.Hour, "mod-new-lib"},
		{"RFSA-2026:9003", advisory.Moderate, 10 * 24 * time.Hour, "mod-old-lib"},
		{"RFSA-2026:9004", advisory.Important, time.Hour, "imp-lib"},
	}
	var ui bytes.Buffer
	w := updateinfo.NewWriter(&ui)
	pkgs := []protocol.Package{{Name: "almalinux-release", Version: "9.2", Release: "1.el9", Arch: "aarch64"}}
	for _, a := range advs {
		if err := w.Write(&advisory.Advisory{ID: a.id, Type: advisory.Security, Severity: a.sev, Title: a.id, Issued: now.Add(-a.age).Truncate(time.Second),
			Packages: []advisory.Package{{Name: a.pkg, EVR: rpmver.MustParseEVR("1.1-1.el9"), Arch: "aarch64"}}}); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, protocol.Package{Name: a.pkg, Version: "1.0", Release: "1.el9", Arch: "aarch64"})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	uiPath := filepath.Join(dir, "updateinfo.xml")
	if err := os.WriteFile(uiPath, ui.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, admin, "rpmfleet", "import", uiPath)
	devs := enrollHTTP(t, srv, "edge-1", "lab-1")
	for _, d := range devs {
		rep := protocol.Report{ID: "r1", Time: now, Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64", Hostname: d.name},
			Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}
		if code, raw := call(t, "POST", srv.url+protocol.PathReport, d.credential, rep, nil); code != 200 {
			t.Fatalf("report %s: %d %s", d.name, code, raw)
		}
	}
	must(t, admin, "rpmfleet", "labels", "edge-1", "ring=prod")
	must(t, admin, "rpmfleet", "group", "set", "prod", "ring=prod")
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"mode": "apply", "approve_after_days": {"Critical": 0, "Moderate": 7},
		"windows": [{"days": ["sat-sun"], "start": "02:30", "length": "3h", "timezone": "America/New_York"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, admin, "rpmfleet", "group", "policy", "prod", policy)
	if r := run(t, admin, "rpmfleet", "group", "policy", "prod", writeFile(t, dir, "bad.json", `{"mode": "apply", "windows": [{"days": ["mon"], "start": "02:00", "length": "1h", "timezone": "Mars/Olympus"}]}`)); r.code == 0 || !strings.Contains(r.stderr, "policy.windows[0].timezone") {
		t.Errorf("a policy with an unknown zone: exit %d, %s; want a refusal naming policy.windows[0].timezone", r.code, r.stderr)
	}

	planIDs := func(d httpDevice) ([]string, *protocol.Policy) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.url+protocol.PathPlan, nil)
		req.Header.Set("Authorization", "Bearer "+d.credential)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		v, err := notice.NewVerifier(notice.VerifierOptions{Keys: []ed25519.PublicKey{d.key}})
		if err != nil {
			t.Fatal(err)
		}
		n, err := v.Verify(msg, notice.KindPlan, d.id)
		if err != nil {
			t.Fatalf("%s's plan: %v (%s)", d.name, err, msg)
		}
		var p protocol.Plan
		if err := json.Unmarshal(n.Body, &p); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range p.Advisories {
			ids = append(ids, a.ID)
		}
		slices.Sort(ids)
		return ids, p.Policy
	}
	got, pol := planIDs(devs["edge-1"])
	if want := []string{"RFSA-2026:9001", "RFSA-2026:9003"}; !slices.Equal(got, want) {
		t.Errorf("edge-1's plan = %v, want %v (Critical at once, Moderate after 7 days)", got, want)
	}
	if pol == nil || pol.Group != "prod" || len(pol.Windows) != 1 || pol.Windows[0].Timezone != "America/New_York" {
		t.Errorf("edge-1's plan policy = %+v", pol)
	}
	if got, pol := planIDs(devs["lab-1"]); len(got) != 4 || pol != nil {
		t.Errorf("lab-1's plan = %v (policy %+v), want all four and no policy", got, pol)
	}
	must(t, admin, "rpmfleet", "approve", "RFSA-2026:9004")
	if got, _ := planIDs(devs["edge-1"]); !slices.Equal(got, []string{"RFSA-2026:9001", "RFSA-2026:9003", "RFSA-2026:9004"}) {
		t.Errorf("edge-1's plan after approving RFSA-2026:9004 = %v", got)
	}
	// The group's view: one device, four advisories affecting it.
	var sum protocol.Summary
	if err := json.Unmarshal([]byte(must(t, admin, "rpmfleet", "summary", "--group", "prod", "--json").stdout), &sum); err != nil || sum.Devices != 1 {
		t.Errorf("summary --group prod = %+v, %v", sum, err)
	}
	out := must(t, admin, "rpmfleet", "audit", "--json").stdout
	for _, a := range []string{"import", "device.labels", "group.put", "policy.put", "advisory.approve"} {
		if !strings.Contains(out, `"action": "`+a+`"`) {
			t.Errorf("the audit log lacks %s", a)
		}
	}
	if !strings.Contains(out, "policy.windows[0].timezone") {
		t.Errorf("the audit log lacks the refused policy's error")
	}
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFleetLockTwoServersOnePostgres: two real servers share one
// PostgreSQL (replicas behind a load balancer); five devices ask for the
// one slot at once, some through each server, twenty rounds: never two
// holders, and a slot taken through one server is freed through the other.
func TestFleetLockTwoServersOnePostgres(t *testing.T) {
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatalf("start PostgreSQL (run make deps): %v", err)
	}
	t.Cleanup(func() { pg.Stop() })
	db := pg.NewDatabase(t)
	a := startServer(t, filepath.Join(t.TempDir(), "a"), "--db", db, "--mqtt-listen", "off")
	b := startServer(t, filepath.Join(t.TempDir(), "b"), "--db", db, "--mqtt-listen", "off")
	dumpOnFailure(t, a)
	dumpOnFailure(t, b)
	names := []string{"pi-1", "pi-2", "pi-3", "pi-4", "pi-5"}
	devs := enrollHTTP(t, a, names...)
	servers := []*server{a, b}
	for round := range 20 {
		var mu sync.Mutex
		var holders []string
		via := map[string]int{}
		var wg sync.WaitGroup
		for i, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := (i + round) % 2
				code, e := curlFleetLock(t, servers[k].url+protocol.PathPreReboot, devs[n].credential, specBody("default", n))
				switch {
				case code == 200:
					mu.Lock()
					holders = append(holders, n)
					via[n] = k
					mu.Unlock()
				case code != 409 || e.Kind != protocol.FleetLockFull:
					t.Errorf("%s: %d %+v", n, code, e)
				}
			}()
		}
		wg.Wait()
		if len(holders) != 1 {
			t.Fatalf("round %d: %v hold the one slot at once", round, holders)
		}
		h := holders[0]
		other := servers[1-via[h]]
		if code, e := curlFleetLock(t, other.url+protocol.PathSteadyState, devs[h].credential, specBody("default", h)); code != 200 {
			t.Fatalf("round %d: %s unlocks through the other server: %d %+v", round, h, code, e)
		}
	}
	var slots []protocol.FleetLockSlot
	if code, raw := call(t, "GET", b.url+protocol.PathFleetLock, a.admin, nil, &slots); code != 200 || len(slots) != 0 {
		t.Errorf("slots after the rounds: %d %s, want none held", code, raw)
	}
}
