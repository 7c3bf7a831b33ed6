//go:build daemonbench

package integration

// Issue 5's performance figures, measured on the real binaries: the idle
// agent (resident set, CPU per idle minute, bytes on the wire per idle day)
// and the push latency to 100 connected agents. docs/benchmarks.md ("Push
// (issue 5)") holds the figures and how they were taken.
//
// The measurements take minutes, so they are built only with the
// daemonbench tag: make test neither runs nor skips them. Each is a test
// (the harness it reuses takes a *testing.T) that a Benchmark runs in a new
// process of this test binary with RPMFLEET_BENCH_DAEMON naming it:
//
//	go test -tags daemonbench -run '^$' -bench BenchmarkDaemonIdle -benchtime 1x -timeout 60m ./server/integration/
//	go test -tags daemonbench -run '^$' -bench BenchmarkDaemonPush100 -benchtime 1x -timeout 30m ./server/integration/
//
// RPMFLEET_BENCH_WINDOW (a Go duration, 12m by default) is the idle window;
// RPMFLEET_BENCH_AGENTS (100 by default) the number of pushed agents. No
// figure is checked against its target here: a slow, shared machine must not
// fail a build. What is checked is that the harness measured something real
// (traffic flowed, every agent fetched its plan).
//
// The bytes on the wire are counted by wireProxy (bench_daemon_test.go).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/mqtttest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// benchEnv names the measurement a run of this binary is for.
const benchEnv = "RPMFLEET_BENCH_DAEMON"

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

// scanNone counts no packets: the proxy counts only bytes and segments.
const scanNone scanKind = 0

// tlsPing is the key scanTLS counts an agent's MQTT ping under.
const tlsPing = "up app 19"

// sub is what crossed between snapshot o and s.
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

// benchOnly skips the test, saying why and how to run it, unless this run
// is the named measurement's: a measurement takes minutes, and a plain go
// test shows it as skipped rather than as a pass it did not earn.
func benchOnly(t *testing.T, name, bench string) {
	t.Helper()
	if os.Getenv(benchEnv) != name {
		t.Skipf("a measurement of minutes, run by %s (go test -tags daemonbench -run '^$' -bench %s -benchtime 1x -timeout 60m), which sets %s=%s", bench, bench, benchEnv, name)
	}
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
	benchOnly(t, "idle", "BenchmarkDaemonIdle")
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
	benchOnly(t, "push100", "BenchmarkDaemonPush100")
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
