package integration

// The daemon's end-to-end tests (issue 5): the real rpmfleet-server with its
// embedded MQTT broker, real rpmfleet-agent run processes on device roots
// whose rpm databases the real rpm wrote, a signed repository over HTTP.
// mosquitto_test.go tells the same story through an external Mosquitto.

import (
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// pushDeadline bounds how long a pushed advisory may take to be applied:
// "within seconds" on a quiet machine, with room for a busy 2-core one. The
// agents poll every hour, so only the push can explain an update this soon.
const pushDeadline = 30 * time.Second

// TestDaemonPush is issue 5's "done when": the server runs with its
// embedded broker, three agents run; importing the advisory makes the two
// whose policy says apply, inside a window open now, install the fix
// without waiting for a poll, and the server's cve query shows them
// patched; the third, whose window opens later, is told of the advisory
// but changes nothing and stays exposed.
func TestDaemonPush(t *testing.T) {
	repo := newFleetRepo(t)
	srv, _ := startPushServer(t, filepath.Join(t.TempDir(), "data"))
	dumpOnFailure(t, srv)
	open := agentConfig{Mode: "apply", Window: "open"}
	a := startAgent(t, srv, repo, "pi-push-a", repo.deviceRoot(t), open)
	b := startAgent(t, srv, repo, "pi-push-b", repo.deviceRoot(t), open)
	c := startAgent(t, srv, repo, "pi-push-later", repo.deviceRoot(t), agentConfig{Mode: "apply", Window: "closed"})
	for _, ag := range []*agent{a, b, c} {
		waitReported(t, srv, ag)
	}
	// Before the import the server knows no advisory naming the CVE: the
	// CLI says so and fails, rather than answering "nobody exposed".
	if r := run(t, adminEnv(srv), "rpmfleet", "cve", fixCVE); r.code != 1 || !strings.Contains(r.stderr, "unknown") {
		t.Fatalf("rpmfleet cve %s before the import: exit %d, stderr %q; want exit 1 naming it unknown", fixCVE, r.code, r.stderr)
	}

	markC := c.log.Len()
	start := time.Now()
	importFix(t, srv, repo)
	a.waitInstalled(t, pushDeadline, "demo-lib", newLib)
	b.waitInstalled(t, pushDeadline, "demo-lib", newLib)
	t.Logf("import to both devices patched: %v", time.Since(start).Round(time.Millisecond))
	waitExposure(t, srv, fixCVE, pushDeadline, []string{c.name}, []string{a.name, b.name})
	t.Logf("import to the server's cve answer showing both patched: %v", time.Since(start).Round(time.Millisecond))

	// The device outside its window heard of the advisory (its log names
	// it) and left it for the window.
	line := c.waitLog(t, markC, pushDeadline, fixAdvisory)
	t.Logf("%s: %s", c.name, line)
	if v := installed(t, c.root, "demo-lib"); v != oldLib {
		t.Errorf("%s, whose window is closed, has demo-lib %s, want %s untouched", c.name, v, oldLib)
	}
	if st := statusOf(device(t, srv, c.name)); st != protocol.StatusAffected {
		t.Errorf("%s's status for %s is %q, want affected", c.name, fixAdvisory, st)
	}

	// What c's agent holds back is its signed plan: the fix, pinned to the
	// exact file of the repository by its SHA-256 (read from primary.xml
	// at the import), and an ETag that answers 304 while it is unchanged.
	plan, etag := fetchPlan(t, srv, c)
	want := fileSHA256(t, repo.rpms["demo-lib-1.1"])
	if len(plan.Advisories) != 1 || plan.Advisories[0].ID != fixAdvisory || len(plan.Advisories[0].Packages) != 1 {
		t.Fatalf("%s's plan = %+v, want %s alone", c.name, plan, fixAdvisory)
	}
	if p := plan.Advisories[0].Packages[0]; p.Name != "demo-lib" || !sameEVR(p.Installed, oldLib) || !sameEVR(p.Fixed, newLib) || p.SHA256 != want || p.Location == "" {
		t.Errorf("%s's plan package = %+v, want demo-lib %s -> %s at a location with sha256 %s", c.name, p, oldLib, newLib, want)
	}
	req, _ := http.NewRequest("GET", srv.url+protocol.PathPlan, nil)
	req.Header.Set("Authorization", "Bearer "+c.credential)
	req.Header.Set("If-None-Match", etag)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("plan with If-None-Match %s: %s, want 304 Not Modified", etag, resp.Status)
	}
}

// fetchPlan gets a device's plan from the server with its credential and
// verifies it as the agent does, against the key pinned at enrolment.
func fetchPlan(t *testing.T, srv *server, a *agent) (protocol.Plan, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.url+protocol.PathPlan, nil)
	req.Header.Set("Authorization", "Bearer "+a.credential)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == "" {
		t.Fatalf("GET %s as %s: %s, ETag %q, %s (%v)", protocol.PathPlan, a.name, resp.Status, resp.Header.Get("ETag"), msg, err)
	}
	b, err := os.ReadFile(filepath.Join(a.state, "credential.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cred struct {
		NoticeKey []byte `json:"notice_key"`
	}
	if err := json.Unmarshal(b, &cred); err != nil {
		t.Fatal(err)
	}
	v, err := notice.NewVerifier(notice.VerifierOptions{Keys: []ed25519.PublicKey{cred.NoticeKey}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := v.Verify(msg, notice.KindPlan, a.id)
	if err != nil {
		t.Fatalf("%s's plan does not verify against the key pinned at enrolment: %v", a.name, err)
	}
	var plan protocol.Plan
	if err := json.Unmarshal(n.Body, &plan); err != nil {
		t.Fatalf("plan body %s: %v", n.Body, err)
	}
	return plan, resp.Header.Get("ETag")
}

// sameEVR reports whether two EVR strings name the same version ("0:1.0-1"
// and "1.0-1" do).
func sameEVR(a, b string) bool {
	x, err1 := rpmver.ParseEVR(a)
	y, err2 := rpmver.ParseEVR(b)
	return err1 == nil && err2 == nil && rpmver.Compare(x, y) == 0
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestDaemonPollFallback: with no broker at all (--mqtt-listen off), the
// import reaches the device at its next poll.
func TestDaemonPollFallback(t *testing.T) {
	repo := newFleetRepo(t)
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), "--mqtt-listen", "off")
	dumpOnFailure(t, srv)
	a := startAgent(t, srv, repo, "pi-poll", repo.deviceRoot(t), agentConfig{Mode: "apply", Poll: "3s"})
	waitReported(t, srv, a)
	start := time.Now()
	importFix(t, srv, repo)
	a.waitInstalled(t, 30*time.Second, "demo-lib", newLib)
	t.Logf("import to applied by poll (interval 3s, jitter 750ms): %v", time.Since(start).Round(time.Millisecond))
	waitExposure(t, srv, fixCVE, 20*time.Second, nil, []string{a.name})
}

// TestDaemonQueueDrainsAfterOutage: while the server is down, three manual
// rpm changes on the device are queued as three reports; once the server
// is back on the same data folder and port, every one arrives, in the
// order they were made, and the server holds the device's real package set.
func TestDaemonQueueDrainsAfterOutage(t *testing.T) {
	repo := newFleetRepo(t)
	data := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, data, "--mqtt-listen", "off")
	dumpOnFailure(t, srv)
	addr := strings.TrimPrefix(srv.url, "http://")
	a := startAgent(t, srv, repo, "pi-outage", repo.deviceRoot(t), agentConfig{Mode: "notify"})
	waitReported(t, srv, a)
	waitFor(t, 10*time.Second, "the first report to leave the queue", func() (bool, string) {
		q := a.queued(t)
		return len(q) == 0, fmt.Sprintf("queued %v", q)
	})

	srv.stop(t)
	changes := [][]string{
		{"-i", repo.rpms["demo-tool-1.0"]},
		{"-U", repo.rpms["demo-tool-2.0"]},
		{"-e", "demo-tool"},
	}
	for i, args := range changes {
		rpmIn(t, a.root, args...)
		waitFor(t, 20*time.Second, fmt.Sprintf("change %d (rpm %s) to be queued", i+1, args[0]), func() (bool, string) {
			q := a.queued(t)
			return len(q) == i+1, fmt.Sprintf("queued %v", q)
		})
	}
	ids := a.queued(t)
	t.Logf("queued while the server was down: %v", ids)

	back := time.Now()
	srv = startServerAt(t, data, addr, "--mqtt-listen", "off")
	waitFor(t, 60*time.Second, "the queue to drain", func() (bool, string) {
		q := a.queued(t)
		return len(q) == 0, fmt.Sprintf("still queued %v", q)
	})
	t.Logf("server back to queue drained: %v", time.Since(back).Round(time.Millisecond))
	d := device(t, srv, a.name)
	if d.Packages != 1 || d.LastSeen.Before(back.Add(-time.Second)) {
		t.Errorf("after the outage the server holds %d packages, last seen %v; want 1 (demo-tool installed, upgraded, then erased) seen after %v", d.Packages, d.LastSeen, back)
	}
	srv.stop(t)

	got := reportsReceived(t, data, a.id)
	var order []string
	for _, r := range got {
		if slices.Contains(ids, r) {
			order = append(order, r)
		}
	}
	if !slices.Equal(order, ids) {
		t.Errorf("the server received the queued reports as %v, want all of %v in that order (all reports: %v)", order, ids, got)
	}
}

// TestDaemonKill9DuringReport: the agent is killed with SIGKILL while it
// delivers the report of an update cycle, the server having the request
// but not yet answered it (it is stopped with SIGSTOP). After a restart the
// report is delivered again under its id: the server holds the cycle once,
// not zero times and not twice.
func TestDaemonKill9DuringReport(t *testing.T) {
	repo := newFleetRepo(t)
	data := filepath.Join(t.TempDir(), "data")
	srv, _ := startPushServer(t, data)
	dumpOnFailure(t, srv)
	_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(srv.url, "http://"))
	port, _ := strconv.Atoi(portStr)

	// The health check holds the cycle until the test opens the gate, so
	// the test can freeze the server between the install and the report.
	gate := filepath.Join(t.TempDir(), "gate")
	hold := fmt.Sprintf("for i in $(seq 600); do [ -e %s ] && exit 0; sleep 0.1; done; exit 1", gate)
	a := startAgent(t, srv, repo, "pi-kill", repo.deviceRoot(t), agentConfig{Mode: "apply", HealthChecks: []string{hold}})
	waitReported(t, srv, a)
	importFix(t, srv, repo)
	a.waitInstalled(t, pushDeadline, "demo-lib", newLib)

	if err := srv.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.cmd.Process.Signal(syscall.SIGCONT) })
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var cycleID string
	var unread int
	waitFor(t, 30*time.Second, "the cycle's report to be queued and sent to the stopped server", func() (bool, string) {
		files, _ := filepath.Glob(filepath.Join(a.state, "reports", "*-cycle.json"))
		if len(files) != 1 {
			return false, fmt.Sprintf("cycle reports queued: %v", files)
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			return false, err.Error()
		}
		var rec struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatalf("queued cycle report %s: %v", files[0], err)
		}
		cycleID = rec.ID
		if unread, err = unreadTCP(port); err != nil {
			t.Fatal(err)
		}
		return unread > 0, fmt.Sprintf("cycle report %s queued, nothing waiting in the server's sockets", cycleID)
	})
	a.kill9(t)
	t.Logf("killed the agent with %d bytes sent to the stopped server and the cycle report %s queued", unread, cycleID)
	if err := srv.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if q := a.queued(t); !slices.Contains(q, cycleID) {
		t.Fatalf("after SIGKILL the cycle report %s is no longer queued: %v", cycleID, q)
	}
	// The server, resumed, may or may not commit the request whose
	// sender is gone; either way the restarted agent must settle it.
	t.Logf("before the agent's restart the server says %s is %s", a.name, statusOf(device(t, srv, a.name)))

	a.start(t)
	waitFor(t, 60*time.Second, "the restarted agent to empty its queue", func() (bool, string) {
		q := a.queued(t)
		return len(q) == 0, fmt.Sprintf("still queued %v", q)
	})
	waitExposure(t, srv, fixCVE, 20*time.Second, nil, []string{a.name})
	srv.stop(t)

	db := openServerDB(t, data)
	var cycles int
	if err := db.QueryRow(`SELECT COUNT(*) FROM cycles WHERE device_id = ?`, a.id).Scan(&cycles); err != nil {
		t.Fatal(err)
	}
	if cycles != 1 {
		t.Errorf("the server holds %d update cycles of %s, want 1: the cycle was lost or reported twice", cycles, a.name)
	}
	if got := reportsReceived(t, data, a.id); !slices.Contains(got, cycleID) {
		t.Errorf("the cycle's report %s is not among the reports the server received: %v", cycleID, got)
	}
}

// TestDaemonConfigReload: the running agent takes a rewritten config: a
// broken one is refused with its line and key in the log and the agent
// goes on with the old one; a good one (notify -> apply) takes effect.
func TestDaemonConfigReload(t *testing.T) {
	repo := newFleetRepo(t)
	srv, _ := startPushServer(t, filepath.Join(t.TempDir(), "data"))
	dumpOnFailure(t, srv)
	a := startAgent(t, srv, repo, "pi-reload", repo.deviceRoot(t), agentConfig{Mode: "notify"})
	waitReported(t, srv, a)
	mark := a.log.Len()
	importFix(t, srv, repo)
	a.waitLog(t, mark, pushDeadline, fixAdvisory)
	if v := installed(t, a.root, "demo-lib"); v != oldLib {
		t.Fatalf("in notify mode the agent installed demo-lib %s", v)
	}

	// A bad value: the agent says where, and keeps its old config.
	good := agentConfig{Mode: "notify"}.toml(a)
	bad := strings.Replace(good, `mode = "notify"`, `mode = "sometimes"`, 1)
	line := 1 + strings.Count(bad[:strings.Index(bad, `mode = "sometimes"`)], "\n")
	mark = a.log.Len()
	a.writeConfig(t, agentConfig{Raw: bad})
	where := fmt.Sprintf("agent.toml:%d", line)
	got := a.waitLog(t, mark, 20*time.Second, "configuration not reloaded", where, "policy.mode")
	t.Logf("bad config: %s", got)
	if !a.running() {
		t.Fatalf("the agent exited on a bad config")
	}
	// Still in notify mode: a check does not install.
	mark = a.log.Len()
	must(t, adminEnv(srv), "rpmfleet", "command", a.name, "check")
	a.waitLog(t, mark, pushDeadline, fixAdvisory)
	if v := installed(t, a.root, "demo-lib"); v != oldLib {
		t.Fatalf("after a refused config the agent installed demo-lib %s", v)
	}

	// A good one: apply mode. The agent acts on the plan it holds under
	// the new policy at once, with no push and no poll.
	mark = a.log.Len()
	a.writeConfig(t, agentConfig{Mode: "apply"})
	a.waitLog(t, mark, 20*time.Second, "configuration reloaded", "mode=apply")
	a.waitInstalled(t, pushDeadline, "demo-lib", newLib)
	waitExposure(t, srv, fixCVE, 20*time.Second, nil, []string{a.name})
}

// TestDaemonCommandAndManualChange: an operator's apply command makes a
// notify-mode device apply now; a manual rpm -U on the device (a downgrade
// back to the vulnerable version, then a new package) reaches the server on
// its own.
func TestDaemonCommandAndManualChange(t *testing.T) {
	repo := newFleetRepo(t)
	srv, _ := startPushServer(t, filepath.Join(t.TempDir(), "data"))
	dumpOnFailure(t, srv)
	a := startAgent(t, srv, repo, "pi-cmd", repo.deviceRoot(t), agentConfig{Mode: "notify"})
	waitReported(t, srv, a)
	importFix(t, srv, repo)
	waitDevice(t, srv, a.name, 20*time.Second, "affected", func(d protocol.Device) bool { return statusOf(d) == protocol.StatusAffected })

	var resp protocol.CommandResponse
	out := must(t, adminEnv(srv), "rpmfleet", "command", a.name, "apply", fixAdvisory, "--json")
	if err := jsonDecode(out.stdout, &resp); err != nil || resp.DeviceID != a.id || resp.Topic != protocol.DeviceCommandTopic(a.id) {
		t.Errorf("rpmfleet command --json printed %q (%v), want device %s on %s", out.stdout, err, a.id, protocol.DeviceCommandTopic(a.id))
	}
	a.waitInstalled(t, pushDeadline, "demo-lib", newLib)
	waitExposure(t, srv, fixCVE, 20*time.Second, nil, []string{a.name})

	// Someone downgrades demo-lib by hand: the server sees the device
	// exposed again without anyone asking the agent.
	rpmIn(t, a.root, "-U", "--oldpackage", repo.rpms["demo-lib-1.0"])
	start := time.Now()
	waitExposure(t, srv, fixCVE, 20*time.Second, []string{a.name}, nil)
	t.Logf("manual downgrade to the server's cve answer: %v", time.Since(start).Round(time.Millisecond))
	if v := installed(t, a.root, "demo-lib"); v != oldLib {
		t.Errorf("the notify-mode agent changed demo-lib to %s after the manual downgrade", v)
	}
	rpmIn(t, a.root, "-i", repo.rpms["demo-tool-1.0"])
	waitDevice(t, srv, a.name, 20*time.Second, "with demo-tool installed (2 packages)", func(d protocol.Device) bool { return d.Packages == 2 })
}

// openServerDB opens the server's SQLite database read-only, once the
// server is stopped, to read what its API does not show: the report ids
// and update cycles it stored.
func openServerDB(t *testing.T, data string) *sql.DB {
	t.Helper()
	path := filepath.Join(data, "rpmfleet.db")
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// reportsReceived lists the report ids the server stored for a device, in
// the order it received them.
func reportsReceived(t *testing.T, data, deviceID string) []string {
	t.Helper()
	rows, err := openServerDB(t, data).Query(`SELECT id FROM reports WHERE device_id = ? ORDER BY received, id`, deviceID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
