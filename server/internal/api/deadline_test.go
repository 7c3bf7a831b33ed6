package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/peer"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// These tests run the API behind a real net/http server on loopback and
// send bodies the way an attacker (a byte at a time) and a slow but honest
// client (steadily, for longer than the small-body limit) would.

// liveServer serves the API with opts over a real SQLite store; it returns
// the base URL, an admin token and the service.
func liveServer(t *testing.T, opts Options) (string, string, *fleet.Service, *Server) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := fleet.New(ctx, st, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: "test", Role: protocol.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	opts.TempDir = t.TempDir()
	h := New(svc, opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, tok.Token, svc, h
}

// drip sends a request's headers announcing length bytes of body, then the
// body one byte every gap, until the server answers or closes. It returns
// the status line (empty if the connection was closed without one), how
// many body bytes were sent, and how long the server took.
func drip(t *testing.T, base, path, secret string, length int, gap time.Duration) (status string, sent int64, took time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	auth := ""
	if secret != "" {
		auth = "Authorization: Bearer " + secret + "\r\n"
	}
	start := time.Now()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: fleet\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n", path, auth, length)
	var n atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for range length {
			select {
			case <-stop:
				return
			case <-time.After(gap):
			}
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	// 20 s is many times every limit the tests set: a server that waits
	// for the whole body fails here.
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: the server still waits for the body after %v, %d bytes sent", path, time.Since(start), n.Load())
	}
	return strings.TrimSpace(line), n.Load(), time.Since(start)
}

func TestSlowBodiesAreCutOff(t *testing.T) {
	base, admin, svc, _ := liveServer(t, Options{BodyTimeout: 500 * time.Millisecond, MinBodyRate: 1000})
	ctx := t.Context()
	et, err := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: et.Token, Name: "pi"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, secret string
	}{
		// Enrolment needs no login: anyone can try this.
		{"enrolment", protocol.PathEnroll, ""},
		{"report", protocol.PathReport, dev.Credential},
		{"import", protocol.PathImport, admin},
		{"enrolment token", protocol.PathEnrollTokens, admin},
		// Refused for its credential, but the body still arrives (net/http
		// reads what is left after the handler) under the same deadline.
		{"report with no credential", protocol.PathReport, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// 200 bytes at one every 50 ms: 10 s for the whole body, and
			// 20 bytes a second, far under the 1000 a report must keep up.
			status, sent, took := drip(t, base, tt.path, tt.secret, 200, 50*time.Millisecond)
			if sent >= 200 {
				t.Fatalf("the whole body went through before the server answered %q", status)
			}
			if tt.secret != "" && !strings.Contains(status, "408") {
				t.Errorf("status %q, want 408 Request Timeout", status)
			}
			t.Logf("cut off after %d bytes in %v: %q", sent, took.Round(time.Millisecond), status)
		})
	}
	// The server still serves.
	if code := get(t, base+protocol.PathSummary, admin); code != 200 {
		t.Errorf("summary after the drips: %d", code)
	}
}

func get(t *testing.T, url, secret string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// steadyReader gives its data chunk bytes at a time, one chunk every gap.
type steadyReader struct {
	data  []byte
	chunk int
	gap   time.Duration
}

func (r *steadyReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.gap)
	n := copy(p[:min(len(p), r.chunk)], r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestSteadyImportOutlastsTheSmallLimits(t *testing.T) {
	// The real AlmaLinux 10 OSV database (217 KiB) sent at about
	// 200 KiB/s: longer than BodyTimeout and WriteTimeout, well above
	// MinBodyRate. Storing it takes more time after the body is in.
	const limit = 300 * time.Millisecond
	base, admin, _, _ := liveServer(t, Options{BodyTimeout: limit, WriteTimeout: limit, MinBodyRate: 16 << 10})
	data, err := os.ReadFile(fixtures.Path(t, "almalinux-osv/almalinux10.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	req, _ := http.NewRequest("POST", base+protocol.PathImport, &steadyReader{data: data, chunk: 8 << 10, gap: 40 * time.Millisecond})
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("import: %v (after %v)", err, time.Since(start))
	}
	defer resp.Body.Close()
	var ir protocol.ImportResponse
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&ir) != nil || ir.Advisories == 0 {
		t.Fatalf("import: %d %+v", resp.StatusCode, ir)
	}
	took := time.Since(start)
	if took < 2*limit {
		t.Fatalf("the import took %v, under twice the limits: the test proves nothing", took)
	}
	t.Logf("imported %d advisories in %v with a %v body and write limit", ir.Advisories, took.Round(time.Millisecond), limit)
}

func TestEnrolmentsInFlightBounded(t *testing.T) {
	base, _, svc, h := liveServer(t, Options{MaxEnrolling: 1})
	et, err := svc.CreateEnrollToken(t.Context(), protocol.EnrollTokenCreateRequest{Uses: 2})
	if err != nil {
		t.Fatal(err)
	}
	enrol := func(name string) (*http.Response, protocol.Error) { return enrolFrom(t, base, et.Token, "", name) }
	// One enrolment in flight (its slot taken, as a handler would).
	h.enrolling <- struct{}{}
	resp, e := enrol("pi-a")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(e.Error, "too many enrolments") {
		t.Fatalf("enrolment past the bound: %d %q (Retry-After %q), want 503 with Retry-After", resp.StatusCode, e.Error, resp.Header.Get("Retry-After"))
	}
	// Refused before the token was spent: both uses remain.
	<-h.enrolling
	for _, name := range []string{"pi-a", "pi-b"} {
		if resp, e := enrol(name); resp.StatusCode != 200 {
			t.Errorf("enrol %s once the slot is free: %d %s", name, resp.StatusCode, e.Error)
		}
	}
}

// TestEnrolmentsInFlightBoundedPerAddress: an address with its share of
// enrolments in flight is answered 503 for more, before its token is
// spent, while another address still enrols.
func TestEnrolmentsInFlightBoundedPerAddress(t *testing.T) {
	base, _, svc, h := liveServer(t, Options{MaxEnrolling: 10, MaxEnrollingPerAddress: 2})
	et, err := svc.CreateEnrollToken(t.Context(), protocol.EnrollTokenCreateRequest{Uses: 2})
	if err != nil {
		t.Fatal(err)
	}
	enrolFrom := func(ip, name string) (*http.Response, protocol.Error) { return enrolFrom(t, base, et.Token, ip, name) }
	// 127.0.0.1 has two enrolments in flight (as handlers would hold them).
	busy := peer.Of("127.0.0.1:40000")
	h.enrollers.Take(busy)
	h.enrollers.Take(busy)
	resp, e := enrolFrom("127.0.0.1", "pi-a")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(e.Error, "from your address (2)") {
		t.Fatalf("enrolment past the address's share: %d %q (Retry-After %q), want 503 naming the address's bound", resp.StatusCode, e.Error, resp.Header.Get("Retry-After"))
	}
	if resp, e := enrolFrom("127.0.0.2", "pi-b"); resp.StatusCode != 200 {
		t.Fatalf("another address held out: %d %s", resp.StatusCode, e.Error)
	}
	// The refused one spent nothing: the token's other use remains.
	h.enrollers.Give(busy)
	if resp, e := enrolFrom("127.0.0.1", "pi-a"); resp.StatusCode != 200 {
		t.Errorf("enrol once the address's slot is free: %d %s", resp.StatusCode, e.Error)
	}
	if n := h.enrollers.Peers(); n != 1 {
		t.Errorf("%d addresses hold enrolment slots, want 1 (the one taken by hand)", n)
	}
}

// enrolFrom posts an enrolment of name with token, from the loopback
// address ip ("" for the system's choice), and returns the answer and its
// error body.
func enrolFrom(t *testing.T, base, token, ip, name string) (*http.Response, protocol.Error) {
	t.Helper()
	var d net.Dialer
	if ip != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	defer c.CloseIdleConnections()
	body := fmt.Sprintf(`{"token":%q,"name":%q}`, token, name)
	resp, err := c.Post(base+protocol.PathEnroll, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e protocol.Error
	json.NewDecoder(resp.Body).Decode(&e)
	return resp, e
}
