// Package remotebroker publishes the fleet server's feed notices and
// commands through an external MQTT broker (Mosquitto, EMQX, a bridge), for
// a server that runs no broker of its own: several replicas behind a load
// balancer share one broker cluster. It is a fleet.Publisher over the paho
// client: one connection, re-established on its own when lost, QoS 1
// publications each bounded by a timeout.
//
// Threat model. The server logs in with a username and password of its
// own, which the broker's ACL must allow to publish on every rpmfleet
// topic (see internal/mqtttest's FleetACL); the password is read from a file
// and never logged. Over mqtts:// the broker's certificate is checked
// against the given roots (or the system's). The broker is not trusted for
// what it carries: everything the server publishes is signed with its
// notice key, so a broker that reorders, replays or forges messages gets a
// device to do nothing it would not do on its own poll.
package remotebroker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Defaults.
const (
	// DefaultConnectTimeout bounds the first connection.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultPublishTimeout bounds one publication, until the broker's
	// PUBACK.
	DefaultPublishTimeout = 5 * time.Second
)

// Sentinel errors.
var (
	// ErrTimeout: the broker did not acknowledge in time.
	ErrTimeout = errors.New("remotebroker: timed out")
	// ErrBadOptions: the options cannot work (no URL, a scheme paho does
	// not speak, an unreadable password or CA file).
	ErrBadOptions = errors.New("remotebroker: bad options")
)

// Options configure a connection to an external broker.
type Options struct {
	// URL is the broker: mqtt:// or tcp:// for plain TCP; mqtts://,
	// ssl:// or tls:// for TLS. A missing port means 1883, or 8883 with
	// TLS.
	URL string
	// Username and Password log the server in.
	Username, Password string
	// RootCAs check the broker's TLS certificate; nil means the system's.
	RootCAs *x509.CertPool
	// ClientID is the MQTT client id; empty means "rpmfleet-server-" and
	// the host name, so replicas do not take over each other's session.
	ClientID string
	// ConnectTimeout and PublishTimeout: zero means the defaults.
	ConnectTimeout, PublishTimeout time.Duration
	// Log receives connection losses and reconnections; nil discards.
	Log *slog.Logger
}

// Publisher is a connection to an external broker.
type Publisher struct {
	c       paho.Client
	timeout time.Duration
	url     string
}

// Dial connects to the broker and returns once the broker accepted the
// connection, or with an error (bad credentials, unreachable) after
// ConnectTimeout. The connection is re-established on its own if lost
// later; Publish fails while it is down.
func Dial(opts Options) (*Publisher, error) {
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.PublishTimeout == 0 {
		opts.PublishTimeout = DefaultPublishTimeout
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(opts.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: url %q: not a broker URL", ErrBadOptions, opts.URL)
	}
	tlsOn, err := protocol.BrokerTLS(u.Scheme)
	if err != nil {
		return nil, fmt.Errorf("%w: url %q: %w", ErrBadOptions, opts.URL, err)
	}
	if u.Port() == "" {
		port := "1883"
		if tlsOn {
			port = "8883"
		}
		u.Host += ":" + port
	}
	if opts.ClientID == "" {
		host, _ := os.Hostname()
		opts.ClientID = "rpmfleet-server-" + host
	}
	redacted := u.Redacted()
	log = log.With("component", "remotebroker", "broker", redacted)
	co := paho.NewClientOptions().
		AddBroker(u.String()).
		SetClientID(opts.ClientID).
		SetUsername(opts.Username).
		SetPassword(opts.Password).
		SetCleanSession(true).
		SetConnectTimeout(opts.ConnectTimeout).
		SetWriteTimeout(opts.PublishTimeout).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(30 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			log.Warn("connection to the MQTT broker lost; reconnecting", "err", err)
		}).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			log.Info("reconnecting to the MQTT broker")
		}).
		SetOnConnectHandler(func(paho.Client) {
			log.Info("connected to the MQTT broker")
		})
	if tlsOn {
		co.SetTLSConfig(&tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12})
	}
	c := paho.NewClient(co)
	tok := c.Connect()
	if !tok.WaitTimeout(opts.ConnectTimeout) {
		c.Disconnect(0)
		return nil, fmt.Errorf("connect to %s: %w after %v", redacted, ErrTimeout, opts.ConnectTimeout)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redacted, err)
	}
	return &Publisher{c: c, timeout: opts.PublishTimeout, url: redacted}, nil
}

// Publish sends payload on topic at QoS 1, retained when asked, and waits
// for the broker's acknowledgement at most PublishTimeout. It is a
// fleet.Publisher.
func (p *Publisher) Publish(topic string, payload []byte, retained bool) error {
	if topic == "" || strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("publish to %q: %w: not a topic name", topic, ErrBadOptions)
	}
	if !p.c.IsConnectionOpen() {
		return fmt.Errorf("publish to %q: not connected to %s (reconnecting)", topic, p.url)
	}
	tok := p.c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(p.timeout) {
		return fmt.Errorf("publish to %q on %s: %w after %v", topic, p.url, ErrTimeout, p.timeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("publish to %q on %s: %w", topic, p.url, err)
	}
	return nil
}

// Close disconnects, waiting up to a quarter second for publications in
// flight.
func (p *Publisher) Close() { p.c.Disconnect(250) }

// ReadPassword returns the first line of a password file.
func ReadPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: password file: %w", ErrBadOptions, err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimRight(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("%w: password file %s: the first line is empty", ErrBadOptions, path)
	}
	return pw, nil
}

// ReadCA returns a pool of the PEM certificates in path.
func ReadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: ca: %w", ErrBadOptions, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: ca %s: no PEM certificate in it", ErrBadOptions, path)
	}
	return pool, nil
}
