// Package broker is the MQTT broker embedded in rpmfleet-server: the push
// half of "push, with poll as the fallback". The server publishes the
// signed advisory-feed notice and per-device commands through it; devices
// publish their retained state and presence.
//
// Threat model. Anyone who can reach the listener may try to connect, so
// every connection authenticates with a username and password that the
// server's Authenticator maps to a Principal: the server itself or one
// device. Anonymous connections are refused. A device is confined to its
// own topics (see pkg/protocol): it may subscribe only to the advisory feed
// and its own command topic, publish only to its own state and online
// topics, and set a last will only on its own online topic; its client id
// must be its device id, so it cannot take over another device's session.
// Everything else is refused: a subscription gets the "not authorized"
// return code, a publication is dropped, and a message the server
// publishes on another device's topic is never delivered to it, because
// delivery is checked again per subscriber. The broker is not what makes
// a device safe: notices and plans are signed with the server's Ed25519
// key, so a device that reads another's command or a forged feed notice
// gains nothing it can act on. The ACL keeps devices from spying on each
// other and from spoofing each other's state and presence. Devices log in
// with their credential, so off loopback the listener must speak TLS
// (Options.TLS, the API's certificate); the server refuses to run it in
// clear there.
//
// Before a connection logs in it is an outsider's: it must send its
// CONNECT within a deadline, that CONNECT is held to a few kilobytes, only
// so many connections may wait to log in at once, and running out of file
// descriptors pauses the accept loop instead of ending it (listener.go). A
// device that is revoked or deleted is disconnected at once and refused
// from then on (DisconnectDevice), whatever its credential.
//
// mochi-mqtt's large Hook interface is met by one adapter (hook.go) that
// speaks this package's small Authenticator, and its Listener by one
// listener (listener.go); no mochi type leaves this package.
package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultListen is where the broker listens unless told otherwise: loopback
// only, so a fresh server exposes nothing until its admin chooses to.
const DefaultListen = "127.0.0.1:1883"

// ListenOff as Options.Listen runs the broker with no listener: the server
// can still call Publish, and nobody receives it.
const ListenOff = "off"

// MaxPacketSize is the largest MQTT packet the broker accepts.
const MaxPacketSize = 256 << 10

// Sentinel errors.
var (
	// ErrNoAuthenticator: Options.Auth is nil; the broker never runs open.
	ErrNoAuthenticator = errors.New("broker: no authenticator")
	// ErrBadTopic: a server-side Publish or Subscribe outside
	// protocol.TopicPrefix, or a Publish to a topic with wildcards.
	ErrBadTopic = errors.New("broker: bad topic")
)

// Principal is who a connection authenticated as: the server itself
// (Server true, DeviceID empty) or one device (DeviceID set, Server false).
// Any other combination, the zero value included, is refused.
type Principal struct {
	// Server marks the server's own connections (a server replica, a
	// bridge); they may use every topic under protocol.TopicPrefix.
	Server bool
	// DeviceID is the device's id, as it appears in its topics.
	DeviceID string
}

// Authenticator checks a connection's credentials. The fleet server backs
// it with its store of device credentials (stored hashed).
type Authenticator interface {
	// Authenticate returns who username and password belong to, and
	// false when they belong to nobody.
	Authenticate(username, password string) (principal Principal, ok bool)
}

// Options configures a Broker.
type Options struct {
	// Listen is the TCP address to listen on; empty means DefaultListen
	// and ListenOff means no listener. Port 0 picks a free port (see
	// Broker.Addr).
	Listen string
	// TLS, when set, makes the listener speak MQTT over TLS (mqtts://).
	TLS *tls.Config
	// Auth authenticates every connection; required.
	Auth Authenticator
	// LoginTimeout is how long a new connection has to send its whole
	// CONNECT; zero means DefaultLoginTimeout.
	LoginTimeout time.Duration
	// MaxPending is how many connections may wait to log in at once;
	// more are closed as they arrive. Zero means DefaultMaxPending.
	MaxPending int
	// MaxPendingPerAddress is how many of those may come from one IPv4
	// address or IPv6 /64; zero means DefaultMaxPendingPerAddress.
	MaxPendingPerAddress int
	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger
}

// Broker is a running embedded MQTT broker.
type Broker struct {
	srv    *mqtt.Server
	tcp    *listener // nil when Listen is ListenOff
	hook   *aclHook
	log    *slog.Logger
	nextID atomic.Int64 // inline subscription ids
}

// Message is one message delivered to a Subscribe callback.
type Message struct {
	// Topic is the topic it was published on.
	Topic string
	// Payload is its payload, the callback's to keep.
	Payload []byte
	// Retained is set for a stored message sent on subscribe, and for a
	// live one published retained.
	Retained bool
}

// New builds a broker and binds its listener, so the address is known and
// a port in use is reported here; Start begins accepting connections.
func New(opts Options) (*Broker, error) {
	if opts.Auth == nil {
		return nil, ErrNoAuthenticator
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "broker")
	listen := opts.Listen
	if listen == "" {
		listen = DefaultListen
	}

	caps := mqtt.NewDefaultServerCapabilities()
	// mochi expires every message after a day unless told otherwise; the
	// retained feed notice and device states must stay until replaced.
	caps.MaximumMessageExpiryInterval = 0
	// Notices, commands and states are small; a device cannot make the
	// broker hold a huge retained state.
	caps.MaximumPacketSize = MaxPacketSize
	// mochi gives every connection, logged in or not, a queue of this
	// many pending writes (8192 pointers by default, 64 KB); a device is
	// sent a few notices and commands.
	caps.MaximumClientWritesPending = 256
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: true,
		// mochi logs every connection at Info; keep only its warnings.
		Logger: slog.New(levelFilter{min: slog.LevelWarn, h: log.Handler()}),
	})
	hook := &aclHook{auth: opts.Auth, log: log}
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, fmt.Errorf("add acl hook: %w", err)
	}
	b := &Broker{srv: srv, hook: hook, log: log}
	if listen != ListenOff {
		// No TCP keepalive probes: MQTT's own keepalive finds dead
		// clients, and Go's default (a probe every 15 s on every idle
		// connection, each answered) would cost a device on a metered
		// link more than half a megabyte a day.
		lc := net.ListenConfig{KeepAlive: -1}
		ln, err := lc.Listen(context.Background(), "tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", listen, err)
		}
		if opts.TLS != nil {
			ln = tls.NewListener(ln, opts.TLS)
		}
		timeout, maxPending := opts.LoginTimeout, opts.MaxPending
		if timeout <= 0 {
			timeout = DefaultLoginTimeout
		}
		if maxPending <= 0 {
			maxPending = DefaultMaxPending
		}
		perAddress := opts.MaxPendingPerAddress
		if perAddress <= 0 {
			perAddress = DefaultMaxPendingPerAddress
		}
		b.tcp = newListener("tcp", ln, timeout, maxPending, min(perAddress, maxPending), log)
		if err := srv.AddListener(b.tcp); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen on %s: %w", listen, err)
		}
	}
	return b, nil
}

// Addr returns the address the broker listens on ("127.0.0.1:41233"), or
// "" when it has no listener.
func (b *Broker) Addr() string {
	if b.tcp == nil {
		return ""
	}
	return b.tcp.Address()
}

// Counters returns what the listener counted: connections waiting to log
// in, refused for too many waiting, timed out before logging in, and failed
// accepts. Zero without a listener.
func (b *Broker) Counters() Counters {
	if b.tcp == nil {
		return Counters{}
	}
	return b.tcp.counters()
}

// Connections returns how many clients are logged in now (devices and
// the server's own), for the server's metrics.
func (b *Broker) Connections() int {
	b.hook.mu.Lock()
	defer b.hook.mu.Unlock()
	return len(b.hook.principals)
}

// DisconnectDevice closes every connection of the device with id deviceID
// and refuses its logins from then on, whatever credential they carry: the
// fleet service calls it when the device is revoked or deleted, after the
// store no longer knows its credential. A login whose credential check
// began before the revocation and ends after this call is refused too.
// Device ids are never reused, so the refusal is kept for the life of the
// process (a restart forgets it; the store refuses the credential anyway).
func (b *Broker) DisconnectDevice(deviceID string) {
	n := b.hook.endDevice(deviceID)
	b.log.Info("mqtt device disconnected for good", "device", deviceID, "connections", n)
}

// Start begins serving connections; it does not block.
func (b *Broker) Start() error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	b.log.Info("broker started", "addr", b.Addr())
	return nil
}

// Close disconnects every client and stops the listener.
func (b *Broker) Close() error {
	if err := b.srv.Close(); err != nil {
		return fmt.Errorf("close broker: %w", err)
	}
	return nil
}

// Subscribe calls fn with every message published on filter, the retained
// ones first: how the server learns devices' presence and state. The
// filter lies under protocol.TopicPrefix and may hold wildcards. Only what
// the ACL let in is seen: a device's forged publication never arrives. fn
// runs on the publishing client's goroutine, so it must return quickly
// (hand the message to the goroutine that owns the state).
func (b *Broker) Subscribe(filter string, fn func(Message)) error {
	if !validTopic(filter) {
		return fmt.Errorf("subscribe to %q: %w", filter, ErrBadTopic)
	}
	id := int(b.nextID.Add(1))
	err := b.srv.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(Message{Topic: pk.TopicName, Payload: bytes.Clone(pk.Payload), Retained: pk.FixedHeader.Retain})
	})
	if err != nil {
		return fmt.Errorf("subscribe to %q: %w", filter, err)
	}
	return nil
}

// Publish sends payload to topic from the server itself, at QoS 1, retained
// when retain is set (the advisory-feed notice is). The topic must lie under
// protocol.TopicPrefix and hold no wildcard.
func (b *Broker) Publish(topic string, payload []byte, retain bool) error {
	if !validTopic(topic) || strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("publish to %q: %w", topic, ErrBadTopic)
	}
	if err := b.srv.Publish(topic, payload, retain, 1); err != nil {
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	return nil
}
