package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// monitoredFleet is the real server with the AlmaLinux 9 OSV database
// imported by the CLI and two real agents enrolled and reported once:
// pi-kitchen holds the openssl-libs AlmaLinux 9.0 shipped (exposed to
// CVE-2023-2650), pi-garage the fixed one.
type monitoredFleet struct {
	srv      *server
	admin    []string
	mqttAddr string
	// states are the agents' state folders, by name.
	states map[string]string
	// imported and changed are what the import said it read and changed.
	imported, changed int
}

func startMonitoredFleet(t *testing.T) *monitoredFleet {
	t.Helper()
	mqttAddr := freeAddr(t)
	srv := startServer(t, filepath.Join(t.TempDir(), "rpmfleet-data"), "--mqtt-listen", mqttAddr)
	f := &monitoredFleet{srv: srv, admin: []string{"HOME=" + t.TempDir()}, mqttAddr: mqttAddr, states: map[string]string{}}
	must(t, f.admin, "rpmfleet", "login", "--server", srv.url, "--token", srv.admin)
	osv := filepath.Join(fixtures(t), "almalinux-osv", "almalinux9.jsonl.gz")
	out := must(t, f.admin, "rpmfleet", "import", "--json", osv).stdout
	var imp protocol.ImportResponse
	if err := json.Unmarshal([]byte(out), &imp); err != nil || imp.Advisories == 0 {
		t.Fatalf("import --json printed %q: %v", out, err)
	}
	f.imported, f.changed = imp.Advisories, imp.Changed
	tok := strings.TrimSpace(must(t, f.admin, "rpmfleet", "enroll-token", "create", "--uses", "2", "--label", "site=lab").stdout)
	fixed := append([]rpmtest.Package(nil), storyPackages...)
	fixed[0].Version, fixed[0].Release = "3.0.7", "16.el9_2"
	for name, pkgs := range map[string][]rpmtest.Package{"pi-kitchen": storyPackages, "pi-garage": fixed} {
		root := devRoot(t, pkgs...)
		state := filepath.Join(t.TempDir(), "state")
		must(t, nil, "rpmfleet-agent", "enroll", "--server", srv.url, "--token", tok, "--name", name, "--state-dir", state, "--root", root)
		must(t, nil, "rpmfleet-agent", "report", "--once", "--root", root, "--state-dir", state)
		f.states[name] = state
	}
	return f
}

// scrape fetches /metrics with secret and returns the status and body.
func scrape(t *testing.T, url, secret string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// samples reads the Prometheus text format into "name{labels}" -> value.
func samples(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// promtool runs the real promtool with args and stdin, and fails the test
// with its output unless it exits 0.
func promtool(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("promtool", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool %s (run make deps if it is missing): %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestMetricsAfterRealReports scrapes the real server's /metrics after a
// real import and two real agents' reports, with a device logged in to
// the embedded broker: promtool check metrics finds nothing to say, and
// the values are the fleet's (two devices reporting, exposure by severity
// as the summary gives it, two reports stored, one import of as many
// advisories as the CLI said it read and changed, one MQTT connection).
func TestMetricsAfterRealReports(t *testing.T) {
	f := startMonitoredFleet(t)
	srv := f.srv

	// A device logs in to the embedded broker with its own credential,
	// as the agent's daemon does.
	var cred struct {
		DeviceID   string `json:"device_id"`
		Credential string `json:"credential"`
	}
	raw, err := os.ReadFile(filepath.Join(f.states["pi-kitchen"], "credential.json"))
	if err != nil || json.Unmarshal(raw, &cred) != nil {
		t.Fatalf("credential.json: %v", err)
	}
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + f.mqttAddr).SetClientID(cred.DeviceID).
		SetUsername(cred.DeviceID).SetPassword(cred.Credential).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt login as pi-kitchen: %v", tok.Error())
	}
	defer cl.Disconnect(100)

	for _, tc := range []struct{ name, secret string }{{"no token", ""}, {"a device credential", cred.Credential}, {"a wrong token", "rfa_wrong"}} {
		t.Run("refused with "+tc.name, func(t *testing.T) {
			code, body := scrape(t, srv.url, tc.secret)
			if code != http.StatusUnauthorized && code != http.StatusForbidden || strings.Contains(body, "rpmfleet_devices") {
				t.Errorf("/metrics with %s = %d, want 401 or 403 and no metrics", tc.name, code)
			}
		})
	}

	code, text := scrape(t, srv.url, srv.admin)
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d\n%s", code, text)
	}
	if out := promtool(t, text, "check", "metrics"); strings.TrimSpace(out) != "" {
		t.Errorf("promtool check metrics has something to say:\n%s", out)
	}
	got := samples(t, text)
	// The exposure gauges say what the summary says.
	var sum protocol.Summary
	if err := json.Unmarshal([]byte(must(t, f.admin, "rpmfleet", "summary", "--json").stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Devices != 2 || sum.ExposedBySeverity["Important"] < 1 {
		t.Fatalf("summary = %+v, want 2 devices, pi-kitchen exposed at Important (openssl)", sum)
	}
	for _, tc := range []struct {
		sample string
		want   float64
	}{
		{`rpmfleet_devices{status="reporting"}`, 2},
		{`rpmfleet_devices{status="never_reported"}`, 0},
		{`rpmfleet_devices{status="revoked"}`, 0},
		{`rpmfleet_devices_last_seen{age="1h"}`, 2},
		{`rpmfleet_devices_last_seen{age="never"}`, 0},
		{`rpmfleet_devices_fully_patched`, float64(sum.FullyPatched)},
		{`rpmfleet_devices_exposed{severity="Critical"}`, float64(sum.ExposedBySeverity["Critical"])},
		{`rpmfleet_devices_exposed{severity="Important"}`, float64(sum.ExposedBySeverity["Important"])},
		{`rpmfleet_devices_exposed{severity="Moderate"}`, float64(sum.ExposedBySeverity["Moderate"])},
		{`rpmfleet_reports_ingested_total{result="stored"}`, 2},
		{`rpmfleet_reports_ingested_total{result="error"}`, 0},
		{`rpmfleet_report_ingest_duration_seconds_count`, 2},
		{`rpmfleet_imports_total{result="ok"}`, 1},
		{`rpmfleet_import_duration_seconds_count`, 1},
		{`rpmfleet_import_advisories_read_total`, float64(f.imported)},
		{`rpmfleet_import_advisories_changed_total`, float64(f.changed)},
		{`rpmfleet_mqtt_connections`, 1},
		{`rpmfleet_store_errors_total{op="report"}`, 0},
	} {
		if v, ok := got[tc.sample]; !ok || v != tc.want {
			t.Errorf("%s = %v (present %v), want %v", tc.sample, v, ok, tc.want)
		}
	}
	// The import changed advisories, so a feed notice went to the broker.
	if got[`rpmfleet_push_publish_duration_seconds_count{kind="feed"}`] != 1 {
		t.Errorf("feed notices timed = %v, want 1", got[`rpmfleet_push_publish_duration_seconds_count{kind="feed"}`])
	}
	// The device pi-kitchen still needs openssl's advisories and more; its
	// worst is Important, and every one it needs is counted there.
	if got[`rpmfleet_exposures{severity="Important"}`] < 1 {
		t.Errorf(`rpmfleet_exposures{severity="Important"} = %v, want at least 1`, got[`rpmfleet_exposures{severity="Important"}`])
	}

	// A revoked device moves from reporting to revoked, and its MQTT
	// session ends (the gauges are re-read after their 10 s reuse).
	must(t, f.admin, "rpmfleet", "device", "revoke", "pi-garage")
	waitFor(t, 30*time.Second, "the metrics to count pi-garage revoked", func() (bool, string) {
		_, text := scrape(t, srv.url, srv.admin)
		s := samples(t, text)
		return s[`rpmfleet_devices{status="revoked"}`] == 1 && s[`rpmfleet_devices{status="reporting"}`] == 1,
			fmt.Sprintf("reporting %v, revoked %v", s[`rpmfleet_devices{status="reporting"}`], s[`rpmfleet_devices{status="revoked"}`])
	})
}

// TestHealthEndpoints: /healthz and /readyz answer without a login and say
// nothing more than ok, ready or not ready.
func TestHealthEndpoints(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "rpmfleet-data"), "--mqtt-listen", freeAddr(t))
	for _, tc := range []struct{ path, want string }{{"/healthz", "ok\n"}, {"/readyz", "ready\n"}} {
		t.Run(tc.path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.url+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != tc.want {
				t.Errorf("GET %s = %d %q, want 200 %q", tc.path, resp.StatusCode, b, tc.want)
			}
		})
	}
}
