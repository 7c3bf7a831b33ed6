// Package mqtttest starts a real Mosquitto broker for tests: the external
// broker that rpmfleet supports next to its embedded one. Each broker gets
// a free loopback port, a generated configuration, password and ACL file
// in the test's temporary directory, and is stopped when the test ends.
//
// It lives in pkg/ because both the agent's tests (its client against an
// external broker) and the server's tests (publishing through one) use it.
package mqtttest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Options configures a Mosquitto broker.
type Options struct {
	// Users maps usernames to passwords. With none, anonymous clients are
	// allowed and no ACL applies; with some, only they may connect.
	Users map[string]string
	// ACL is the content of Mosquitto's acl_file; empty means none (every
	// authenticated client may use every topic). FleetACL gives rpmfleet's.
	ACL string
	// TLS makes the listener speak TLS only, with a self-signed
	// certificate for 127.0.0.1 made for this broker; RootCAs trusts it.
	TLS bool
}

// FleetACL is rpmfleet's topic policy in Mosquitto's acl_file syntax, the
// same rules the embedded broker enforces: a device (username = device id)
// reads the advisory feed and its own command topic and writes its own
// state and online topics; serverUser may use every rpmfleet topic.
func FleetACL(serverUser string) string {
	const dev = "%u"
	return strings.Join([]string{
		"pattern read " + protocol.TopicAdvisoryFeed,
		"pattern read " + protocol.DeviceCommandTopic(dev),
		"pattern write " + protocol.DeviceStateTopic(dev),
		"pattern write " + protocol.DeviceOnlineTopic(dev),
		"user " + serverUser,
		"topic readwrite " + protocol.TopicPrefix + "#",
		"",
	}, "\n")
}

// Mosquitto is a running broker.
type Mosquitto struct {
	// Addr is the broker's loopback address, "127.0.0.1:PORT".
	Addr string

	t    testing.TB
	bin  string
	conf string
	log  *syncBuffer
	tls  bool
	pool *x509.CertPool

	mu   sync.Mutex // guards cmd and done
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts Mosquitto and waits until it accepts connections. It fails
// the test if Mosquitto is not installed or does not come up; t.Cleanup
// stops it.
func Start(t testing.TB, opts Options) *Mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto" // Debian installs it outside a user's PATH
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("mqtttest: mosquitto is not installed: run make deps")
		}
	}
	dir := t.TempDir()
	m := &Mosquitto{t: t, bin: bin, log: new(syncBuffer), tls: opts.TLS}
	if opts.TLS {
		m.pool = writeCert(t, dir)
	}
	// A free port can be taken between finding and binding it; try again.
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("mqtttest: find a free port: %v", err)
		}
		m.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		m.conf = writeConfig(t, dir, port, opts)
		err = m.start()
		if err == nil {
			break
		}
		if attempt == 2 || !strings.Contains(m.log.String(), "in use") {
			t.Fatalf("mqtttest: %v\nmosquitto log:\n%s", err, m.log.String())
		}
	}
	t.Cleanup(m.Stop)
	return m
}

// URL returns the broker URL as the agent's configuration writes it:
// tcp://, or ssl:// with Options.TLS.
func (m *Mosquitto) URL() string {
	if m.tls {
		return "ssl://" + m.Addr
	}
	return "tcp://" + m.Addr
}

// RootCAs returns a pool holding the broker's certificate, nil without
// Options.TLS.
func (m *Mosquitto) RootCAs() *x509.CertPool { return m.pool }

// Log returns what Mosquitto has logged so far.
func (m *Mosquitto) Log() string { return m.log.String() }

// Stop stops the broker (SIGTERM, then SIGKILL after 5 s) and waits for it.
// Stopping a stopped broker does nothing.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Freeze stops the broker's process (SIGSTOP) until Thaw: its
// connections stay open and the kernel takes what clients send, but
// nothing is answered, as on a network partition that holds the packets.
func (m *Mosquitto) Freeze() { m.signal(syscall.SIGSTOP) }

// Thaw lets a frozen broker run again (SIGCONT).
func (m *Mosquitto) Thaw() { m.signal(syscall.SIGCONT) }

func (m *Mosquitto) signal(sig syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		_ = m.cmd.Process.Signal(sig)
	}
}

// Restart starts a stopped broker again on the same port, as a broker
// coming back after an outage.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	m.Stop()
	if err := m.start(); err != nil {
		m.t.Fatalf("mqtttest: restart: %v\nmosquitto log:\n%s", err, m.log.String())
	}
}

// start runs mosquitto on m.conf and waits until m.Addr accepts a TCP
// connection or mosquitto exits.
func (m *Mosquitto) start() error {
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = m.log, m.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", m.bin, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("mosquitto exited before it was ready: %v", waitErr)
		default:
		}
		c, err := net.DialTimeout("tcp", m.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return errors.New("mosquitto not listening after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	return nil
}

// writeConfig writes mosquitto.conf (and the password and ACL files it
// names) into dir and returns its path.
func writeConfig(t testing.TB, dir string, port int, opts Options) string {
	t.Helper()
	var conf strings.Builder
	fmt.Fprintf(&conf, "listener %d 127.0.0.1\n", port)
	if opts.TLS {
		fmt.Fprintf(&conf, "certfile %s\nkeyfile %s\n", filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	}
	conf.WriteString("persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nconnection_messages true\n")
	// Run as root, mosquitto would switch to the mosquitto user, which
	// cannot read the test's temporary directory.
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		conf.WriteString("user root\n")
	}
	if len(opts.Users) == 0 {
		conf.WriteString("allow_anonymous true\n")
	} else {
		var pw strings.Builder
		for name, pass := range opts.Users {
			if strings.ContainsAny(name, ":\n") || strings.Contains(pass, "\n") {
				t.Fatalf("mqtttest: username %q or its password cannot go in a password file", name)
			}
			fmt.Fprintf(&pw, "%s:%s\n", name, pass)
		}
		pwFile := filepath.Join(dir, "passwd")
		if err := os.WriteFile(pwFile, []byte(pw.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		// -U replaces the clear-text passwords with their hashes.
		if out, err := exec.Command("mosquitto_passwd", "-U", pwFile).CombinedOutput(); err != nil {
			t.Fatalf("mqtttest: mosquitto_passwd -U %s: %v: %s (run make deps)", pwFile, err, out)
		}
		fmt.Fprintf(&conf, "allow_anonymous false\npassword_file %s\n", pwFile)
	}
	if opts.ACL != "" {
		aclFile := filepath.Join(dir, "acl")
		if err := os.WriteFile(aclFile, []byte(opts.ACL), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "acl_file %s\n", aclFile)
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeCert writes a fresh self-signed ECDSA certificate for 127.0.0.1
// and localhost, valid for a day, to dir/cert.pem and dir/key.pem and
// returns a pool that trusts it.
func writeCert(t testing.TB, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mqtttest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer collects mosquitto's output, written by exec's copying
// goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
