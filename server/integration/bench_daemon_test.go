package integration

// The measuring tools of issue 5's daemon benchmarks, tested in make test:
// wireProxy, a TCP proxy between an agent and the server (HTTPS) or the
// broker (MQTT over TLS, as the server with --tls auto serves it), counts
// payload bytes both ways and the segments the proxy's socket on the
// agent's side sent and received (TCP_INFO's segs_in and segs_out), each
// segment costing 52 bytes of IPv4 and TCP headers with timestamps on a
// real link. The proxy's listening socket sends no TCP keepalive probes,
// as the server's own listeners do not since 2f94bc4 (before, Go's default
// probes every 15 s cost an idle agent 587 KB a day); newWireProxy can
// still turn them on to show that. The measurements themselves are in
// bench_daemon_run_test.go, built only with -tags daemonbench.

import (
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// headerBytes is what one TCP segment costs on the wire beyond its payload:
// 20 bytes of IPv4 header and 32 of TCP header with the timestamp option.
const headerBytes = 52

type scanKind int

const (
	// scanMQTT counts plain MQTT control packets by type.
	scanMQTT scanKind = iota + 1
	// scanTLS counts TLS records by content type and length ("up app 19");
	// over an idle MQTT-over-TLS link an application record of 19 bytes
	// (2 of MQTT, the inner content type, a 16-byte tag) is a PINGREQ up,
	// a PINGRESP down.
	scanTLS
)

// wireProxy forwards TCP connections to target and counts what crosses the
// agent's side of each.
type wireProxy struct {
	ln     net.Listener
	target string
	scan   scanKind

	mu    sync.Mutex // guards conns
	conns []*proxyConn
}

// proxyConn is one forwarded connection.
type proxyConn struct {
	opened   time.Time
	agent    *net.TCPConn // accepted from the agent
	up, down atomic.Int64 // payload bytes agent->server, server->agent

	mu              sync.Mutex // guards what follows, and closing agent
	closed          bool
	segsIn, segsOut uint32         // final, once closed
	packets         map[string]int // MQTT packets, "up PINGREQ"
}

// newWireProxy listens on a free loopback port. probes keeps the Go default
// TCP keepalive probes on accepted connections, as the server's listeners
// have them; false turns them off.
func newWireProxy(t *testing.T, target string, scan scanKind, probes bool) *wireProxy {
	t.Helper()
	lc := net.ListenConfig{}
	if !probes {
		lc.KeepAlive = -1
	}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &wireProxy{ln: ln, target: target, scan: scan}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *wireProxy) addr() string { return p.ln.Addr().String() }

func (p *wireProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		pc := &proxyConn{opened: time.Now(), agent: c.(*net.TCPConn), packets: map[string]int{}}
		p.mu.Lock()
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		go p.forward(pc)
	}
}

// forward copies both ways until both sides have closed, passing each
// half-close on, then reads the agent side's segment counts and closes.
func (p *wireProxy) forward(pc *proxyConn) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1}
	uc, err := d.Dial("tcp", p.target)
	if err != nil {
		pc.finish(nil)
		return
	}
	up := uc.(*net.TCPConn)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.copy(up, pc.agent, &pc.up, pc, "up")
		up.CloseWrite()
	}()
	go func() {
		defer wg.Done()
		p.copy(pc.agent, up, &pc.down, pc, "down")
		pc.agent.CloseWrite()
	}()
	wg.Wait()
	// Let the agent acknowledge the FIN just sent before counting.
	time.Sleep(200 * time.Millisecond)
	pc.finish(up)
}

// copy forwards src to dst, counting bytes into n and, for MQTT, the
// control packets by type.
func (p *wireProxy) copy(dst, src *net.TCPConn, n *atomic.Int64, pc *proxyConn, dir string) {
	var sc interface{ feed([]byte) }
	switch p.scan {
	case scanMQTT:
		sc = &mqttScanner{count: func(typ byte) {
			pc.mu.Lock()
			pc.packets[dir+" "+mqttPacketName(typ)]++
			pc.mu.Unlock()
		}}
	case scanTLS:
		sc = &tlsScanner{count: func(typ byte, n int) {
			pc.mu.Lock()
			pc.packets[dir+" "+tlsRecordName(typ)+" "+strconv.Itoa(n)]++
			pc.mu.Unlock()
		}}
	}
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.Add(int64(k))
			if sc != nil {
				sc.feed(buf[:k])
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// finish records the agent side's final segment counts and closes both.
func (pc *proxyConn) finish(up *net.TCPConn) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		return
	}
	pc.segsIn, pc.segsOut, _ = tcpSegments(pc.agent)
	pc.closed = true
	pc.agent.Close()
	if up != nil {
		up.Close()
	}
}

func (p *wireProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	conns := slices.Clone(p.conns)
	p.mu.Unlock()
	for _, c := range conns {
		c.finish(nil)
	}
}

// tcpSegments reads a socket's segs_in and segs_out from TCP_INFO.
func tcpSegments(c *net.TCPConn) (in, out uint32, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return 0, 0, err
	}
	if ierr != nil {
		return 0, 0, ierr
	}
	return info.Segs_in, info.Segs_out, nil
}

// wireStats is what a proxy counted up to a moment.
type wireStats struct {
	Conns           int   // connections opened
	Up, Down        int64 // payload bytes, agent->server and back
	SegsIn, SegsOut int64 // segments from and to the agent
	Packets         map[string]int
}

// Wire is the bytes on the wire: payload plus headerBytes per segment.
func (s wireStats) Wire() int64 { return s.Up + s.Down + headerBytes*(s.SegsIn+s.SegsOut) }

// Segs is the number of segments both ways.
func (s wireStats) Segs() int64 { return s.SegsIn + s.SegsOut }

// snapshot sums every connection so far, reading live ones' TCP_INFO now.
func (p *wireProxy) snapshot() wireStats {
	p.mu.Lock()
	conns := slices.Clone(p.conns)
	p.mu.Unlock()
	s := wireStats{Conns: len(conns), Packets: map[string]int{}}
	for _, c := range conns {
		s.Up += c.up.Load()
		s.Down += c.down.Load()
		c.mu.Lock()
		in, out := c.segsIn, c.segsOut
		if !c.closed {
			in, out, _ = tcpSegments(c.agent)
		}
		for k, v := range c.packets {
			s.Packets[k] += v
		}
		c.mu.Unlock()
		s.SegsIn += int64(in)
		s.SegsOut += int64(out)
	}
	return s
}

// mqttScanner splits an MQTT byte stream into control packets by their
// fixed headers (type, remaining length) and counts them.
type mqttScanner struct {
	state int // 0: at a packet's first byte; 1: in its length; 2: in its body
	typ   byte
	mult  int
	rem   int
	count func(typ byte)
}

func (s *mqttScanner) feed(p []byte) {
	for len(p) > 0 {
		switch s.state {
		case 0:
			s.typ, s.rem, s.mult, s.state = p[0]>>4, 0, 1, 1
			p = p[1:]
		case 1:
			b := p[0]
			p = p[1:]
			s.rem += int(b&0x7f) * s.mult
			s.mult *= 128
			if b&0x80 == 0 {
				s.count(s.typ)
				s.state = 2
				if s.rem == 0 {
					s.state = 0
				}
			}
		case 2:
			k := min(s.rem, len(p))
			s.rem -= k
			p = p[k:]
			if s.rem == 0 {
				s.state = 0
			}
		}
	}
}

// tlsScanner splits a TLS byte stream into records by their 5-byte headers
// (content type, version, length) and counts them with their length.
type tlsScanner struct {
	hdr   []byte
	rem   int
	count func(typ byte, n int)
}

func (s *tlsScanner) feed(p []byte) {
	for len(p) > 0 {
		if s.rem > 0 {
			k := min(s.rem, len(p))
			s.rem -= k
			p = p[k:]
			continue
		}
		k := min(5-len(s.hdr), len(p))
		s.hdr = append(s.hdr, p[:k]...)
		p = p[k:]
		if len(s.hdr) == 5 {
			n := int(s.hdr[3])<<8 | int(s.hdr[4])
			s.count(s.hdr[0], n)
			s.hdr, s.rem = s.hdr[:0], n
		}
	}
}

func tlsRecordName(typ byte) string {
	switch typ {
	case 20:
		return "ccs"
	case 21:
		return "alert"
	case 22:
		return "handshake"
	case 23:
		return "app"
	}
	return "type" + strconv.Itoa(int(typ))
}

func mqttPacketName(typ byte) string {
	names := []string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
		"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}
	return names[typ&0xf]
}

// TestWireProxy checks the measuring tool itself, in make test: a known
// exchange through the proxy is counted to the byte, MQTT packets are told
// apart, and the segments are real (at least one per write, a handshake and
// a close on top).
func TestWireProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// An echo server that answers each PINGREQ with a PINGRESP and a
	// PUBLISH with nothing.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 2)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					switch buf[0] >> 4 {
					case 12:
						c.Write([]byte{0xd0, 0x00})
					case 3:
						body := make([]byte, buf[1])
						if _, err := io.ReadFull(c, body); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	p := newWireProxy(t, ln.Addr().String(), scanMQTT, false)
	c, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	publish := append([]byte{0x31, 5}, "a/b!!"...)
	for range 3 {
		c.Write([]byte{0xc0, 0x00})
		resp := make([]byte, 2)
		if _, err := io.ReadFull(c, resp); err != nil || resp[0] != 0xd0 {
			t.Fatalf("ping through the proxy: %x, %v", resp, err)
		}
		c.Write(publish)
	}
	c.Close()
	waitFor(t, 5*time.Second, "the proxy to count the closed connection", func() (bool, string) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.conns) != 1 {
			return false, "no connection"
		}
		p.conns[0].mu.Lock()
		defer p.conns[0].mu.Unlock()
		return p.conns[0].closed, "still open"
	})
	s := p.snapshot()
	if s.Conns != 1 || s.Up != 3*(2+7) || s.Down != 3*2 {
		t.Errorf("counted %d connections, %d bytes up, %d down; want 1, 27, 6", s.Conns, s.Up, s.Down)
	}
	want := map[string]int{"up PINGREQ": 3, "up PUBLISH": 3, "down PINGRESP": 3}
	if !mapsEqual(s.Packets, want) {
		t.Errorf("MQTT packets %v, want %v", s.Packets, want)
	}
	// 6 writes from the client, 3 answers, the handshake and the close:
	// at least 6 segments in, 3 out, plus SYN and FIN each way.
	if s.SegsIn < 6+2 || s.SegsOut < 3+2 {
		t.Errorf("segments in %d, out %d: want at least 8 and 5", s.SegsIn, s.SegsOut)
	}
	if s.Wire() != s.Up+s.Down+headerBytes*s.Segs() {
		t.Errorf("wire %d", s.Wire())
	}
}

// TestTLSScanner: TLS records split across reads, and two in one read, are
// counted with their type and length.
func TestTLSScanner(t *testing.T) {
	got := map[string]int{}
	sc := &tlsScanner{count: func(typ byte, n int) { got[tlsRecordName(typ)+" "+strconv.Itoa(n)]++ }}
	rec := func(typ byte, n int) []byte {
		return append([]byte{typ, 3, 3, byte(n >> 8), byte(n)}, make([]byte, n)...)
	}
	stream := slices.Concat(rec(22, 300), rec(23, 19), rec(23, 19), rec(21, 2))
	for _, cut := range [][]byte{stream[:3], stream[3:310], stream[310:]} { // a header cut, two records in one read
		sc.feed(cut)
	}
	if want := map[string]int{"handshake 300": 1, "app 19": 2, "alert 2": 1}; !mapsEqual(got, want) {
		t.Errorf("records %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// stampLog keeps a process's output lines with the time each arrived.
