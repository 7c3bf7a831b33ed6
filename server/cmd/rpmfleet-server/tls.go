package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLS files made by --tls auto, in DATA/tls.
const (
	caCertFile     = "ca.crt"
	caKeyFile      = "ca.key"
	serverCertFile = "server.crt"
	serverKeyFile  = "server.key"
)

// autoTLS returns the server's certificate for --tls auto, making on first
// start a CA of its own and a server certificate it signs, for localhost,
// the loopback addresses, the host name and listenHost. The CA's key never
// leaves dir; agents pin the CA by the SHA-256 fingerprint of its
// certificate (caFingerprint), given at enrolment. The chain served holds
// the CA certificate, so an agent can find the pinned one in it.
func autoTLS(dir, listenHost string) (tls.Certificate, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("make tls folder: %w", err)
	}
	caPath := filepath.Join(dir, caCertFile)
	if _, err := os.Stat(caPath); errors.Is(err, fs.ErrNotExist) {
		if err := makeCerts(dir, listenHost); err != nil {
			return tls.Certificate{}, "", err
		}
	}
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("read tls ca: %w", err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return tls.Certificate{}, "", fmt.Errorf("read tls ca %s: no PEM certificate", caPath)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile))
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("load tls certificate: %w", err)
	}
	cert.Certificate = append(cert.Certificate, block.Bytes)
	return cert, caFingerprint(block.Bytes), nil
}

// caFingerprint is how agents name a pinned CA: "sha256:" and the hex
// SHA-256 of its DER certificate.
func caFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func makeCerts(dir, listenHost string) error {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "rpmfleet-server CA", Organization: []string{"rpmfleet"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("make tls ca: %w", err)
	}
	ca, _ = x509.ParseCertificate(caDER)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "rpmfleet-server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		leaf.DNSNames = append(leaf.DNSNames, h)
	}
	if ip := net.ParseIP(listenHost); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
		leaf.IPAddresses = append(leaf.IPAddresses, ip)
	} else if ip == nil && listenHost != "" && listenHost != "localhost" {
		leaf.DNSNames = append(leaf.DNSNames, listenHost)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("make tls certificate: %w", err)
	}
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// The CA certificate goes last: its presence marks a complete set.
	// Every file is 0600, the certificates too: they are public, but the
	// data folder is the server user's alone (datadir.go), and an admin
	// copies ca.crt out of it as that user.
	for _, f := range []struct {
		name, typ string
		der       []byte
	}{
		{caKeyFile, "PRIVATE KEY", caKeyDER},
		{serverKeyFile, "PRIVATE KEY", keyDER},
		{serverCertFile, "CERTIFICATE", leafDER},
		{caCertFile, "CERTIFICATE", caDER},
	} {
		path := filepath.Join(dir, f.name)
		os.Remove(path) // a leftover of an interrupted first start
		if err := writeSecret(path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})); err != nil {
			return err
		}
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
