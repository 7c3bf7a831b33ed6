// Package mqtt is the agent's push transport: a small wrapper around the
// paho client that keeps one device connected to the fleet's MQTT broker
// (the server's embedded one or an external Mosquitto or EMQX), hands what
// arrives on the advisory feed and the device's command topic to the
// daemon's loop over a channel, and keeps the device's retained presence
// and state on the broker.
//
// Threat model. The broker and the network are not trusted to say what to
// install: every notice and command that arrives here is signed by the
// server and is verified by the daemon, not by this package, which only
// carries bytes. What this package protects is the device's credential: it
// goes only to the configured broker, over TLS when the URL says so
// (ssl://, tls://, mqtts://), checked against the configured roots. A
// broker the attacker controls can delay or drop pushes; the daemon's poll
// fallback bounds that to one poll interval.
//
// Bandwidth. An idle connection costs one PINGREQ and one PINGRESP (2
// bytes of MQTT each) per keepalive interval. On the wire, over IPv4 with
// TCP timestamps, each is a 52-byte TCP/IP header plus a 24-byte TLS 1.3
// record (5 header, 2 data, 1 content type, 16 tag), and the agent's
// kernel acknowledges the PINGRESP with a bare 52-byte segment: 204 bytes
// per interval with TLS (160 without). A day is 86 400 s, so
//
//	keepalive   60 s: 1440 pings, 294 KB/day
//	keepalive  300 s:  288 pings,  59 KB/day
//	keepalive  600 s:  144 pings,  29 KB/day  (DefaultKeepAlive)
//	keepalive 1200 s:   72 pings,  15 KB/day
//
// 600 s keeps MQTT well under the 50 KB/day idle budget and leaves the rest
// for polls, while still beating the idle timeout of most NATs. TCP
// keepalive probes are switched off (Go's default sends one every 15 s,
// about 600 KB/day): the MQTT keepalive already detects a dead link.
package mqtt

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Defaults for Options.
const (
	DefaultKeepAlive  = 10 * time.Minute
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultBuffer is how many messages wait for the daemon before new
	// ones are dropped.
	DefaultBuffer = 16
)

// Sentinel errors.
var (
	// ErrBadOptions: Options are incomplete or invalid.
	ErrBadOptions = errors.New("mqtt: bad options")
	// ErrTimeout: the broker did not answer in time.
	ErrTimeout = errors.New("mqtt: timed out")
)

// Message is one message from the broker.
type Message struct {
	// Topic is protocol.TopicAdvisoryFeed or the device's command topic.
	Topic string
	// Payload is the signed notice or command, unverified.
	Payload []byte
	// Retained is set when the broker sent a stored message on subscribe
	// rather than a live one.
	Retained bool
}

// Options configures a Client.
type Options struct {
	// Broker is the broker URL: tcp:// or mqtt:// for plain TCP, ssl://,
	// tls:// or mqtts:// for TLS. A missing port means 1883, or 8883 with
	// TLS.
	Broker string
	// DeviceID is the device's id: its MQTT username, client id and the
	// name in its topics.
	DeviceID string
	// Credential is the device's credential, its MQTT password.
	Credential string
	// Username, when set, is the MQTT username instead of DeviceID (an
	// external broker with its own accounts; Credential is then that
	// account's password). Topics and the client id still use DeviceID.
	Username string
	// Anonymous connects with no username and password: a home broker
	// on loopback that admits anyone. Credential must then be empty.
	Anonymous bool
	// Subscribe are more topic filters to subscribe to on every
	// connection, at QoS 1, besides the feed and the command topic: Home
	// Assistant's status and the device's Home Assistant command topics.
	// What arrives on them goes to Messages like the rest.
	Subscribe []string
	// TLS configures TLS connections; nil means the system roots.
	TLS *tls.Config
	// KeepAlive is the MQTT keepalive; 0 means DefaultKeepAlive.
	KeepAlive time.Duration
	// MinBackoff and MaxBackoff bound the wait between connection attempts,
	// which doubles per failure, with full jitter; 0 means the defaults.
	MinBackoff, MaxBackoff time.Duration
	// Buffer is the capacity of the Messages channel; 0 means
	// DefaultBuffer.
	Buffer int
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
}

// Client keeps a device connected to its broker. Its Messages channel is
// read by the daemon's loop, the one goroutine that owns the agent's state.
type Client struct {
	opts   Options
	broker *url.URL
	log    *slog.Logger
	msgs   chan Message
	pc     paho.Client

	linkMu sync.Mutex // guards lost and lostClosed
	// lost is closed when the current connection is lost: serve and every
	// wait on the broker watch it. connect makes a new one.
	lost       chan struct{}
	lostClosed bool

	dropped     atomic.Uint64
	sent, recvd atomic.Uint64
	connected   atomic.Bool
	cancel      context.CancelFunc
	done        chan struct{}
	closeOnce   sync.Once

	mu sync.Mutex // guards retained, order and dirty
	// retained holds the retained messages the client keeps on the
	// broker (the state, Home Assistant's discovery configs and states),
	// by topic, in order of first use; all are published again on every
	// connect. An empty payload removes a retained message: it is
	// published once, then forgotten.
	retained map[string][]byte
	order    []string
	dirty    map[string]bool
	wake     chan struct{} // Retain tells serve there is something new

	onDial    func(net.Conn)                     // test seam: sees every new TCP connection
	onPublish func(topic string, payload []byte) // test seam: runs before every publish
}

// New checks opts and builds a client; Start connects it.
func New(opts Options) (*Client, error) {
	switch {
	case opts.DeviceID == "":
		return nil, fmt.Errorf("a device id is required: %w", ErrBadOptions)
	case opts.Anonymous && (opts.Credential != "" || opts.Username != ""):
		return nil, fmt.Errorf("anonymous with a username or credential: %w", ErrBadOptions)
	case !opts.Anonymous && opts.Credential == "":
		return nil, fmt.Errorf("a credential is required unless anonymous: %w", ErrBadOptions)
	}
	u, err := url.Parse(opts.Broker)
	if err != nil {
		return nil, fmt.Errorf("broker url %q: %w: %w", opts.Broker, ErrBadOptions, err)
	}
	port := "1883"
	useTLS, err := protocol.BrokerTLS(u.Scheme)
	if err != nil {
		return nil, fmt.Errorf("broker url %q: %w: %w", opts.Broker, ErrBadOptions, err)
	}
	if useTLS {
		port = "8883"
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("broker url %q: no host: %w", opts.Broker, ErrBadOptions)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = DefaultKeepAlive
	}
	if opts.KeepAlive < time.Second {
		return nil, fmt.Errorf("keepalive %v is under one second: %w", opts.KeepAlive, ErrBadOptions)
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.Buffer == 0 {
		opts.Buffer = DefaultBuffer
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		opts:     opts,
		broker:   u,
		log:      log.With("component", "mqtt", "broker", u.Redacted()),
		msgs:     make(chan Message, opts.Buffer),
		lost:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		retained: map[string][]byte{},
		dirty:    map[string]bool{},
		done:     make(chan struct{}),
	}
	po := paho.NewClientOptions().
		AddBroker(u.String()).
		SetClientID(opts.DeviceID).
		SetProtocolVersion(4). // MQTT 3.1.1: what every broker speaks
		SetCleanSession(true). // subscriptions are made again on every connect
		SetKeepAlive(opts.KeepAlive).
		SetPingTimeout(30*time.Second).
		SetConnectTimeout(30*time.Second).
		SetAutoReconnect(false). // run does it, with jitter
		SetWill(protocol.DeviceOnlineTopic(opts.DeviceID), protocol.PayloadOffline, 1, true).
		SetDefaultPublishHandler(c.deliver).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			c.log.Warn("mqtt connection lost", "err", err)
			c.linkMu.Lock()
			if !c.lostClosed {
				close(c.lost)
				c.lostClosed = true
			}
			c.linkMu.Unlock()
		}).
		SetCustomOpenConnectionFn(c.dial)
	if !opts.Anonymous {
		po.SetUsername(cmp.Or(opts.Username, opts.DeviceID)).SetPassword(opts.Credential)
	}
	c.pc = paho.NewClient(po)
	return c, nil
}

// Messages returns the channel on which received messages arrive. It is
// never closed; select on it together with the daemon's context.
func (c *Client) Messages() <-chan Message { return c.msgs }

// Dropped returns how many messages were dropped because the daemon had
// not taken the earlier ones. A dropped notice only delays: the feed is
// retained and the daemon polls.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Connected reports whether the client is connected and subscribed.
func (c *Client) Connected() bool { return c.connected.Load() }

// Bytes returns the MQTT bytes (TLS records included, TCP/IP headers not)
// sent and received so far, over all connections.
func (c *Client) Bytes() (sent, received uint64) { return c.sent.Load(), c.recvd.Load() }

// Start (called once) connects in the background, and reconnects whenever the link is
// lost, until Close. On every connection it subscribes to the advisory
// feed and the device's command topic and publishes PayloadOnline and the
// retained messages (Retain) it keeps.
func (c *Client) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(ctx)
}

// Close publishes PayloadOffline, disconnects and stops reconnecting.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		if c.cancel == nil {
			return
		}
		c.cancel()
		<-c.done
	})
}

// PublishState sets the device's state, which the client publishes,
// retained, on the device's state topic: now if connected, else on the
// next connection. It never blocks, so the daemon's loop does not wait on
// the network; if states come faster than the link takes them, only the
// latest is sent.
func (c *Client) PublishState(payload []byte) {
	c.Retain(protocol.DeviceStateTopic(c.opts.DeviceID), payload)
}

// Retain sets the retained message of a topic, which the client
// publishes now if connected, else on the next connection, and again on
// every later connection (a broker restarted without persistence has
// lost it). An empty payload removes the retained message: it is
// published once and forgotten. Like PublishState it never blocks, and
// only the latest payload of a topic is sent.
func (c *Client) Retain(topic string, payload []byte) {
	c.mu.Lock()
	if _, ok := c.retained[topic]; !ok {
		c.order = append(c.order, topic)
	}
	c.retained[topic] = append([]byte{}, payload...)
	c.dirty[topic] = true
	c.mu.Unlock()
	c.poke()
}

// poke tells serve there is something to publish.
func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// publishDirty publishes the retained messages set since they were last
// sent, in the order their topics were first used; all of them when all
// is set (a new connection).
func (c *Client) publishDirty(ctx context.Context, all bool) error {
	c.mu.Lock()
	var topics []string
	var payloads [][]byte
	for _, t := range c.order {
		if all || c.dirty[t] {
			topics = append(topics, t)
			payloads = append(payloads, c.retained[t])
			delete(c.dirty, t)
		}
	}
	c.mu.Unlock()
	for i, t := range topics {
		if err := c.publish(ctx, t, payloads[i]); err != nil {
			c.mu.Lock()
			for _, u := range topics[i:] {
				c.dirty[u] = true
			}
			c.mu.Unlock()
			return err
		}
		if len(payloads[i]) == 0 {
			c.forget(t)
		}
	}
	return nil
}

// forget drops a removed topic once its empty payload is sent, unless it
// was set again meanwhile.
func (c *Client) forget(topic string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.retained[topic]) != 0 || c.dirty[topic] {
		return
	}
	delete(c.retained, topic)
	c.order = slices.DeleteFunc(c.order, func(t string) bool { return t == topic })
}

// serve waits while the connection is up, publishing new states, and
// returns when it is lost or ctx is done. A client that believed itself
// connected on a dead link would leave the daemon polling at its long
// connected interval, so serve errs towards reconnecting: a loss signal
// always ends the connection (a stale one from an earlier connection costs
// one reconnect), and a look at paho's own status every linkCheck catches
// a loss whose signal never came.
func (c *Client) serve(ctx context.Context) {
	defer c.connected.Store(false)
	check := time.NewTicker(linkCheck)
	defer check.Stop()
	lost := c.lostSignal()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
			// With ctx: a Close during a publish the broker never
			// answers (a partition that holds the packets) ends it.
			if err := c.publishDirty(ctx, false); errors.Is(err, errLinkLost) {
				if c.pc.IsConnected() {
					c.pc.Disconnect(0)
				}
				return
			} else if err != nil {
				c.log.Warn("mqtt publish failed", "err", err)
			}
		case <-lost:
			if c.pc.IsConnected() {
				c.pc.Disconnect(0)
			}
			return
		case <-check.C:
			if !c.pc.IsConnectionOpen() {
				c.log.Warn("mqtt connection found closed without a loss signal; reconnecting")
				if c.pc.IsConnected() {
					c.pc.Disconnect(0)
				}
				return
			}
		}
	}
}

// resendAll marks every retained message to be published again.
func (c *Client) resendAll() {
	c.mu.Lock()
	for _, t := range c.order {
		c.dirty[t] = true
	}
	c.mu.Unlock()
	c.poke()
}

// linkCheck is how often serve looks at paho's status of the connection.
const linkCheck = 5 * time.Second

func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	for failures := 0; ; {
		err := c.connect(ctx)
		if err == nil {
			failures = 0
			c.log.Info("mqtt connected")
			c.serve(ctx)
			if ctx.Err() != nil {
				c.shutdown()
				return
			}
		} else {
			if ctx.Err() != nil {
				c.shutdown()
				return
			}
			c.log.Warn("mqtt connect failed", "err", err, "attempt", failures+1)
			// A half-made connection (CONNACK but no SUBACK) is dropped.
			if c.pc.IsConnected() {
				c.pc.Disconnect(0)
			}
		}
		failures++
		wait := Backoff(failures, c.opts.MinBackoff, c.opts.MaxBackoff, rand.Int64N)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// shutdownWait bounds the goodbye: a broker that does not acknowledge it
// by then gets the last will instead, and the agent exits.
const shutdownWait = 2 * time.Second

// shutdown says goodbye: PayloadOffline, retained, then DISCONNECT (so
// the broker does not send the last will as well).
func (c *Client) shutdown() {
	c.connected.Store(false)
	if !c.pc.IsConnectionOpen() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	if err := c.publish(ctx, protocol.DeviceOnlineTopic(c.opts.DeviceID), []byte(protocol.PayloadOffline)); err != nil {
		c.log.Warn("mqtt publish offline failed", "err", err)
	}
	c.pc.Disconnect(250)
	c.log.Info("mqtt disconnected")
}

// connect makes one connection: CONNECT, SUBSCRIBE, then the retained
// online and state messages.
func (c *Client) connect(ctx context.Context) error {
	c.linkMu.Lock()
	c.lost, c.lostClosed = make(chan struct{}), false
	c.linkMu.Unlock()
	if err := c.wait(ctx, c.pc.Connect()); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	filters := map[string]byte{
		protocol.TopicAdvisoryFeed:                   1,
		protocol.DeviceCommandTopic(c.opts.DeviceID): 1,
	}
	for _, f := range c.opts.Subscribe {
		filters[f] = 1
	}
	tok := c.pc.SubscribeMultiple(filters, nil)
	if err := c.wait(ctx, tok); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for f, code := range tok.(*paho.SubscribeToken).Result() {
		if code > 2 {
			return fmt.Errorf("subscribe to %s: refused by the broker (code %#x)", f, code)
		}
	}
	if err := c.publish(ctx, protocol.DeviceOnlineTopic(c.opts.DeviceID), []byte(protocol.PayloadOnline)); err != nil {
		return err
	}
	select { // publishDirty below sends whatever is latest
	case <-c.wake:
	default:
	}
	if err := c.publishDirty(ctx, true); err != nil {
		return err
	}
	c.connected.Store(true)
	return nil
}

// publish sends a retained QoS 1 message and waits for the broker's
// PUBACK, at most 30 s, until ctx ends, and until the connection is lost
// (errLinkLost). A publish begun as the link dies can be held inside paho
// for its own 30 s (an outbound queue no worker reads any more), and the
// device must not stay offline that long, so publish gives up on it at
// once; once paho lets it go, which may be on the next connection, every
// retained message is sent again, so that an older payload it delivers
// late is not what stays retained.
func (c *Client) publish(ctx context.Context, topic string, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lost := c.lostSignal()
	handed := make(chan paho.Token, 1)
	go func() {
		if c.onPublish != nil {
			c.onPublish(topic, payload)
		}
		handed <- c.pc.Publish(topic, 1, true, payload)
	}()
	var tok paho.Token
	select {
	case tok = <-handed:
	case <-lost:
		go func() { <-handed; c.resendAll() }()
		return fmt.Errorf("publish to %s: %w", topic, errLinkLost)
	case <-ctx.Done():
		go func() { <-handed; c.resendAll() }()
		return fmt.Errorf("publish to %s: %w", topic, ctx.Err())
	}
	if err := c.wait(ctx, tok); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// errLinkLost says the connection was lost while the client waited on
// the broker.
var errLinkLost = errors.New("connection lost")

// lostSignal returns the channel closed when the current connection is
// lost.
func (c *Client) lostSignal() <-chan struct{} {
	c.linkMu.Lock()
	defer c.linkMu.Unlock()
	return c.lost
}

func (c *Client) wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-c.lostSignal():
		return errLinkLost
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return ErrTimeout
	}
}

// deliver is paho's message handler: it hands the message to the daemon
// without ever blocking paho's network loop.
func (c *Client) deliver(_ paho.Client, m paho.Message) {
	msg := Message{Topic: m.Topic(), Payload: m.Payload(), Retained: m.Retained()}
	select {
	case c.msgs <- msg:
	default:
		c.dropped.Add(1)
		c.log.Warn("mqtt message dropped: daemon busy", "topic", msg.Topic)
	}
}

// dial opens the connection paho speaks over: TCP without TCP keepalive
// probes (see the package comment), then TLS when the URL asks for it.
func (c *Client) dial(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: -1}
	nc, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if c.onDial != nil {
		c.onDial(nc)
	}
	if useTLS, _ := protocol.BrokerTLS(u.Scheme); useTLS { // New checked the scheme
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.opts.TLS != nil {
			cfg = c.opts.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		tc := tls.Client(&countingConn{Conn: nc, c: c}, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", u.Host, err)
		}
		return tc, nil
	}
	return &countingConn{Conn: nc, c: c}, nil
}

// countingConn counts the bytes a connection carries.
type countingConn struct {
	net.Conn
	c *Client
}

func (cc *countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.c.recvd.Add(uint64(n))
	return n, err
}

func (cc *countingConn) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	cc.c.sent.Add(uint64(n))
	return n, err
}

// Backoff returns how long to wait before connection attempt failures+1:
// a random duration in [min, min·2^failures], the top capped at max
// ("full jitter"), so a fleet that lost its broker does not come back in
// step, even on the first retry.
// randN(n) returns a number in [0, n).
func Backoff(failures int, min, max time.Duration, randN func(int64) int64) time.Duration {
	if failures < 1 {
		return 0
	}
	ceil := min
	for i := 0; i < failures && ceil < max; i++ {
		ceil *= 2
	}
	if ceil > max {
		ceil = max
	}
	if ceil <= min {
		return min
	}
	return min + time.Duration(randN(int64(ceil-min)+1))
}
