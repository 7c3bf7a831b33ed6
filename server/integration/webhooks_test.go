package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/notify"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres/pgtest"
)

// hookReceiver is a webhook receiver on loopback, as an admin would run
// one: it checks every request's signature with notify.Verify and keeps
// the events; it answers 503 to its first fail requests.
type hookReceiver struct {
	srv    *httptest.Server
	secret []byte

	mu       sync.Mutex // guards the fields below
	fail     int
	requests int
	events   []protocol.WebhookEvent
	bad      []string
}

func newHookReceiver(t *testing.T, secret string, fail int) *hookReceiver {
	r := &hookReceiver{secret: []byte(secret), fail: fail}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		r.mu.Lock()
		defer r.mu.Unlock()
		r.requests++
		if err := notify.Verify(r.secret, req.Header.Get(notify.SignatureHeader), body, time.Now(), notify.DefaultTolerance); err != nil {
			r.bad = append(r.bad, err.Error())
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.fail > 0 {
			r.fail--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var ev protocol.WebhookEvent
		if err := json.Unmarshal(body, &ev); err != nil || ev.Type != req.Header.Get(notify.EventHeader) {
			r.bad = append(r.bad, fmt.Sprintf("body %s: %v", body, err))
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		r.events = append(r.events, ev)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// of returns the events of type typ received so far.
func (r *hookReceiver) of(typ string) []protocol.WebhookEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []protocol.WebhookEvent
	for _, e := range r.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestWebhookRollback: a real agent applies the fix and its health check
// fails, so the update rolls back. The real server, configured with two
// webhooks in server.toml (secrets in files), sends each a signed
// rollback notification naming the device, the advisory and the error;
// the one whose receiver answers 503 twice gets it on the third attempt,
// and rpmfleet webhooks deliveries shows the attempts. The import that
// exposed the device was notified too. Neither the webhook URL's token
// nor a secret appears in the server's log.
func TestWebhookRollback(t *testing.T) {
	repo := newFleetRepo(t)
	dir := t.TempDir()
	ops := newHookReceiver(t, "ops-secret-8f2e4c1a9b7d", 0)
	flaky := newHookReceiver(t, "flaky-secret-1c9a7e3b5d", 2)
	secret := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := filepath.Join(dir, "server.toml")
	conf := fmt.Sprintf(`[[webhook]]
name = "ops"
url = %q
secret_file = %q
min_severity = "Low"

[[webhook]]
name = "flaky"
url = %q
secret_file = %q
events = ["rollback"]
`, ops.srv.URL+"/hook/tok-7Qz9PathToken", secret("ops.secret", "ops-secret-8f2e4c1a9b7d"),
		flaky.srv.URL+"/hook", secret("flaky.secret", "flaky-secret-1c9a7e3b5d"))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, _ := startPushServer(t, filepath.Join(dir, "data"), "--config", cfg)
	dumpOnFailure(t, srv)
	admin := adminEnv(srv)

	a := startAgent(t, srv, repo, "pi-webhook", repo.deviceRoot(t), agentConfig{Mode: "apply", Window: "open", HealthChecks: []string{"false"}})
	waitReported(t, srv, a)
	importFix(t, srv, repo)

	waitFor(t, 90*time.Second, "both webhooks to get the rollback", func() (bool, string) {
		return len(ops.of(protocol.WebhookRollback)) > 0 && len(flaky.of(protocol.WebhookRollback)) > 0,
			fmt.Sprintf("ops %d, flaky %d rollback events", len(ops.of(protocol.WebhookRollback)), len(flaky.of(protocol.WebhookRollback)))
	})
	if v := installed(t, a.root, "demo-lib"); v != oldLib {
		t.Errorf("demo-lib %s after the rollback, want %s", v, oldLib)
	}
	for _, r := range []*hookReceiver{ops, flaky} {
		r.mu.Lock()
		if len(r.bad) > 0 {
			t.Errorf("a receiver refused requests: %v", r.bad)
		}
		r.mu.Unlock()
		rb := r.of(protocol.WebhookRollback)[0]
		if rb.Version != protocol.WebhookVersion || rb.Rollback == nil || rb.Rollback.Device != "pi-webhook" || rb.Rollback.DeviceID == "" ||
			!slices.Contains(rb.Rollback.Advisories, fixAdvisory) || rb.Rollback.Error == "" || rb.Rollback.Finished.IsZero() {
			t.Errorf("rollback event %+v %+v; want pi-webhook's cycle of %s with its error", rb, rb.Rollback, fixAdvisory)
		}
	}
	if ops.of(protocol.WebhookRollback)[0].ID != flaky.of(protocol.WebhookRollback)[0].ID {
		t.Error("the two webhooks got the rollback under two event ids")
	}
	t.Logf("rollback: %s", ops.of(protocol.WebhookRollback)[0].Rollback.Error)
	exp := ops.of(protocol.WebhookExposure)
	if len(exp) == 0 || exp[0].Exposure.Cause != "import" || exp[0].Exposure.Exposures[0].Device != "pi-webhook" ||
		exp[0].Exposure.Exposures[0].Advisory != fixAdvisory || !slices.Contains(exp[0].Exposure.Exposures[0].CVEs, fixCVE) {
		t.Errorf("ops's exposure events = %+v; want the import's, pi-webhook exposed to %s (%s)", exp, fixAdvisory, fixCVE)
	}
	if n := len(flaky.of(protocol.WebhookExposure)); n != 0 {
		t.Errorf("flaky, rollbacks only, got %d exposure events", n)
	}

	var ds []protocol.WebhookDelivery
	out := must(t, admin, "rpmfleet", "webhooks", "deliveries", "--webhook", "flaky", "--json")
	if err := json.Unmarshal([]byte(out.stdout), &ds); err != nil {
		t.Fatalf("webhooks deliveries --json: %v\n%s", err, out.stdout)
	}
	if len(ds) != 1 || ds[0].Status != protocol.DeliveryDelivered || ds[0].Attempts != 3 || ds[0].HTTPStatus != http.StatusNoContent ||
		ds[0].Event != protocol.WebhookRollback || ds[0].LastError != "" {
		t.Errorf("flaky's deliveries = %+v; want the rollback delivered at the third attempt", ds)
	}
	flaky.mu.Lock()
	if flaky.requests != 3 {
		t.Errorf("flaky's receiver saw %d requests; want 3 (two 503s, then the delivery)", flaky.requests)
	}
	flaky.mu.Unlock()
	table := must(t, admin, "rpmfleet", "webhooks", "deliveries")
	if !strings.Contains(table.stdout, "ATTEMPTS") || !strings.Contains(table.stdout, "flaky") || !strings.Contains(table.stdout, "rollback") {
		t.Errorf("webhooks deliveries:\n%s", table.stdout)
	}
	t.Logf("rpmfleet webhooks deliveries:\n%s", table.stdout)
	if r := run(t, admin, "rpmfleet", "webhooks", "deliveries", "--status", "lost"); r.code == 0 || !strings.Contains(r.stderr, "status") {
		t.Errorf("--status lost: exit %d, %s; want a refusal naming status", r.code, r.stderr)
	}
	srv.stop(t) // cleanly: the webhook goroutines end with the server
	for _, leak := range []string{"tok-7Qz9PathToken", "ops-secret-8f2e4c1a9b7d", "flaky-secret-1c9a7e3b5d"} {
		if strings.Contains(srv.log.String(), leak) {
			t.Errorf("the server's log holds %q", leak)
		}
	}
}

// delivered counts the events received of each event id.
func (r *hookReceiver) delivered() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, e := range r.events {
		out[e.ID]++
	}
	return out
}

func (r *hookReceiver) setFail(n int) {
	r.mu.Lock()
	r.fail = n
	r.mu.Unlock()
}

// TestWebhookOutboxOnReplicas: two real servers on one PostgreSQL, both
// sending the outbox. A rolled-back cycle reported through one and again,
// under another report id, through the other is one delivery; the
// receiver's 503 is retried by whichever server claims it next, and the
// event arrives once. Then a delivery pending while every server stops
// (the receiver failing) arrives after one starts again.
func TestWebhookOutboxOnReplicas(t *testing.T) {
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatalf("start PostgreSQL (run make deps): %v", err)
	}
	t.Cleanup(func() { pg.Stop() })
	dir := t.TempDir()
	rcv := newHookReceiver(t, "replica-secret-5a0c2e", 1)
	sec := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(sec, []byte("replica-secret-5a0c2e\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "server.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[[webhook]]\nname = \"ops\"\nurl = %q\nsecret_file = %q\nevents = [\"rollback\"]\n", rcv.srv.URL, sec), 0o600); err != nil {
		t.Fatal(err)
	}
	db := pg.NewDatabase(t)
	rs := startReplicas(t, db, 2, "--config", cfg)
	for _, s := range rs.servers {
		dumpOnFailure(t, s)
	}
	dev := enrollDevice(t, rs.servers[0], "pi-rep")
	report := func(srv *server, id string, cycle int64) {
		t.Helper()
		r := fullReport(id, basePackages)
		r.Cycles = []protocol.CycleResult{{ID: cycle, Advisories: []string{"ALSA-2023:3722"}, Outcome: protocol.OutcomeRolledBack,
			Error: "health check failed", Started: time.Now().Add(-time.Minute).UTC(), Finished: time.Now().UTC()}}
		if code, raw := call(t, "POST", srv.url+protocol.PathReport, dev.Credential, r, nil); code != 200 {
			t.Fatalf("report %s: %d %s", id, code, raw)
		}
	}
	report(rs.servers[0], "r1", 1)
	report(rs.servers[1], "r1-again", 1)
	waitFor(t, 30*time.Second, "the rollback after one 503", func() (bool, string) {
		return len(rcv.delivered()) == 1, fmt.Sprint(rcv.delivered())
	})
	time.Sleep(3 * time.Second) // long enough for a second send to show
	for id, n := range rcv.delivered() {
		if n != 1 {
			t.Errorf("event %s received %d times; want once", id, n)
		}
	}
	rcv.mu.Lock()
	if rcv.requests != 2 || len(rcv.bad) > 0 {
		t.Errorf("the receiver saw %d requests (refused: %v); want 2: the 503 and the delivery", rcv.requests, rcv.bad)
	}
	rcv.mu.Unlock()
	var ds []protocol.WebhookDelivery
	if code, raw := call(t, "GET", rs.servers[1].url+protocol.PathWebhookDeliveries, rs.servers[0].admin, nil, &ds); code != 200 ||
		len(ds) != 1 || ds[0].Status != protocol.DeliveryDelivered || ds[0].Attempts != 2 {
		t.Fatalf("deliveries: %d %s; want one, delivered at the second attempt", code, raw)
	}

	// Every server stops with a delivery pending; one starts again.
	rcv.setFail(1 << 20)
	report(rs.servers[1], "r2", 2)
	waitFor(t, 30*time.Second, "a failed attempt of the second rollback", func() (bool, string) {
		var ds []protocol.WebhookDelivery
		call(t, "GET", rs.servers[0].url+protocol.PathWebhookDeliveries+"?status=pending", rs.servers[0].admin, nil, &ds)
		return len(ds) == 1 && ds[0].Attempts >= 1, fmt.Sprintf("%+v", ds)
	})
	for _, s := range rs.servers {
		s.stop(t)
	}
	rcv.setFail(0)
	again := startServer(t, rs.servers[0].data, "--db", db, "--mqtt-listen", freeAddr(t), "--config", cfg)
	dumpOnFailure(t, again)
	waitFor(t, 60*time.Second, "the pending rollback after the restart", func() (bool, string) {
		return len(rcv.delivered()) == 2, fmt.Sprint(rcv.delivered())
	})
	ds = nil
	if code, raw := call(t, "GET", again.url+protocol.PathWebhookDeliveries+"?status=delivered", again.admin, nil, &ds); code != 200 || len(ds) != 2 || ds[0].Attempts < 2 {
		t.Errorf("after the restart: %d %s; want both delivered, the second after failed attempts", code, raw)
	}
}
