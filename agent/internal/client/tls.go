package client

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrFingerprint is returned when the server's chain holds no certificate
// with the fingerprint given at enrolment.
var ErrFingerprint = errors.New("client: server certificate chain does not hold the pinned CA")

// Pin trusts, for enrolment, the CA whose certificate has a fingerprint
// ("sha256:" and 64 hex digits, as rpmfleet-server --tls auto logs it).
// A server whose chain lacks it, or whose certificate that CA did not
// sign for the server's name, is refused before anything is sent. After the
// handshake, CA returns the pinned CA certificate (PEM) for the agent to
// keep and trust from then on (CAClient).
type Pin struct {
	want []byte
	ca   []byte // DER of the pinned CA once seen
}

// NewPin parses a fingerprint.
func NewPin(fingerprint string) (*Pin, error) {
	h, ok := strings.CutPrefix(strings.ToLower(fingerprint), "sha256:")
	b, err := hex.DecodeString(h)
	if !ok || err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("ca fingerprint %q: want sha256: and 64 hex digits", fingerprint)
	}
	return &Pin{want: b}, nil
}

// HTTPClient returns an HTTP client for serverURL that trusts only the
// pinned CA.
func (p *Pin) HTTPClient(serverURL string) (*http.Client, error) {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme != "https" {
		return nil, fmt.Errorf("a CA fingerprint needs an https:// server URL, not %q", serverURL)
	}
	host := u.Hostname()
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is verified below, against the pinned CA only.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrFingerprint
			}
			var ca *x509.Certificate
			for _, c := range cs.PeerCertificates {
				sum := sha256.Sum256(c.Raw)
				if string(sum[:]) == string(p.want) {
					ca = c
				}
			}
			if ca == nil {
				return ErrFingerprint
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			p.ca = ca.Raw
			return nil
		},
	}
	return httpClient(cfg), nil
}

// CA returns the pinned CA certificate as PEM, once a handshake saw it.
func (p *Pin) CA() []byte {
	if p.ca == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca})
}

// CAClient returns an HTTP client that trusts only the CA certificates in
// caPEM, as kept since enrolment.
func CAClient(caPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("pinned ca: no PEM certificate")
	}
	return httpClient(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}), nil
}

// sessionCacheSize is how many TLS sessions the agent keeps: it talks to one
// server.
const sessionCacheSize = 4

// httpClient is the agent's HTTPS client. It is built for a device that
// polls once an hour over a metered link (issue 5: under 50 KB a day):
//   - The server closes an idle connection after two minutes, so each
//     hourly poll opens a new one. A TLS session cache lets it resume the
//     last session (TLS 1.3 PSK from the server's session ticket) instead of
//     a full handshake, which sends the certificate chain and its signature
//     again.
//   - No TCP keepalive probes: Go's default sends one every 15 s on an
//     idle connection, each a segment and its ACK (104 bytes on the wire),
//     for the two minutes the server keeps the connection open. The HTTP
//     request's own timeouts detect a dead server.
//
// Measured on the real binaries (server/integration/bench_daemon_test.go,
// docs/benchmarks.md), the two took one poll from 7.6 KB to 5.7 KB on the
// wire, 40 TCP segments to 18.
func httpClient(cfg *tls.Config) *http.Client {
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(sessionCacheSize)
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: -1}).DialContext,
			TLSClientConfig:     cfg,
			TLSHandshakeTimeout: 15 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
