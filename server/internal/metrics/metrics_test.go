package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/broker"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/metrics"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlstore"
)

// docs is the folder of the example alert rules and Grafana dashboard.
const docs = "../../../docs/monitoring"

func openStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "rpmfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

type anyone struct{}

func (anyone) Authenticate(string, string) (broker.Principal, bool) { return broker.Principal{}, false }

// realBroker starts the embedded broker on a free loopback port.
func realBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.New(broker.Options{Listen: "127.0.0.1:0", Auth: anyone{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestObserveCountsByResult(t *testing.T) {
	m := metrics.New(metrics.Options{})
	storeDown := errors.New("database is locked")
	for _, e := range []fleet.Event{
		{Op: fleet.OpReport, Took: 3 * time.Millisecond},
		{Op: fleet.OpReport, Took: time.Millisecond, Duplicate: true},
		{Op: fleet.OpReport, Err: fmt.Errorf("%w: %w", fleet.ErrBadRequest, store.ErrBadReport)},
		{Op: fleet.OpReport, Err: fmt.Errorf("report: %w", store.ErrNotFound)},
		{Op: fleet.OpReport, Err: fmt.Errorf("report: %w", storeDown)},
		{Op: fleet.OpImport, Took: 2 * time.Second, Read: 10, Changed: 4},
		{Op: fleet.OpImport, Err: fmt.Errorf("%w: advisory 1 of 1: empty id", fleet.ErrBadRequest)},
		{Op: fleet.OpImport, Err: fmt.Errorf("import: %w", storeDown)},
		{Op: fleet.OpPublish, Kind: "feed", Took: time.Millisecond},
		{Op: fleet.OpPublish, Kind: "command", Err: errors.New("not connected")},
		{Op: fleet.OpWebhook, Kind: "rollback", Result: "retrying"},
		{Op: fleet.OpWebhook, Kind: "rollback", Result: "delivered"},
		{Op: fleet.OpWebhook, Kind: "silent", Result: "failed"},
		{Op: fleet.OpWebhook, Kind: "x-forged\n", Result: "failed"},
	} {
		m.Observe(e)
	}
	text := gather(t, m)
	if strings.Contains(text, "x-forged") {
		t.Error("an event type outside the fixed set made a series")
	}
	got := samples(t, text)
	for _, tc := range []struct {
		sample string
		want   float64
	}{
		{`rpmfleet_reports_ingested_total{result="stored"}`, 1},
		{`rpmfleet_reports_ingested_total{result="duplicate"}`, 1},
		{`rpmfleet_reports_ingested_total{result="refused"}`, 2},
		{`rpmfleet_reports_ingested_total{result="error"}`, 1},
		{`rpmfleet_report_ingest_duration_seconds_count`, 2},
		{`rpmfleet_imports_total{result="ok"}`, 1},
		{`rpmfleet_imports_total{result="refused"}`, 1},
		{`rpmfleet_imports_total{result="error"}`, 1},
		{`rpmfleet_import_advisories_read_total`, 10},
		{`rpmfleet_import_advisories_changed_total`, 4},
		{`rpmfleet_import_duration_seconds_sum`, 2},
		{`rpmfleet_store_errors_total{op="report"}`, 1},
		{`rpmfleet_store_errors_total{op="import"}`, 1},
		{`rpmfleet_push_publish_duration_seconds_count{kind="feed"}`, 1},
		{`rpmfleet_push_publish_errors_total{kind="command"}`, 1},
		{`rpmfleet_webhook_attempts_total{event="rollback",result="retrying"}`, 1},
		{`rpmfleet_webhook_attempts_total{event="rollback",result="delivered"}`, 1},
		{`rpmfleet_webhook_attempts_total{event="silent",result="failed"}`, 1},
		{`rpmfleet_webhook_attempts_total{event="exposure",result="failed"}`, 0},
	} {
		if v, ok := got[tc.sample]; !ok || v != tc.want {
			t.Errorf("%s = %v (present %v), want %v", tc.sample, v, ok, tc.want)
		}
	}
}

// gather returns the registry's metrics in the text format.
func gather(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func samples(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestLastSeenBuckets: each device is counted once, in the first bucket
// its last report's age fits, on the clock the metrics are given.
func TestLastSeenBuckets(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	svc, err := fleet.New(ctx, st, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{Uses: 10})
	pkgs := []protocol.Package{{Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "aarch64"}}
	for i := range 3 {
		resp, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Name: fmt.Sprintf("dev-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			rep := &protocol.Report{ID: "r", Time: time.Now().UTC(), Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}
			if _, err := svc.Report(ctx, resp.DeviceID, rep); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := svc.RevokeDevice(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		later time.Duration
		want  map[string]float64
	}{
		{"now", 0, map[string]float64{"1h": 1, "6h": 0, "never": 1, "older": 0}},
		{"3h later", 3 * time.Hour, map[string]float64{"1h": 0, "6h": 1, "24h": 0, "never": 1}},
		{"2 days later", 48 * time.Hour, map[string]float64{"24h": 0, "7d": 1, "never": 1}},
		{"a year later", 365 * 24 * time.Hour, map[string]float64{"30d": 0, "older": 1, "never": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New(metrics.Options{Fleet: st, Now: func() time.Time { return time.Now().Add(tc.later) }})
			got := samples(t, gather(t, m))
			for age, want := range tc.want {
				k := `rpmfleet_devices_last_seen{age="` + age + `"}`
				if got[k] != want {
					t.Errorf("%s = %v, want %v", k, got[k], want)
				}
			}
			if got[`rpmfleet_devices{status="revoked"}`] != 1 || got[`rpmfleet_devices{status="reporting"}`] != 1 || got[`rpmfleet_devices{status="never_reported"}`] != 1 {
				t.Errorf("devices by status: %v", got)
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	b := realBroker(t)
	closedAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := ln.Addr().String()
		ln.Close()
		return a
	}()
	good := openStore(t)
	// A store closed under the check (not through openStore, whose
	// cleanup would close it a second time).
	closed, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "closed.db"))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	for _, tc := range []struct {
		name   string
		checks []metrics.Check
		code   int
		body   string
	}{
		{"store and broker up", []metrics.Check{metrics.StoreCheck(good), metrics.ListenerCheck("broker", b.Addr())}, 200, "ready\n"},
		{"store closed", []metrics.Check{metrics.StoreCheck(closed), metrics.ListenerCheck("broker", b.Addr())}, 503, "not ready\n"},
		{"broker not listening", []metrics.Check{metrics.StoreCheck(good), metrics.ListenerCheck("broker", closedAddr)}, 503, "not ready\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New(metrics.Options{})
			srv := httptest.NewServer(metrics.Readyz(m, nil, tc.checks...))
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || string(body) != tc.body {
				t.Errorf("readyz = %d %q, want %d %q (and nothing more: no detail for a stranger)", resp.StatusCode, body, tc.code, tc.body)
			}
			storeErr := samples(t, gather(t, m))[`rpmfleet_store_errors_total{op="ready"}`]
			if wantErr := tc.name == "store closed"; (storeErr == 1) != wantErr {
				t.Errorf("store errors counted %v; want one only when the store failed", storeErr)
			}
		})
	}
}

// TestMetricsPassPromtool runs the real promtool on everything the
// registry exports with a real store and a real broker behind it.
func TestMetricsPassPromtool(t *testing.T) {
	m := metrics.New(metrics.Options{Fleet: openStore(t), Broker: realBroker(t)})
	m.Observe(fleet.Event{Op: fleet.OpReport, Took: time.Millisecond})
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(gather(t, m))
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics (run make deps if it is missing): %v\n%s", err, out)
	}
}

// TestAlertRules checks docs/monitoring/alerts.yml with the real promtool
// and runs its unit tests (alerts_test.yml: each alert fires on the
// series that should fire it).
func TestAlertRules(t *testing.T) {
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = docs
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestDocsNameOnlyExportedMetrics: every rpmfleet_ metric the alert rules
// and the Grafana dashboard use is one the server exports, so a renamed
// metric cannot leave the examples silently empty.
func TestDocsNameOnlyExportedMetrics(t *testing.T) {
	m := metrics.New(metrics.Options{Fleet: openStore(t), Broker: realBroker(t)})
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	grafana, err := os.ReadFile(filepath.Join(docs, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(grafana, &dash); err != nil || len(dash.Panels) == 0 {
		t.Fatalf("grafana-dashboard.json: %v (%d panels)", err, len(dash.Panels))
	}
	rules, err := os.ReadFile(filepath.Join(docs, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`rpmfleet_[a-z_]+`)
	used := name.FindAllString(string(grafana)+string(rules), -1)
	if len(used) < 10 {
		t.Fatalf("found %d metric names in the examples; the pattern is wrong", len(used))
	}
	for _, n := range slices.Compact(slices.Sorted(slices.Values(used))) {
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suf); ok && exported[b] {
				base = b
			}
		}
		if !exported[base] {
			t.Errorf("the examples use %s, which the server does not export", n)
		}
	}
}
