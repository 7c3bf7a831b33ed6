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

func httpClient(cfg *tls.Config) *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			TLSClientConfig:     cfg,
			TLSHandshakeTimeout: 15 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
