package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
)

// pinnedClients are the agent's two HTTPS clients for srv: the one that
// enrols by fingerprint and the one that trusts the CA kept since.
func pinnedClients(t *testing.T, srv *httptest.Server) map[string]*http.Client {
	t.Helper()
	cert := srv.Certificate()
	sum := sha256.Sum256(cert.Raw)
	pin, err := NewPin("sha256:" + hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	enrol, err := pin.HTTPClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := CAClient(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*http.Client{"pin": enrol, "ca": kept}
}

// TestNewConnectionResumesTLS: the server closes an idle connection after
// two minutes, so an hourly poll opens a new one; it must resume the TLS
// session rather than make a full handshake that sends the certificate
// chain again (issue 5's bytes per idle day). Without a session cache the
// second request's DidResume is false.
func TestNewConnectionResumesTLS(t *testing.T) {
	var mu sync.Mutex // guards resumed
	var resumed []bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		resumed = append(resumed, r.TLS.DidResume)
		mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
	}))
	defer srv.Close()
	for name, hc := range pinnedClients(t, srv) {
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			resumed = nil
			mu.Unlock()
			for range 3 {
				resp, err := hc.Get(srv.URL + "/plan")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				// As the server's idle timeout would: the next poll
				// needs a new connection.
				srv.CloseClientConnections()
				hc.CloseIdleConnections()
			}
			mu.Lock()
			defer mu.Unlock()
			want := []bool{false, true, true}
			if len(resumed) != 3 || resumed[0] != want[0] || resumed[1] != want[1] || resumed[2] != want[2] {
				t.Errorf("TLS resumed per connection: %v, want %v", resumed, want)
			}
		})
	}
}

// TestNoTCPKeepAliveProbes: the agent's HTTPS connections carry no TCP
// keepalive probes (Go's default sends one every 15 s while a connection
// idles, 104 bytes on the wire each with its ACK).
func TestNoTCPKeepAliveProbes(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	for name, hc := range pinnedClients(t, srv) {
		t.Run(name, func(t *testing.T) {
			tr, ok := hc.Transport.(*http.Transport)
			if !ok || tr.DialContext == nil {
				t.Fatalf("transport %T has no DialContext", hc.Transport)
			}
			c, err := tr.DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rc, err := c.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var on int
			var gerr error
			if err := rc.Control(func(fd uintptr) {
				on, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
			}); err != nil || gerr != nil {
				t.Fatalf("getsockopt SO_KEEPALIVE: %v %v", err, gerr)
			}
			if on != 0 {
				t.Errorf("SO_KEEPALIVE is %d on the agent's HTTPS connection, want 0", on)
			}
		})
	}
}
