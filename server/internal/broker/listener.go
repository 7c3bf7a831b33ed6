package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/rpmfleet/rpmfleet/server/internal/peer"
)

// The listener is where a connection is held before it logs in, which is
// all an outsider can reach. mochi's own TCP listener (listeners.Net)
// trusts every connection and ends its accept loop for good on the first
// Accept error, such as EMFILE when the process runs out of file
// descriptors; it sets no deadline until a CONNECT arrives, and takes the
// CONNECT packet up to the broker's MaxPacketSize. This one, which mochi
// sees through its Listener interface, bounds all of that:
//
//   - a connection must have sent its whole CONNECT within LoginTimeout of
//     being accepted (the deadline covers the TLS handshake too), or it is
//     closed, whatever it sends meanwhile, one byte at a time or none;
//   - a CONNECT longer than MaxConnectSize is refused as soon as its
//     header says so, before mochi allocates room for it;
//   - at most MaxPending connections may be waiting to log in, and at most
//     MaxPendingPerAddress of them from one address (one IPv4 address, or
//     one IPv6 /64, what one host or one site behind a router gets); beyond
//     that a new one is closed at once, counted and logged (at most once
//     every logEvery, with the count), so one address cannot take every
//     slot and hold the other devices out until the login deadline;
//   - an Accept error other than the listener's closing is logged (again
//     at most once every logEvery) and the loop backs off, from 5 ms
//     doubling to a second, and goes on: connections wait in the kernel's
//     backlog until a descriptor is free.

// Defaults of Options' login limits.
const (
	// DefaultLoginTimeout is how long a new connection has to send its
	// CONNECT.
	DefaultLoginTimeout = 10 * time.Second
	// DefaultMaxPending is how many connections may wait to log in at
	// once.
	DefaultMaxPending = 1024
	// DefaultMaxPendingPerAddress is how many of those may come from one
	// address (an IPv6 /64 counts as one). A device logs in within a
	// round trip or two, so even a site of hundreds behind one router
	// reconnecting at once after a broker restart passes, retrying.
	DefaultMaxPendingPerAddress = 64
	// MaxConnectSize bounds the CONNECT packet (its remaining length).
	// A device's CONNECT (client id, user name, credential, last will)
	// is under 300 bytes.
	MaxConnectSize = 4 << 10
)

// logEvery bounds how often the listener logs refused connections and
// accept errors.
const logEvery = 10 * time.Second

// Errors a connection is closed with before it logged in.
var (
	errConnectTooLarge = errors.New("broker: CONNECT packet too large")
	errNotConnect      = errors.New("broker: first packet is not CONNECT")
)

// Counters are what the listener counted since the broker started.
type Counters struct {
	// Pending is how many connections are waiting to log in now.
	Pending int64
	// Refused counts connections closed at once because MaxPending were
	// already waiting, or MaxPendingPerAddress from their address.
	Refused int64
	// TimedOut counts connections closed because they had not sent their
	// CONNECT within the login timeout.
	TimedOut int64
	// AcceptErrors counts failed Accept calls (EMFILE and the like).
	AcceptErrors int64
}

// listener is the broker's one mochi listener over a net.Listener (TLS or
// not).
type listener struct {
	id         string
	ln         net.Listener
	log        *slog.Logger
	timeout    time.Duration
	maxPending int64
	byPeer     *peer.Counter // connections waiting to log in, by address

	pending, refused, timedOut, acceptErrors atomic.Int64

	done      chan struct{} // closed by Close
	closeOnce sync.Once

	refusedLog, acceptLog logLimiter
}

var _ listeners.Listener = (*listener)(nil)

func newListener(id string, ln net.Listener, timeout time.Duration, maxPending, perAddress int, log *slog.Logger) *listener {
	return &listener{id: id, ln: ln, log: log, timeout: timeout, maxPending: int64(maxPending),
		byPeer: &peer.Counter{Max: perAddress}, done: make(chan struct{})}
}

// admit counts a new connection as waiting to log in, or says why it may
// not wait: the whole cap or its address's is reached.
func (l *listener) admit(addr netip.Prefix) (why string, ok bool) {
	if l.pending.Add(1) > l.maxPending {
		l.pending.Add(-1)
		return "too many waiting to log in", false
	}
	if !l.byPeer.Take(addr) {
		l.pending.Add(-1)
		return "too many from one address waiting to log in", false
	}
	return "", true
}

// release ends a connection's wait (logged in or closed).
func (l *listener) release(addr netip.Prefix) {
	l.pending.Add(-1)
	l.byPeer.Give(addr)
}

func (l *listener) ID() string       { return l.id }
func (l *listener) Address() string  { return l.ln.Addr().String() }
func (l *listener) Protocol() string { return l.ln.Addr().Network() }

// Init is mochi's hook to hand over its logger; the listener logs through
// the broker's own.
func (l *listener) Init(*slog.Logger) error { return nil }

// Serve accepts connections until Close, and hands each to establish on
// its own goroutine.
func (l *listener) Serve(establish listeners.EstablishFn) {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			delay = max(5*time.Millisecond, min(2*delay, time.Second))
			l.acceptErrors.Add(1)
			if n, ok := l.acceptLog.allow(time.Now()); ok {
				l.log.Warn("mqtt accept failed; retrying", "err", err, "retry_in", delay, "failures", n)
			}
			select {
			case <-time.After(delay):
			case <-l.done:
				return
			}
			continue
		}
		delay = 0
		addr := peer.Of(c.RemoteAddr().String())
		if why, ok := l.admit(addr); !ok {
			l.refused.Add(1) // counted before the peer can see the close
			c.Close()
			if n, ok := l.refusedLog.allow(time.Now()); ok {
				l.log.Warn("mqtt connections refused: "+why,
					"limit", l.maxPending, "limit_per_address", l.byPeer.Max, "refused", n, "remote", c.RemoteAddr().String())
			}
			continue
		}
		gc := &gateConn{Conn: c, l: l, addr: addr}
		// The deadline also bounds a TLS handshake, which happens on the
		// first Read. mochi replaces it with the keepalive's once the
		// CONNECT is read.
		c.SetDeadline(time.Now().Add(l.timeout))
		go func() {
			err := establish(l.id, gc)
			if errors.Is(err, os.ErrDeadlineExceeded) && gc.waiting() {
				l.timedOut.Add(1)
			}
			if err != nil {
				l.log.Debug("mqtt connection ended", "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// Close stops accepting, closes every client through closeClients, and
// closes the net.Listener.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		close(l.done)
		closeClients(l.id)
		l.ln.Close()
	})
}

func (l *listener) counters() Counters {
	return Counters{Pending: l.pending.Load(), Refused: l.refused.Load(), TimedOut: l.timedOut.Load(), AcceptErrors: l.acceptErrors.Load()}
}

// States of a gateConn.
const (
	connWaiting  = iota // accepted, not logged in: counted in pending
	connLoggedIn        // the broker admitted it
	connClosed
)

// gateConn is an accepted connection as mochi sees it. Until it logs in it
// counts against the listener's pending connections, and its first
// packet's fixed header is checked as it streams in.
type gateConn struct {
	net.Conn
	l     *listener
	addr  netip.Prefix // for the per-address count
	state atomic.Int32

	// Read is called by mochi's one reading goroutine only.
	hdr connectHeader
}

// Read passes data on, refusing a first packet that is not a CONNECT or
// whose length passes MaxConnectSize.
func (c *gateConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if !c.hdr.done && n > 0 {
		if herr := c.hdr.feed(b[:n]); herr != nil {
			return 0, herr
		}
	}
	return n, err
}

// loggedIn takes the connection off the pending count; the broker calls
// it when the connection's credentials are accepted.
func (c *gateConn) loggedIn() {
	if c.state.CompareAndSwap(connWaiting, connLoggedIn) {
		c.l.release(c.addr)
	}
}

// waiting reports whether the connection never logged in.
func (c *gateConn) waiting() bool { return c.state.Load() != connLoggedIn }

func (c *gateConn) Close() error {
	if c.state.Swap(connClosed) == connWaiting {
		c.l.release(c.addr)
	}
	return c.Conn.Close()
}

// connectHeader checks an MQTT fixed header as its bytes arrive: packet
// type CONNECT (0x10), then the remaining length, 1 to 4 bytes of 7 bits,
// least significant first.
type connectHeader struct {
	done   bool
	n      int // header bytes seen
	length int
	shift  uint
}

func (h *connectHeader) feed(b []byte) error {
	for _, c := range b {
		if h.n == 0 {
			if c != 0x10 {
				return fmt.Errorf("%w (packet type byte %#02x)", errNotConnect, c)
			}
			h.n++
			continue
		}
		h.n++
		h.length |= int(c&0x7f) << h.shift
		h.shift += 7
		if h.length > MaxConnectSize {
			return fmt.Errorf("%w: more than %d bytes", errConnectTooLarge, MaxConnectSize)
		}
		if c&0x80 == 0 {
			h.done = true
			return nil
		}
		if h.n == 5 {
			return fmt.Errorf("%w: malformed remaining length", errConnectTooLarge)
		}
	}
	return nil
}

// logLimiter lets a log line through at most once every logEvery, with the
// number of events since the last one that went through.
type logLimiter struct {
	mu   sync.Mutex // guards last and n
	last time.Time
	n    int64
}

func (r *logLimiter) allow(now time.Time) (events int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if !r.last.IsZero() && now.Sub(r.last) < logEvery {
		return 0, false
	}
	r.last, events, r.n = now, r.n, 0
	return events, true
}
