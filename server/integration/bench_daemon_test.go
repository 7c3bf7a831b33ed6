package integration

// Issue 5's performance figures, measured on the real binaries: the idle
// agent (resident set, CPU per idle minute, bytes on the wire per idle day)
// and the push latency to 100 connected agents. docs/benchmarks.md ("Push
// (issue 5)") holds the figures and how they were taken.
//
// The measurements take minutes, so they are not part of make test: each is
// a test that does nothing unless RPMFLEET_BENCH_DAEMON names it, run by a
// Benchmark that starts this test binary again with that variable set (a
// Benchmark gets a *testing.B, and the harness the measurements reuse takes
// a *testing.T):
//
//	go test -run '^$' -bench BenchmarkDaemonIdle -benchtime 1x -timeout 60m ./server/integration/
//	go test -run '^$' -bench BenchmarkDaemonPush100 -benchtime 1x -timeout 30m ./server/integration/
//
// RPMFLEET_BENCH_WINDOW (a Go duration, 12m by default) is the idle window;
// RPMFLEET_BENCH_AGENTS (100 by default) the number of pushed agents. No
// figure is checked against its target here: a slow, shared machine must not
// fail a build. What is checked is that the harness measured something real
// (traffic flowed, every agent fetched its plan).
//
// The bytes on the wire are counted by wireProxy, a TCP proxy between each
// agent and the server (HTTPS) or the broker (MQTT over TLS, as the server
// with --tls auto serves it): payload bytes both ways, and the segments the
// proxy's socket on the agent's side sent and received (TCP_INFO's segs_in
// and segs_out), each segment costing 52 bytes of IPv4 and TCP headers with
// timestamps on a real link. The proxy's listening socket sends no TCP
// keepalive probes, as the server's own listeners do not since 2f94bc4
// (before, Go's default probes every 15 s cost an idle agent 587 KB a day);
// newWireProxy can still turn them on to show that.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rpmfleet/rpmfleet/pkg/mqtttest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// benchEnv names the measurement a run of this binary is for.
const benchEnv = "RPMFLEET_BENCH_DAEMON"

// headerBytes is what one TCP segment costs on the wire beyond its payload:
// 20 bytes of IPv4 header and 32 of TCP header with the timestamp option.
const headerBytes = 52

// Default agent timing, from agent/internal/config and agent/internal/mqtt:
// while the MQTT link is up a poll every connected_interval, 12 hours, plus
// up to 10 minutes of jitter (12 h 5 min on average); without the link every
// interval, an hour plus the jitter (65 minutes); an MQTT keepalive of 10
// minutes.
const (
	defaultPollMean          = 65 * time.Minute
	defaultConnectedPollMean = 12*time.Hour + 5*time.Minute
	defaultKeepAlive         = 10 * time.Minute
	day                      = 24 * time.Hour
)

// benchGuard reports whether this run is the named measurement's.
func benchGuard(t *testing.T, name string) bool {
	t.Helper()
	if os.Getenv(benchEnv) != name {
		t.Logf("a measurement of minutes: run by the benchmark that sets %s=%s", benchEnv, name)
		return false
	}
	return true
}

// runBench runs the test named test in a new process of this test binary,
// with benchEnv=name, streams its output, and reports the metrics it prints
// on lines "BENCHMETRIC value unit".
func runBench(b *testing.B, name, test string, need time.Duration) {
	b.Helper()
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > 0 && d < need {
			// make bench runs every benchmark under go test's default
			// 10-minute timeout; this one would be killed by it.
			b.Skipf("needs about %v: run with -timeout 60m (agent/demo/bench-daemon.sh does)", need)
		}
	}
	for range b.N {
		cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.timeout=60m")
		cmd.Env = append(os.Environ(), benchEnv+"="+name)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Println(line)
			_, m, ok := strings.Cut(line, "BENCHMETRIC ")
			if !ok {
				continue
			}
			f := strings.Fields(m)
			if len(f) != 2 {
				continue
			}
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				b.ReportMetric(v, f[1])
			}
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("%s: %v", test, err)
		}
	}
}

// BenchmarkDaemonIdle measures idle agents: resident set, CPU per idle
// minute, and bytes on the wire, through wireProxy. Run with -benchtime 1x.
func BenchmarkDaemonIdle(b *testing.B) {
	w := 12 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("RPMFLEET_BENCH_WINDOW")); err == nil {
		w = d
	}
	runBench(b, "idle", "TestDaemonBenchIdle", w+5*time.Minute)
}

// BenchmarkDaemonPush100 measures the latency from an import to 100 agents
// holding their new plan. Run with -benchtime 1x.
func BenchmarkDaemonPush100(b *testing.B) {
	runBench(b, "push100", "TestDaemonBenchPush", 15*time.Minute)
}

// metric prints one figure for runBench.
func metric(t *testing.T, v float64, unit string) {
	t.Helper()
	fmt.Printf("BENCHMETRIC %g %s\n", v, unit)
}

// scanKind says what a wireProxy's stream is, to count its messages.
type scanKind int

const (
	scanNone scanKind = iota
	// scanMQTT counts plain MQTT control packets by type.
	scanMQTT
	// scanTLS counts TLS records by content type and length ("up app 19");
	// over an idle MQTT-over-TLS link an application record of 19 bytes
	// (2 of MQTT, the inner content type, a 16-byte tag) is a PINGREQ up,
	// a PINGRESP down.
	scanTLS
)

// tlsPing is the key scanTLS counts an agent's MQTT ping under.
const tlsPing = "up app 19"

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

func (s wireStats) sub(o wireStats) wireStats {
	r := wireStats{Conns: s.Conns - o.Conns, Up: s.Up - o.Up, Down: s.Down - o.Down,
		SegsIn: s.SegsIn - o.SegsIn, SegsOut: s.SegsOut - o.SegsOut, Packets: map[string]int{}}
	for k, v := range s.Packets {
		if d := v - o.Packets[k]; d != 0 {
			r.Packets[k] = d
		}
	}
	return r
}

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
type stampLog struct {
	mu    sync.Mutex // guards all
	part  []byte
	lines []stampedLine
	all   bytes.Buffer
}

type stampedLine struct {
	at   time.Time
	text string
}

func (s *stampLog) Write(p []byte) (int, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all.Write(p)
	s.part = append(s.part, p...)
	for {
		i := bytes.IndexByte(s.part, '\n')
		if i < 0 {
			break
		}
		s.lines = append(s.lines, stampedLine{now, string(s.part[:i])})
		s.part = s.part[i+1:]
	}
	return len(p), nil
}

// first is the first line at or after index from holding every sub, and
// when it arrived.
func (s *stampLog) first(from int, subs ...string) (time.Time, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines[min(from, len(s.lines)):] {
		if !slices.ContainsFunc(subs, func(x string) bool { return !strings.Contains(l.text, x) }) {
			return l.at, l.text, true
		}
	}
	return time.Time{}, "", false
}

// count is how many lines since from hold sub.
func (s *stampLog) count(from int, sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines[min(from, len(s.lines)):] {
		if strings.Contains(l.text, sub) {
			n++
		}
	}
	return n
}

func (s *stampLog) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

func (s *stampLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.all.String()
}

// benchAgent is one rpmfleet-agent run process of a measurement.
type benchAgent struct {
	name, root, state, cfg string
	cmd                    *exec.Cmd // /usr/bin/time -v, or the agent itself
	pid                    int       // the agent's
	log                    *stampLog
	done                   chan struct{}
	https, mq              *wireProxy // nil when not proxied
}

// startBenchAgent starts rpmfleet-agent run on cfg, under /usr/bin/time -v
// when timed, with env.
func startBenchAgent(t *testing.T, a *benchAgent, env []string, timed bool) {
	t.Helper()
	argv := []string{filepath.Join(binDir, "rpmfleet-agent"), "run", "--config", a.cfg}
	if timed {
		argv = append([]string{"/usr/bin/time", "-v"}, argv...)
	}
	a.log = &stampLog{}
	a.cmd = exec.Command(argv[0], argv[1:]...)
	a.cmd.Env = env
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	a.done = make(chan struct{})
	go func() { a.cmd.Wait(); close(a.done) }()
	a.pid = a.cmd.Process.Pid
	if timed {
		waitFor(t, 10*time.Second, "the agent under /usr/bin/time", func() (bool, string) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", a.pid, a.pid))
			if err != nil {
				return false, err.Error()
			}
			f := strings.Fields(string(b))
			if len(f) == 0 {
				return false, "no child yet"
			}
			a.pid, _ = strconv.Atoi(f[0])
			return a.pid != 0, "bad pid"
		})
	}
	t.Cleanup(func() { a.stop(t) })
}

// stop sends SIGTERM to the agent and waits for it (and /usr/bin/time).
func (a *benchAgent) stop(t *testing.T) {
	select {
	case <-a.done:
		return
	default:
	}
	syscall.Kill(a.pid, syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(20 * time.Second):
		a.cmd.Process.Kill()
		syscall.Kill(a.pid, syscall.SIGKILL)
		<-a.done
		t.Errorf("agent %s ignored SIGTERM", a.name)
	}
}

// procCPU is a process's user+system CPU time so far.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command's closing parenthesis: state is field 3,
	// utime 14 and stime 15, in clock ticks.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	const ticks = 100 // sysconf(_SC_CLK_TCK) on Linux
	return time.Duration(ut+st) * time.Second / ticks
}

// procMem is a process's VmRSS and VmHWM in kB.
func procMem(t *testing.T, pid int) (rss, hwm int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, _ = strconv.Atoi(f[1])
		case "VmHWM:":
			hwm, _ = strconv.Atoi(f[1])
		}
	}
	return rss, hwm
}

// timeMaxRSS reads "Maximum resident set size (kbytes)" from /usr/bin/time
// -v's output.
func timeMaxRSS(out string) int {
	_, rest, ok := strings.Cut(out, "Maximum resident set size (kbytes): ")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0]))
	return n
}

func benchWindow(t *testing.T) time.Duration {
	t.Helper()
	w := 12 * time.Minute
	if s := os.Getenv("RPMFLEET_BENCH_WINDOW"); s != "" {
		var err error
		if w, err = time.ParseDuration(s); err != nil {
			t.Fatalf("RPMFLEET_BENCH_WINDOW=%q: %v", s, err)
		}
	}
	return w
}

// idleSpec is one idle agent of TestDaemonBenchIdle.
type idleSpec struct {
	name string
	poll string // [poll] interval and connected_interval; "" leaves the defaults
}

// TestDaemonBenchIdle: rpmfleet-server --tls auto with its embedded broker
// (MQTT over TLS with the API's certificate), and three enrolled, idle
// agents (policy notify, nothing to do), each reaching the server's HTTPS
// and MQTT through its own wireProxy pair, none sending TCP keepalive
// probes, as the server's listeners do not: one with the agent's default
// timing for the resident set, the CPU and the keepalive's cost, and two
// polling every 150 s while connected (interval and connected_interval
// both), past the server's 2-minute idle timeout, so each poll opens a new
// HTTPS connection as a 6-hourly one does, and past their state heartbeat
// (the connected interval), so each poll publishes the state once as a
// 6-hourly one does: the cost of one poll.
func TestDaemonBenchIdle(t *testing.T) {
	if !benchGuard(t, "idle") {
		return
	}
	window := benchWindow(t)
	repo := newFleetRepo(t)
	data := filepath.Join(t.TempDir(), "data")
	srv, mqttAddr := startPushServer(t, data, "--tls", "auto")
	dumpOnFailure(t, srv)
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("--tls auto serves %s", srv.url)
	}
	caPath := filepath.Join(data, "tls", "ca.crt")
	fp := caFingerprint(t, srv)
	admin := adminEnv(srv) // with RPMFLEET_CA: the server's own CA
	specs := []idleSpec{
		{name: "idle-default"},
		{name: "idle-poll150", poll: "150s"},
		{name: "idle-poll150-b", poll: "150s"},
	}
	tok := strings.TrimSpace(must(t, admin, "rpmfleet", "enroll-token", "create", "--uses", strconv.Itoa(len(specs))).stdout)
	srvAddr := strings.TrimPrefix(srv.url, "https://")
	var agents []*benchAgent
	for _, s := range specs {
		dir := t.TempDir()
		a := &benchAgent{name: s.name, root: repo.deviceRoot(t), state: filepath.Join(dir, "state"), cfg: filepath.Join(dir, "agent.toml")}
		a.https = newWireProxy(t, srvAddr, scanNone, false)
		a.mq = newWireProxy(t, mqttAddr, scanTLS, false)
		server := "https://" + a.https.addr()
		must(t, nil, "rpmfleet-agent", "enroll", "--server", server, "--token", tok, "--ca-fingerprint", fp,
			"--name", a.name, "--state-dir", a.state, "--root", a.root)
		var b strings.Builder
		fmt.Fprintf(&b, "server = %q\nstate_dir = %q\nroot = %q\n\n", server, a.state, a.root)
		fmt.Fprintf(&b, "[[repo]]\nid = \"demo\"\nbaseurl = %q\ngpgkey = [%q]\n\n", repo.url(), repo.key)
		b.WriteString("[policy]\nmode = \"notify\"\n\n")
		if s.poll != "" {
			fmt.Fprintf(&b, "[poll]\ninterval = %q\nconnected_interval = %q\njitter = \"10s\"\n\n", s.poll, s.poll)
		}
		// The broker the server named at enrolment, through the proxy:
		// mqtts, trusting the CA pinned at enrolment.
		fmt.Fprintf(&b, "[mqtt]\nbroker = \"mqtts://%s\"\nca = %q\n", a.mq.addr(), caPath)
		if err := os.WriteFile(a.cfg, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(a.cfg, 0o644)
		env := []string{"PATH=" + os.Getenv("PATH"), "HOME=/root"}
		if s.poll != "" {
			env = append(env, "RPMFLEET_LOG=debug") // "plan not modified" counts the polls
		}
		startBenchAgent(t, a, env, true)
		agents = append(agents, a)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, a := range agents {
				t.Logf("log of %s:\n%s", a.name, a.log)
			}
		}
	})
	// Settled: every device reported, connected to the broker, and its
	// first poll made; then 30 s more for start-up work to end.
	waitFor(t, 60*time.Second, "every agent to report and connect", func() (bool, string) {
		var ds []protocol.DeviceSummary
		if err := json.Unmarshal([]byte(must(t, admin, "rpmfleet", "devices", "--json").stdout), &ds); err != nil {
			return false, err.Error()
		}
		n := 0
		for _, d := range ds {
			if d.Packages > 0 {
				n++
			}
		}
		if n != len(agents) {
			return false, fmt.Sprintf("%d of %d reported", n, len(agents))
		}
		for _, a := range agents {
			if _, _, ok := a.log.first(0, "mqtt connected"); !ok {
				return false, a.name + " not connected to mqtt"
			}
		}
		return true, ""
	})
	time.Sleep(30 * time.Second)

	type sample struct {
		cpu       time.Duration
		https, mq wireStats
		mark      int
	}
	start := make([]sample, len(agents))
	for i, a := range agents {
		start[i] = sample{cpu: procCPU(t, a.pid), https: a.https.snapshot(), mq: a.mq.snapshot(), mark: a.log.mark()}
	}
	t0 := time.Now()
	t.Logf("idle window of %v from %s (load average %s)", window, t0.UTC().Format(time.TimeOnly), loadAvg())
	maxRSS := make([]int, len(agents))
	for time.Since(t0) < window {
		time.Sleep(min(10*time.Second, window-time.Since(t0)))
		for i, a := range agents {
			select {
			case <-a.done:
				t.Fatalf("agent %s exited while idle:\n%s", a.name, a.log)
			default:
			}
			rss, _ := procMem(t, a.pid)
			maxRSS[i] = max(maxRSS[i], rss)
		}
	}
	elapsed := time.Since(t0)
	t.Logf("idle window ended at %s (load average %s)", time.Now().UTC().Format(time.TimeOnly), loadAvg())
	srvRSS, srvHWM := procMem(t, srv.cmd.Process.Pid)

	type result struct {
		cpuPerMin         time.Duration
		rss, hwm, timeRSS int
		https, mq         wireStats
		polls, httpsConns int
		pings             int
		bytesPerDayNaive  float64
	}
	res := make([]result, len(agents))
	for i, a := range agents {
		r := &res[i]
		cpu := procCPU(t, a.pid) - start[i].cpu
		r.cpuPerMin = time.Duration(float64(cpu) / elapsed.Minutes())
		r.rss, r.hwm = procMem(t, a.pid)
		r.https = a.https.snapshot().sub(start[i].https)
		r.mq = a.mq.snapshot().sub(start[i].mq)
		r.polls = a.log.count(start[i].mark, "plan not modified")
		r.httpsConns = r.https.Conns
		r.pings = r.mq.Packets[tlsPing]
		r.bytesPerDayNaive = float64(r.https.Wire()+r.mq.Wire()) * float64(day) / float64(elapsed)
	}
	for i, a := range agents {
		a.stop(t)
		res[i].timeRSS = timeMaxRSS(a.log.String())
	}
	for i, a := range agents {
		r := res[i]
		t.Logf("%s: CPU %v per idle minute; VmRSS %d kB, VmHWM %d kB, highest VmRSS sampled %d kB, /usr/bin/time max RSS %d kB",
			a.name, r.cpuPerMin.Round(time.Microsecond), r.rss, r.hwm, maxRSS[i], r.timeRSS)
		t.Logf("%s: in %v: HTTPS %d connections, %d B up, %d B down, %d segments, %d B on the wire; MQTT %d B up, %d B down, %d segments, %d B on the wire, packets %v; polls logged %d; naive scale to a day %.1f KB",
			a.name, elapsed.Round(time.Second), r.https.Conns, r.https.Up, r.https.Down, r.https.Segs(), r.https.Wire(),
			r.mq.Up, r.mq.Down, r.mq.Segs(), r.mq.Wire(), r.mq.Packets, r.polls, r.bytesPerDayNaive/1000)
	}
	t.Logf("rpmfleet-server (embedded broker, %d agents): VmRSS %d kB, VmHWM %d kB", len(agents), srvRSS, srvHWM)

	// Something real was measured: every agent kept its MQTT link, the
	// polling ones polled.
	for i, a := range agents {
		if res[i].mq.Segs() == 0 && elapsed > defaultKeepAlive {
			t.Errorf("%s: no MQTT segment in %v", a.name, elapsed)
		}
		if strings.Contains(a.name, "poll150") && res[i].https.Conns == 0 && elapsed > 5*time.Minute {
			t.Errorf("%s: no HTTPS connection in %v of 150 s polls", a.name, elapsed)
		}
	}

	// Scale to a day of the defaults. One ping's cost comes from the
	// default agent (its MQTT link carries nothing else while idle: no
	// poll, no state publish). One poll's cost comes from the 150 s
	// pollers: their HTTPS bytes, and what their MQTT link carried beyond
	// the idle default agent's (the state each poll publishes), per HTTPS
	// connection opened (one per poll, as for a 12-hourly poll: the server
	// closes idle connections after 2 minutes). A day while connected has
	// 144 pings and 86,400 s / 12 h 5 min = 2.0 polls; a day with the link
	// down has hourly polls (22.2) and no pings, for comparison.
	def := res[0]
	pingsDay := float64(day / defaultKeepAlive)
	pollsDay := float64(day) / float64(defaultConnectedPollMean)
	pollsDayNoLink := float64(day) / float64(defaultPollMean)
	if def.pings == 0 {
		t.Logf("no MQTT ping in the window of %v: run longer than the %v keepalive to scale to a day", elapsed, defaultKeepAlive)
		return
	}
	perPing := float64(def.mq.Wire()) / float64(def.pings)
	var conns int
	var pollBytes float64
	for _, p := range res[1:] {
		extra := max(0, p.mq.Wire()-def.mq.Wire())
		pollBytes += float64(p.https.Wire() + extra)
		conns += p.httpsConns
		t.Logf("poller: %d polls, %.0f B each (HTTPS %d B, MQTT beyond the idle link %d B)", p.httpsConns,
			float64(p.https.Wire()+extra)/float64(max(p.httpsConns, 1)), p.https.Wire(), extra)
	}
	onePoll := pollBytes / float64(max(conns, 1))
	mqttDay := pingsDay * perPing
	total := mqttDay + onePoll*pollsDay
	t.Logf("defaults, connected: one MQTT ping %.0f B, MQTT %.1f KB/day; one poll %.0f B (of %d in the window); %.1f polls/day, %.1f KB; total %.1f KB/day",
		perPing, mqttDay/1000, onePoll, conns, pollsDay, onePoll*pollsDay/1000, total/1000)
	t.Logf("defaults, link down all day: %.1f polls/day x %.0f B = %.1f KB/day", pollsDayNoLink, onePoll, onePoll*pollsDayNoLink/1000)
	metric(t, total/1000, "KB/day")
	metric(t, onePoll, "B/poll")
	metric(t, perPing, "B/ping")
	metric(t, float64(def.cpuPerMin)/float64(time.Millisecond), "ms-CPU/idle-min")
	metric(t, float64(def.rss), "kB-VmRSS")
	metric(t, float64(def.hwm), "kB-VmHWM")
	metric(t, float64(def.timeRSS), "kB-maxRSS")
	metric(t, float64(srvRSS), "kB-server-VmRSS")
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// TestDaemonBenchPush: 100 enrolled rpmfleet-agent run processes, policy
// notify, each on its own copy of one device root with demo-lib 1.0
// installed by rpm, connected to rpmfleet-server's embedded broker (plain
// HTTP and MQTT on loopback); then, in the same run, 100 more through a
// Mosquitto the server publishes to (--mqtt-broker). rpmfleet import of the
// repository's advisory makes the server publish the signed feed notice;
// each agent verifies it, fetches its signed plan and logs "advisory not
// applied now" for the advisory once the plan verified. An agent's latency
// is the time from the import's answer (the rpmfleet import process
// exiting) to that line reaching the harness on the agent's stderr pipe,
// stamped as it arrives.
func TestDaemonBenchPush(t *testing.T) {
	if !benchGuard(t, "push100") {
		return
	}
	n := 100
	if s := os.Getenv("RPMFLEET_BENCH_AGENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("RPMFLEET_BENCH_AGENTS=%q: want a count", s)
		}
	}
	repo := newFleetRepo(t)
	proto := repo.deviceRoot(t)
	for _, broker := range []string{"embedded", "mosquitto"} {
		t.Run(broker, func(t *testing.T) { pushRun(t, repo, proto, n, broker) })
	}
}

// pushRun is one half of TestDaemonBenchPush.
func pushRun(t *testing.T, repo *fleetRepo, proto string, n int, broker string) {
	data := filepath.Join(t.TempDir(), "data")
	var srv *server
	var mq *mqtttest.Mosquitto
	var mqPass map[string]string
	if broker == "embedded" {
		srv, _ = startPushServer(t, data)
	} else {
		srv = startServer(t, data, "--mqtt-listen", "off")
	}
	base := t.TempDir()
	agents := make([]*benchAgent, n)
	tok := strings.TrimSpace(must(t, adminEnv(srv), "rpmfleet", "enroll-token", "create", "--uses", strconv.Itoa(n)).stdout)
	// Enrol four at a time.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	startEnrol := time.Now()
	for i := range agents {
		dir := filepath.Join(base, fmt.Sprintf("pi-%03d", i))
		a := &benchAgent{name: filepath.Base(dir), root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state"), cfg: filepath.Join(dir, "agent.toml")}
		agents[i] = a
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := os.MkdirAll(dir, 0o755); err != nil {
				errs <- err
				return
			}
			if out, err := exec.Command("cp", "-a", proto, a.root).CombinedOutput(); err != nil {
				errs <- fmt.Errorf("copy the device root: %v: %s", err, out)
				return
			}
			cmd := exec.Command(filepath.Join(binDir, "rpmfleet-agent"), "enroll", "--server", srv.url, "--token", tok,
				"--name", a.name, "--state-dir", a.state, "--root", a.root)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/root"}
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("enroll %s: %v: %s", a.name, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d devices enrolled in %v", n, time.Since(startEnrol).Round(time.Millisecond))
	cfgs := make([]agentConfig, n)
	for i := range cfgs {
		cfgs[i] = agentConfig{Mode: "notify"}
	}
	if broker == "mosquitto" {
		// Mosquitto needs each device's account (username = device id)
		// before it starts; then the server publishes through it.
		mqPass = map[string]string{mqttServerUser: "server-secret"}
		for i, a := range agents {
			b, err := os.ReadFile(filepath.Join(a.state, "credential.json"))
			if err != nil {
				t.Fatal(err)
			}
			var cred struct {
				DeviceID string `json:"device_id"`
			}
			if err := json.Unmarshal(b, &cred); err != nil || cred.DeviceID == "" {
				t.Fatalf("%s: credential.json: %v", a.name, err)
			}
			mqPass[cred.DeviceID] = a.name + "-secret"
			cfgs[i].Username = cred.DeviceID
			cfgs[i].PasswordFile = writeSecretFile(t, a.name+"-mqtt", mqPass[cred.DeviceID])
		}
		mq = mqtttest.Start(t, mqtttest.Options{Users: mqPass, ACL: mqtttest.FleetACL(mqttServerUser)})
		addr := strings.TrimPrefix(srv.url, "http://")
		srv.stop(t)
		srv = startServerAt(t, data, addr, "--mqtt-listen", "off", "--mqtt-broker", "mqtt://"+mq.Addr,
			"--mqtt-username", mqttServerUser, "--mqtt-password-file", writeSecretFile(t, "server-mqtt", mqPass[mqttServerUser]))
		for i := range cfgs {
			cfgs[i].Broker = "mqtt://" + mq.Addr
		}
	}
	dumpOnFailure(t, srv)
	for i, a := range agents {
		fa := &agent{name: a.name, root: a.root, state: a.state, server: srv.url, repo: repo}
		if err := os.WriteFile(a.cfg, []byte(cfgs[i].toml(fa)), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(a.cfg, 0o644)
	}
	startAgents := time.Now()
	for _, a := range agents {
		startBenchAgent(t, a, daemonEnv(), false)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of %s:\n%s", agents[0].name, agents[0].log)
		}
	})
	waitFor(t, 5*time.Minute, "every agent to report and connect to the broker", func() (bool, string) {
		for _, a := range agents {
			if _, _, ok := a.log.first(0, "mqtt connected"); !ok {
				return false, a.name + " not connected to mqtt"
			}
		}
		var ds []protocol.DeviceSummary
		if err := json.Unmarshal([]byte(must(t, adminEnv(srv), "rpmfleet", "devices", "--json").stdout), &ds); err != nil {
			return false, err.Error()
		}
		k := 0
		for _, d := range ds {
			if d.Packages > 0 {
				k++
			}
		}
		return k == n, fmt.Sprintf("%d of %d reported", k, n)
	})
	t.Logf("%d agents started, reported and connected in %v", n, time.Since(startAgents).Round(time.Millisecond))
	// Let start-up work end (each agent's first poll and state publish).
	time.Sleep(10 * time.Second)
	var rssSum, rssMax int
	for _, a := range agents {
		rss, _ := procMem(t, a.pid)
		rssSum += rss
		rssMax = max(rssMax, rss)
	}
	srvRSS, _ := procMem(t, srv.cmd.Process.Pid)
	t.Logf("connected and idle: agents' VmRSS mean %d kB, max %d kB; rpmfleet-server VmRSS %d kB; load average %s",
		rssSum/n, rssMax, srvRSS, loadAvg())
	if mq != nil {
		if pid := listenerPID(t, mq.Addr); pid != 0 {
			rss, hwm := procMem(t, pid)
			t.Logf("mosquitto with %d devices and the server connected: VmRSS %d kB, VmHWM %d kB", n, rss, hwm)
			metric(t, float64(rss), "kB-mosquitto-VmRSS")
		}
	}

	marks := make([]int, n)
	for i, a := range agents {
		marks[i] = a.log.mark()
	}
	sent := time.Now()
	importFix(t, srv, repo)
	answered := time.Now()
	t.Logf("rpmfleet import took %v (load average %s)", answered.Sub(sent).Round(time.Millisecond), loadAvg())
	notice := make([]time.Duration, n)
	plan := make([]time.Duration, n)
	got := make([]bool, n)
	waitFor(t, 2*time.Minute, "every agent to hold its new plan", func() (bool, string) {
		missing := 0
		for i, a := range agents {
			if got[i] {
				continue
			}
			at, _, ok := a.log.first(marks[i], "advisory not applied now", fixAdvisory)
			if !ok {
				missing++
				continue
			}
			got[i], plan[i] = true, at.Sub(answered)
			if at2, _, ok := a.log.first(marks[i], "advisory feed changed"); ok {
				notice[i] = at2.Sub(answered)
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d agents still without the plan", missing, n)
	})
	pushed := 0
	for i, a := range agents {
		if _, _, ok := a.log.first(marks[i], "advisory feed changed"); ok {
			pushed++
		}
	}
	if pushed != n {
		t.Errorf("%d of %d agents logged the pushed feed notice; the others got the plan some other way", pushed, n)
	}
	q := func(ds []time.Duration, p float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	sinceSent := make([]time.Duration, n)
	for i := range plan {
		sinceSent[i] = plan[i] + answered.Sub(sent)
	}
	for _, v := range []struct {
		what string
		ds   []time.Duration
	}{
		{"feed notice logged, from the import's answer", notice},
		{"plan fetched and verified, from the import's answer", plan},
		{"plan fetched and verified, from the import's request", sinceSent},
	} {
		t.Logf("%s: %s: p50 %v, p95 %v, p99 %v, max %v, min %v", broker, v.what,
			q(v.ds, .5).Round(time.Millisecond), q(v.ds, .95).Round(time.Millisecond), q(v.ds, .99).Round(time.Millisecond),
			q(v.ds, 1).Round(time.Millisecond), q(v.ds, 0).Round(time.Millisecond))
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	// The server publishes before it answers, so an agent may hold its
	// plan before rpmfleet import exits: from the request is the bound.
	metric(t, ms(q(plan, .99)), "ms-p99-answer-"+broker)
	metric(t, ms(q(sinceSent, .5)), "ms-p50-request-"+broker)
	metric(t, ms(q(sinceSent, .95)), "ms-p95-request-"+broker)
	metric(t, ms(q(sinceSent, .99)), "ms-p99-request-"+broker)
	metric(t, ms(q(sinceSent, 1)), "ms-max-request-"+broker)
	metric(t, ms(answered.Sub(sent)), "ms-import-"+broker)
	for _, a := range agents {
		a.stop(t)
	}
}

// listenerPID is the process listening on addr, from ss; 0 when not found.
func listenerPID(t *testing.T, addr string) int {
	t.Helper()
	_, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("ss", "-ltnpH", "sport = :"+port).Output()
	if err != nil {
		t.Logf("ss: %v", err)
		return 0
	}
	_, rest, ok := strings.Cut(string(out), "pid=")
	if !ok {
		return 0
	}
	pid, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
	return pid
}
