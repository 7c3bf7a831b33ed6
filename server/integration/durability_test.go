package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestReportWaitsForTheServer: a report the server never received stays
// queued in the agent's state folder and is delivered, with its id, by the
// next run once the server is back.
func TestReportWaitsForTheServer(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, data)
	addr := strings.TrimPrefix(srv.url, "http://")
	var tok protocol.EnrollTokenCreateResponse
	call(t, "POST", srv.url+protocol.PathEnrollTokens, srv.admin, protocol.EnrollTokenCreateRequest{}, &tok)
	root := devRoot(t, storyPackages...)
	state := t.TempDir()
	must(t, nil, "rpmfleet-agent", "enroll", "--server", srv.url, "--token", tok.Token, "--name", "pi-away", "--state-dir", state, "--root", root)

	srv.stop(t)
	r := run(t, nil, "rpmfleet-agent", "report", "--once", "--attempts", "1", "--root", root, "--state-dir", state)
	if r.code == 0 || !strings.Contains(r.stderr, "queued") {
		t.Fatalf("report to a stopped server: exit %d, stderr %s; want a failure saying the report is queued", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(state, "report-pending.json")); err != nil {
		t.Fatalf("no queued report: %v", err)
	}

	srv = startServerAt(t, data, addr)
	must(t, nil, "rpmfleet-agent", "report", "--once", "--root", root, "--state-dir", state)
	if _, err := os.Stat(filepath.Join(state, "report-pending.json")); !os.IsNotExist(err) {
		t.Errorf("the queued report is still there after delivery: %v", err)
	}
	var d protocol.Device
	if code, raw := call(t, "GET", srv.url+protocol.PathDevice+"pi-away", srv.admin, nil, &d); code != 200 {
		t.Fatalf("device: %d %s", code, raw)
	}
	if d.Packages != len(storyPackages) || d.LastSeen.IsZero() {
		t.Errorf("after the outage the server holds %+v, want %d packages and a last-seen time", d.DeviceSummary, len(storyPackages))
	}
}

// TestKillLosesNoAcknowledgedReport: devices post reports as fast as they
// can, the server is killed with SIGKILL in the middle, and after a restart
// every report it had acknowledged is still there (resending it is answered
// as a duplicate) and every device holds the set of its last acknowledged
// report, or of the one it sent next, which the server may have committed
// without the answer reaching the device.
func TestKillLosesNoAcknowledgedReport(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, data)
	addr := strings.TrimPrefix(srv.url, "http://")
	const devices = 4
	creds := make([]string, devices)
	for i := range creds {
		creds[i] = enrollDevice(t, srv, fmt.Sprintf("flow-%d", i)).Credential
	}

	type acked struct {
		id   string
		pkgs int
	}
	var mu sync.Mutex // guards last and inflight
	last := make([][]acked, devices)
	// inflight is the size of the set a device sent and got no answer
	// for: the server may have committed it just before the kill.
	inflight := make([]int, devices)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 5 * time.Second}
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				pkgs := []protocol.Package{{Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "aarch64"}}
				for j := range k % 7 {
					pkgs = append(pkgs, protocol.Package{Name: fmt.Sprintf("pkg%d", j), Version: "1", Release: "1.el9", Arch: "noarch"})
				}
				id := fmt.Sprintf("flow-%d-%d", i, k)
				mu.Lock()
				inflight[i] = len(pkgs)
				mu.Unlock()
				ok := postReport(hc, srv.url, creds[i], fullReport(id, pkgs))
				if !ok {
					return // the server is gone
				}
				mu.Lock()
				last[i] = append(last[i], acked{id, len(pkgs)})
				inflight[i] = 0
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	srv.kill()
	close(stop)
	wg.Wait()

	srv = startServerAt(t, data, addr)
	total := 0
	for i := range devices {
		if len(last[i]) == 0 {
			t.Fatalf("device %d got no report acknowledged before the kill", i)
		}
		total += len(last[i])
		for _, a := range last[i] {
			var resp protocol.ReportResponse
			code, raw := call(t, "POST", srv.url+protocol.PathReport, creds[i], fullReport(a.id, nil), &resp)
			if code != 200 || !resp.Duplicate {
				t.Errorf("acknowledged report %s after the kill: %d %s, want a duplicate", a.id, code, raw)
			}
		}
		var d protocol.Device
		call(t, "GET", srv.url+protocol.PathDevice+fmt.Sprintf("flow-%d", i), srv.admin, nil, &d)
		if want := last[i][len(last[i])-1].pkgs; d.Packages != want && d.Packages != inflight[i] {
			t.Errorf("flow-%d holds %d packages after the kill, want %d from its last acknowledged report (or %d from the one in flight)", i, d.Packages, want, inflight[i])
		}
	}
	t.Logf("%d reports acknowledged before SIGKILL, all found after restart", total)
}

func postReport(hc *http.Client, url, cred string, r protocol.Report) bool {
	code, _, err := rawCall(hc, "POST", url+protocol.PathReport, cred, r)
	return err == nil && code == 200
}

// TestAgentResyncsOnDigestMismatch: when the agent's idea of what the server
// holds is wrong (here its acknowledged-set file lost a package), the delta's
// digest does not match, the server asks for the full list, and the same run
// of the agent sends it.
func TestAgentResyncsOnDigestMismatch(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "data"))
	var tok protocol.EnrollTokenCreateResponse
	call(t, "POST", srv.url+protocol.PathEnrollTokens, srv.admin, protocol.EnrollTokenCreateRequest{}, &tok)
	root := devRoot(t, storyPackages...)
	state := t.TempDir()
	must(t, nil, "rpmfleet-agent", "enroll", "--server", srv.url, "--token", tok.Token, "--name", "pi-drift", "--state-dir", state, "--root", root)
	must(t, nil, "rpmfleet-agent", "report", "--once", "--root", root, "--state-dir", state)

	ackedPath := filepath.Join(state, "inventory-acked.json")
	b, err := os.ReadFile(ackedPath)
	if err != nil {
		t.Fatal(err)
	}
	var acked []protocol.Package
	if err := json.Unmarshal(b, &acked); err != nil || len(acked) != len(storyPackages) {
		t.Fatalf("acknowledged set %s: %v", b, err)
	}
	b, _ = json.Marshal(acked[1:])
	if err := os.WriteFile(ackedPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := must(t, nil, "rpmfleet-agent", "report", "--once", "--root", root, "--state-dir", state)
	if !strings.Contains(r.stdout, "full inventory") || !strings.Contains(r.stderr, "full inventory") {
		t.Errorf("after the drift the agent did not resend in full:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	var d protocol.Device
	call(t, "GET", srv.url+protocol.PathDevice+"pi-drift", srv.admin, nil, &d)
	if d.Packages != len(storyPackages) {
		t.Errorf("server holds %d packages, want %d", d.Packages, len(storyPackages))
	}
}
