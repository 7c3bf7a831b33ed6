package integration

// The fault tests of issue 15 (make test-faults runs every TestFault*):
// each makes one fault on the real binaries (rpmfleet-server replicas on a
// real PostgreSQL or one server on a real SQLite file, rpmfleet-agent run
// on device roots the real rpm wrote, a real Mosquitto where a broker is
// external) and checks that nothing acknowledged is lost, that the devices
// converge, and that the server reports the truth. docs/reliability.md
// has their table, with the recovery times they log.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the test reads the server's SQLite file

	"github.com/rpmfleet/rpmfleet/internal/fleetsim"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres/pgtest"
)

// TestFaultReplicaKilledDuringRolloutPhase: three replicas on one
// PostgreSQL, four real agents (mode apply, window open) spread over them,
// each listing the other replicas in servers. A rollout of the fix in
// phases 1, 50% and the rest is created; the replica leading the rollout
// job is killed with SIGKILL while the first phase runs, and the new
// leader is killed again as soon as the second phase starts. The rollout
// survives both (same id, phases and devices, read from the survivor),
// each phase is stepped exactly once (the audit log holds one
// rollout.phase entry per step, and the devices are in phases of 1, 1 and
// 2), every agent installs the fix, and the CVE answer lists every device
// patched and none exposed.
func TestFaultReplicaKilledDuringRolloutPhase(t *testing.T) {
	repo := newFleetRepo(t)
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatalf("start PostgreSQL (run make deps): %v", err)
	}
	t.Cleanup(func() { pg.Stop() })
	cfg := filepath.Join(t.TempDir(), "server.toml")
	if err := os.WriteFile(cfg, []byte("[rollouts]\ntick = \"200ms\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rs := startReplicas(t, pg.NewDatabase(t), 3, "--config", cfg)
	for _, s := range rs.servers {
		dumpOnFailure(t, s)
	}
	live := func() *server {
		for _, s := range rs.servers {
			if s.cmd.ProcessState == nil {
				return s
			}
		}
		t.Fatal("no replica alive")
		return nil
	}
	admin := func() []string { return adminEnv(live()) }

	must(t, admin(), "rpmfleet", "group", "set", "field", "site=field")
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"mode": "apply", "security_only": true, "approve_after_days": {"Critical": 0}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, admin(), "rpmfleet", "group", "policy", "field", policy)

	var agents []*agent
	for i := range 4 {
		home := rs.servers[i%3]
		var others []string
		for _, s := range rs.servers {
			if s != home {
				others = append(others, s.url)
			}
		}
		name := fmt.Sprintf("pi-roll-%d", i)
		// Poll every 2 s: a device whose broker was the killed replica
		// learns of its phase by polling a live one.
		a := startAgent(t, home, repo, name, repo.deviceRoot(t), agentConfig{Mode: "apply", Window: "open", Poll: "2s", Servers: others})
		must(t, admin(), "rpmfleet", "labels", name, "site=field")
		agents = append(agents, a)
	}
	for _, a := range agents {
		waitReported(t, rs.servers[0], a)
	}
	importFix(t, rs.servers[1], repo)
	waitExposure(t, rs.servers[2], fixCVE, 30*time.Second, names(agents), nil)

	var created protocol.Rollout
	out := must(t, admin(), "rpmfleet", "rollout", "create", "--group", "field", "--advisory", fixAdvisory, "--phases", "1,50%", "--soak", "1s", "--json")
	if err := json.Unmarshal([]byte(out.stdout), &created); err != nil || len(created.Devices) != 1 || created.Total != 4 {
		t.Fatalf("rollout create: %v\n%s", err, out.stdout)
	}
	show := func() protocol.Rollout {
		t.Helper()
		var r protocol.Rollout
		out := must(t, admin(), "rpmfleet", "rollout", "show", created.ID, "--json")
		if err := json.Unmarshal([]byte(out.stdout), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// killLeader kills the replica holding the rollouts lock and returns
	// how long until a survivor held it.
	killLeader := func(why string) time.Duration {
		t.Helper()
		var leader *server
		waitFor(t, 20*time.Second, "a replica to lead the rollouts", func() (bool, string) {
			leader = rolloutLeader(rs, nil)
			return leader != nil, "no replica logged the rollouts lock taken"
		})
		marks := map[*server]int{}
		for _, s := range rs.servers {
			marks[s] = len(s.log.String())
		}
		leader.kill()
		killed := time.Now()
		t.Logf("killed the rollouts leader %s %s", leader.url, why)
		waitFor(t, 30*time.Second, "a survivor to lead the rollouts", func() (bool, string) {
			return rolloutLeader(rs, marks) != nil, "not yet"
		})
		took := time.Since(killed)
		t.Logf("a survivor led the rollouts %v after the kill", took.Round(time.Millisecond))
		return took
	}
	first := killLeader("in phase 1, the canary's")
	if r := show(); r.ID != created.ID || !slices.Equal(r.Phases, created.Phases) || len(r.Devices) < 1 || r.Devices[0].Device != created.Devices[0].Device {
		t.Fatalf("after the kill the rollout is %+v, want %+v", r, created)
	}
	waitFor(t, 90*time.Second, "the rollout's second phase", func() (bool, string) {
		r := show()
		return r.Phase >= 1 || r.State != protocol.RolloutRunning, fmt.Sprintf("%s phase %d %+v", r.State, r.Phase, r.Devices)
	})
	second := killLeader("as phase 2 began")

	for _, a := range agents {
		a.waitInstalled(t, 120*time.Second, "demo-lib", newLib)
	}
	waitFor(t, 60*time.Second, "the rollout to complete", func() (bool, string) {
		r := show()
		return r.State == protocol.RolloutCompleted, fmt.Sprintf("%s phase %d: %s", r.State, r.Phase, r.Reason)
	})
	r := show()
	phases := map[int]int{}
	for _, d := range r.Devices {
		phases[d.Phase]++
		if d.Result != protocol.ResultApplied && d.Result != protocol.ResultPatched {
			t.Errorf("device %s ended %s (%s)", d.Device, d.Result, d.Error)
		}
	}
	if len(r.Devices) != 4 || phases[0] != 1 || phases[1] != 1 || phases[2] != 2 {
		t.Errorf("devices by phase = %v (%d devices), want 1, 1 and 2", phases, len(r.Devices))
	}
	var audit []protocol.AuditEntry
	out = must(t, admin(), "rpmfleet", "audit", "--limit", "1000", "--json")
	if err := json.Unmarshal([]byte(out.stdout), &audit); err != nil {
		t.Fatal(err)
	}
	steps := map[string]int{}
	for _, e := range audit {
		if e.Target == created.ID {
			steps[e.Action]++
		}
	}
	if steps["rollout.create"] != 1 || steps["rollout.phase"] != 2 || steps["rollout.complete"] != 1 {
		t.Errorf("audit entries of the rollout by action = %v, want one create, two phase steps and one complete", steps)
	}
	waitExposure(t, live(), fixCVE, 30*time.Second, nil, names(agents))
	t.Logf("leader taken over %v after the first kill, %v after the second", first.Round(time.Millisecond), second.Round(time.Millisecond))
}

// rolloutLeader is the live replica that logged the rollouts leader lock
// taken since its mark (from the start when marks is nil).
func rolloutLeader(rs *replicaSet, marks map[*server]int) *server {
	for _, s := range rs.servers {
		if s.cmd.ProcessState != nil {
			continue
		}
		l := s.log.String()
		if m, ok := marks[s]; ok && m <= len(l) {
			l = l[m:]
		}
		for _, line := range strings.Split(l, "\n") {
			if strings.Contains(line, "leader lock taken") && strings.Contains(line, "rollouts") {
				return s
			}
		}
	}
	return nil
}

// TestFaultBrokerRestart: the broker the agents take their notices from
// goes away and comes back, and the next import's notice still reaches
// them at once. The agents poll every hour, so only a push explains an
// install within pushDeadline.
func TestFaultBrokerRestart(t *testing.T) {
	repo := newFleetRepo(t)

	t.Run("mosquitto", func(t *testing.T) {
		// All replicas publish through one external Mosquitto
		// (--mqtt-broker); Mosquitto restarts.
		f, agents := newMQFleet(t, repo, []string{"pi-mq-restart"}, []agentConfig{{Mode: "apply", Window: "open"}})
		a := agents[0]
		waitReported(t, f.srv, a)
		a.waitLog(t, 0, 30*time.Second, "mqtt connected")
		count := func(user string) int { return strings.Count(f.mq.Log(), "u'"+user+"'") }
		agentBefore, serverBefore := count(a.id), count(mqttServerUser)
		f.mq.Stop()
		f.mq.Restart()
		restarted := time.Now()
		waitFor(t, 60*time.Second, "the agent and the server to connect to mosquitto again", func() (bool, string) {
			na, ns := count(a.id), count(mqttServerUser)
			return na > agentBefore && ns > serverBefore, fmt.Sprintf("agent connections %d (before %d), server %d (before %d)", na, agentBefore, ns, serverBefore)
		})
		t.Logf("mosquitto restarted: agent and server connected again within %v", time.Since(restarted).Round(time.Millisecond))
		start := time.Now()
		importFix(t, f.srv, repo)
		a.waitInstalled(t, pushDeadline, "demo-lib", newLib)
		t.Logf("import to applied after the restart: %v", time.Since(start).Round(time.Millisecond))
		waitExposure(t, f.srv, fixCVE, 20*time.Second, nil, []string{a.name})
	})

	t.Run("embedded", func(t *testing.T) {
		// The server's embedded broker goes with its process: kill -9,
		// started again on the same ports and data.
		data := filepath.Join(t.TempDir(), "data")
		srv, mqttAddr := startPushServer(t, data)
		dumpOnFailure(t, srv)
		a := startAgent(t, srv, repo, "pi-embedded-restart", repo.deviceRoot(t), agentConfig{Mode: "apply", Window: "open"})
		waitReported(t, srv, a)
		a.waitLog(t, 0, 30*time.Second, "mqtt connected")
		mark := a.log.Len()
		addr := strings.TrimPrefix(srv.url, "http://")
		srv.kill()
		killed := time.Now()
		srv = startServerAt(t, data, addr, "--mqtt-listen", mqttAddr)
		dumpOnFailure(t, srv)
		a.waitLog(t, mark, 60*time.Second, "mqtt connected")
		t.Logf("server killed and started again: agent connected again within %v", time.Since(killed).Round(time.Millisecond))
		start := time.Now()
		importFix(t, srv, repo)
		a.waitInstalled(t, pushDeadline, "demo-lib", newLib)
		t.Logf("import to applied after the restart: %v", time.Since(start).Round(time.Millisecond))
		waitExposure(t, srv, fixCVE, 20*time.Second, nil, []string{a.name})
	})
}

// gate is a TCP proxy in front of one address that a test can partition:
// while closed, it forwards nothing in either direction and connects no
// new connection onward. Bytes already read are held, not dropped, as TCP
// holds them while a real partition lasts (it retransmits until the path
// is back or a side gives up), so a request that outlives the client's
// timeout is abandoned by the client, and one that does not arrives late.
type gate struct {
	ln     net.Listener
	target string

	mu   sync.Mutex    // guards open and wake
	open bool          // forwarding
	wake chan struct{} // closed when the gate opens
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, open: true, wake: make(chan struct{})}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		g.set(true)
		conns.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				g.serve(c)
			}()
		}
	}()
	return g
}

func (g *gate) addr() string { return g.ln.Addr().String() }

// set opens (true) or closes (false) the gate.
func (g *gate) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if open == g.open {
		return
	}
	g.open = open
	if open {
		close(g.wake)
	} else {
		g.wake = make(chan struct{})
	}
}

// wait returns once the gate is open, or when done is closed.
func (g *gate) wait(done <-chan struct{}) bool {
	g.mu.Lock()
	open, wake := g.open, g.wake
	g.mu.Unlock()
	if open {
		return true
	}
	select {
	case <-wake:
		return true
	case <-done:
		return false
	}
}

func (g *gate) serve(c net.Conn) {
	defer c.Close()
	done := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(done) }) }
	if !g.wait(done) {
		return
	}
	up, err := net.DialTimeout("tcp", g.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	pipe := func(dst, src net.Conn) {
		defer stop()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if !g.wait(done) {
					return
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
}

// TestFaultNetworkPartition: an agent reaches the server's API and broker
// only through gates (TCP proxies in the test, no root needed). The
// partition holds everything for 8 s while the device changes twice and
// an advisory is imported: the agent keeps running, its reports wait in
// its on-disk queue, and the server still shows the old inventory; the
// agent is stopped (it exits cleanly within 20 s) and started again inside
// the partition, and its queue is as it was. When
// the partition heals, the queue drains: every queued report is stored
// exactly once, the server's inventory is the device's, and the agent
// learns of the import.
func TestFaultNetworkPartition(t *testing.T) {
	repo := newFleetRepo(t)
	data := filepath.Join(t.TempDir(), "data")
	srv, mqttAddr := startPushServer(t, data)
	dumpOnFailure(t, srv)
	api, broker := newGate(t, strings.TrimPrefix(srv.url, "http://")), newGate(t, mqttAddr)
	root := repo.deviceRoot(t)
	// The device enrols through the gate: the agent uses the server it
	// enrolled with.
	through := *srv
	through.url = "http://" + api.addr()
	a := enrollAgent(t, &through, repo, "pi-partitioned", root)
	a.writeConfig(t, agentConfig{Mode: "notify", Poll: "2s", Broker: "tcp://" + broker.addr()})
	a.start(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of agent %s:\n%s", a.name, a.log)
		}
	})
	waitReported(t, srv, a)
	a.waitLog(t, 0, 30*time.Second, "mqtt connected")
	if d := device(t, srv, a.name); d.Packages != 1 {
		t.Fatalf("the server holds %d packages for %s before the partition, want 1", d.Packages, a.name)
	}

	api.set(false)
	broker.set(false)
	partitioned := time.Now()
	rpmIn(t, root, "-i", repo.rpms["demo-tool-1.0"])
	var queued []string
	waitFor(t, 20*time.Second, "the first change's report to wait in the queue", func() (bool, string) {
		queued = a.queued(t)
		return len(queued) >= 1, fmt.Sprintf("queued %v", queued)
	})
	rpmIn(t, root, "-U", repo.rpms["demo-tool-2.0"])
	waitFor(t, 20*time.Second, "the second change's report to wait in the queue", func() (bool, string) {
		queued = a.queued(t)
		return len(queued) >= 2, fmt.Sprintf("queued %v", queued)
	})
	importFix(t, srv, repo)
	time.Sleep(time.Until(partitioned.Add(8 * time.Second))) // the partition lasts
	if !a.running() {
		t.Fatal("the agent exited during the partition")
	}
	if d := device(t, srv, a.name); d.Packages != 1 {
		t.Errorf("the server holds %d packages for %s during the partition, want still 1", d.Packages, a.name)
	}
	// The agent is stopped and started again inside the partition, as a
	// reboot would: its queue is on disk, and it exits promptly though
	// its requests and its broker link hang.
	before := a.queued(t)
	stopping := time.Now()
	a.stop(t)
	t.Logf("agent stopped in %v during the partition", time.Since(stopping).Round(time.Millisecond))
	if after := a.queued(t); !slices.Equal(after, before) {
		t.Fatalf("the queue was %v before the stop, %v after", before, after)
	}
	a.start(t)
	time.Sleep(time.Second)
	queued = a.queued(t)
	if len(queued) < len(before) || !slices.Equal(queued[:len(before)], before) {
		t.Fatalf("after the restart the queue is %v, want %v first", queued, before)
	}
	t.Logf("partitioned for %v; queued reports %v", time.Since(partitioned).Round(time.Millisecond), queued)

	mark := a.log.Len()
	api.set(true)
	broker.set(true)
	healed := time.Now()
	waitFor(t, 60*time.Second, "the agent's queue to drain", func() (bool, string) {
		q := a.queued(t)
		return len(q) == 0, fmt.Sprintf("queued %v", q)
	})
	drained := time.Since(healed)
	waitDevice(t, srv, a.name, 10*time.Second, "with demo-lib and demo-tool", func(d protocol.Device) bool { return d.Packages == 2 })
	a.waitLog(t, mark, pushDeadline, fixAdvisory)
	waitExposure(t, srv, fixCVE, 20*time.Second, []string{a.name}, nil)
	t.Logf("healed: queue drained in %v", drained.Round(time.Millisecond))

	db := openSQLite(t, filepath.Join(data, "rpmfleet.db"))
	for _, id := range queued {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM reports WHERE device_id = ? AND id = ?`, a.id, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("report %s is stored %d times, want once", id, n)
		}
	}
	// None applied twice: a delta applied twice, or one lost, would
	// leave a set whose digest differs from the device's, and the server
	// would ask for a full resync.
	if strings.Contains(a.logSince(mark), "resync") {
		t.Errorf("the agent was asked to resync after the partition:\n%s", a.logSince(mark))
	}
}

// openSQLite opens the server's database read-only, as an admin's sqlite3
// shell would beside the running server (WAL: the server's writer does not
// wait for it).
func openSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mountTmpfs mounts a tmpfs of size bytes at dir, with more mount options,
// unmounted when the test ends (after the server on it, which was started
// later, stopped).
func mountTmpfs(t *testing.T, dir string, size int, opts ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	o := strings.Join(append([]string{fmt.Sprintf("size=%d", size), "mode=0700"}, opts...), ",")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", o, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a %d-byte tmpfs on %s for the server's data (this test needs root: run make test-faults as root): %v\n%s", size, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
}

// fill writes zeros to path until the file system is full, and returns
// how much it wrote.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			// The last bytes of the last page.
			for _, small := range []int{4096, 512, 1} {
				for {
					w, err := f.Write(buf[:small])
					n += int64(w)
					if err != nil {
						break
					}
				}
			}
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestFaultServerDiskFull: the server's data folder is a 32 MiB tmpfs
// mounted by the test, which therefore needs root (it says so and fails
// without). A file size limit (RLIMIT_FSIZE) is no stand-in: SQLite
// reports its EFBIG as a disk I/O error, not as a full disk. The log is
// checkpointed and truncated, as a quiet server's would be, and the volume
// is filled by a file, so the device's next report must grow the log and
// cannot be stored. The server answers 507 with an error saying its
// storage is full, stays up and keeps answering reads; the agent keeps the
// report queued. When the file is removed, the report is delivered, stored
// once, and the database is intact.
func TestFaultServerDiskFull(t *testing.T) {
	repo := newFleetRepo(t)
	vol := filepath.Join(t.TempDir(), "vol")
	mountTmpfs(t, vol, 32<<20)
	data := filepath.Join(vol, "data")
	srv, _ := startPushServer(t, data)
	dumpOnFailure(t, srv)
	root := repo.deviceRoot(t)
	a := startAgent(t, srv, repo, "pi-disk-full", root, agentConfig{Mode: "notify"})
	waitReported(t, srv, a)

	// Copy the log into the database and truncate it, so that the next
	// write must grow it: an admin's sqlite3 shell may do the same.
	dbPath := filepath.Join(data, "rpmfleet.db")
	ck, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	waitFor(t, 20*time.Second, "a truncating checkpoint of the server's log", func() (bool, string) {
		var busy, logFrames, done int
		if err := ck.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
			return false, err.Error()
		}
		st, err := os.Stat(dbPath + "-wal")
		if err != nil {
			return false, err.Error()
		}
		return busy == 0 && st.Size() == 0, fmt.Sprintf("busy %d, log %d bytes", busy, st.Size())
	})
	ck.Close()
	filler := filepath.Join(vol, "filler")
	t.Logf("filled the server's data volume with %d bytes", fill(t, filler))

	mark, smark := a.log.Len(), len(srv.log.String())
	rpmIn(t, root, "-i", repo.rpms["demo-tool-1.0"])
	line := a.waitLog(t, mark, 30*time.Second, "report not delivered", "507")
	t.Logf("agent: %s", line)
	if !strings.Contains(line, "storage is full") {
		t.Errorf("the agent's error does not say the server's storage is full: %s", line)
	}
	queued := a.queued(t)
	if len(queued) == 0 {
		t.Fatal("the refused report is not in the agent's queue")
	}
	if !strings.Contains(srv.log.String()[smark:], "storage full") {
		t.Errorf("the server did not log the refusal as storage full:\n%s", srv.log.String()[smark:])
	}
	if srv.cmd.ProcessState != nil {
		t.Fatal("the server exited on a full disk")
	}
	if d := device(t, srv, a.name); d.Packages != 1 {
		t.Errorf("the server shows %d packages for %s while its disk is full, want the 1 it stored", d.Packages, a.name)
	}
	// Still refused a few retries later, not dropped.
	a.waitLog(t, a.log.Len(), 30*time.Second, "report not delivered", "507")
	if q := a.queued(t); !slices.Equal(q, queued) {
		t.Errorf("the queue went from %v to %v while the disk was full", queued, q)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	waitFor(t, 30*time.Second, "the agent's queue to drain once space returned", func() (bool, string) {
		q := a.queued(t)
		return len(q) == 0, fmt.Sprintf("queued %v", q)
	})
	t.Logf("space back: queue drained in %v", time.Since(freed).Round(time.Millisecond))
	waitDevice(t, srv, a.name, 10*time.Second, "with demo-lib and demo-tool", func(d protocol.Device) bool { return d.Packages == 2 })
	db := openSQLite(t, dbPath)
	for _, id := range queued {
		var c int
		if err := db.QueryRow(`SELECT count(*) FROM reports WHERE device_id = ? AND id = ?`, a.id, id).Scan(&c); err != nil {
			t.Fatal(err)
		}
		if c != 1 {
			t.Errorf("report %s is stored %d times, want once", id, c)
		}
	}
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check = %q, %v", check, err)
	}
}

// TestFaultAgentClockSkew: the agent's clock disagrees with the server's.
// The agent binary is static Go, which reads the clock through the vDSO,
// so no LD_PRELOAD clock (faketime) moves it, and a time namespace cannot
// move the wall clock: the test moves the other end instead, signing with
// the server's own key (read from its data folder) messages whose times
// are what a server whose clock is ahead or behind would write, and
// publishing them on Mosquitto. A message issued up to notice.DefaultSkew
// (5 min) ahead of the agent's clock is accepted, one further ahead is
// refused as not yet valid; a message whose issue time is behind the
// agent's clock is accepted until it expires (a feed notice lives 24 h, a
// command 10 min), and refused after.
func TestFaultAgentClockSkew(t *testing.T) {
	repo := newFleetRepo(t)
	f, agents := newMQFleet(t, repo, []string{"pi-skewed"}, []agentConfig{{Mode: "notify"}})
	a := agents[0]
	sp := newSpy(t, f.mq, f.pw[mqttSpyUser])
	waitReported(t, f.srv, a)
	a.waitLog(t, 0, 30*time.Second, "mqtt connected")
	key := readNoticeKey(t, f.data)

	var seq uint64 = uint64(time.Now().UnixNano())
	signAt := func(skew time.Duration, kind notice.Kind, device string, body any, ttl time.Duration) []byte {
		s, err := notice.NewSigner(key, notice.SignerOptions{Now: func() time.Time { return time.Now().Add(skew) },
			Seq: func(notice.Kind, string) (uint64, error) { seq++; return seq, nil }})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := s.Sign(kind, device, body, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	feed := protocol.FeedNotice{Changed: 1, Advisories: []string{fixAdvisory}}
	report := protocol.Command{Verb: protocol.CommandReport}
	for _, c := range []struct {
		name  string
		skew  time.Duration // the signer's clock minus the agent's
		kind  notice.Kind
		topic string
		want  []string // what the agent logs
	}{
		{"agent 4 min behind: feed notice accepted", 4 * time.Minute, notice.KindFeedNotice, protocol.TopicAdvisoryFeed, []string{"advisory feed changed"}},
		{"agent 6 min behind: feed notice refused", 6 * time.Minute, notice.KindFeedNotice, protocol.TopicAdvisoryFeed, []string{"signed message refused", "ahead of this clock"}},
		{"agent 23 h ahead: feed notice accepted", -23 * time.Hour, notice.KindFeedNotice, protocol.TopicAdvisoryFeed, []string{"advisory feed changed"}},
		{"agent 25 h ahead: feed notice refused", -25 * time.Hour, notice.KindFeedNotice, protocol.TopicAdvisoryFeed, []string{"signed message refused", "expired"}},
		{"agent 9 min ahead: command accepted", -9 * time.Minute, notice.KindCommand, protocol.DeviceCommandTopic(a.id), []string{"command", "verb=report"}},
		{"agent 11 min ahead: command refused", -11 * time.Minute, notice.KindCommand, protocol.DeviceCommandTopic(a.id), []string{"signed message refused", "expired"}},
		{"agent 6 min behind: command refused", 6 * time.Minute, notice.KindCommand, protocol.DeviceCommandTopic(a.id), []string{"signed message refused", "ahead of this clock"}},
	} {
		var msg []byte
		if c.kind == notice.KindFeedNotice {
			msg = signAt(c.skew, c.kind, "", feed, 24*time.Hour)
		} else {
			msg = signAt(c.skew, c.kind, a.id, report, 10*time.Minute)
		}
		mark := a.log.Len()
		sp.publish(t, c.topic, msg)
		// An accepted message's seq is an attribute; a refused one's is
		// in the error.
		id := fmt.Sprintf("seq=%d", seq)
		if c.want[0] == "signed message refused" {
			id = fmt.Sprintf("seq %d", seq)
		}
		line := a.waitLog(t, mark, 20*time.Second, append([]string{id}, c.want...)...)
		t.Logf("%s: %s", c.name, line)
		if !a.running() {
			t.Fatalf("the agent exited after %s", c.name)
		}
	}
	// The device still takes the real server's own notices: an import
	// reaches it, and what it reports is believed.
	mark := a.log.Len()
	importFix(t, f.srv, repo)
	a.waitLog(t, mark, pushDeadline, fixAdvisory)
	waitExposure(t, f.srv, fixCVE, 20*time.Second, []string{a.name}, nil)
}

// TestFaultPostgresDiskFull: the server's tables on PostgreSQL live on a
// volume that fills up. The test mounts a 48 MiB tmpfs (it needs root),
// makes it a tablespace and has the replica create its tables there
// (default_tablespace in the database URL); PostgreSQL's own log stays on
// its disk, as on a server whose data volume is separate. Eight simulated
// devices report; the volume is filled; their changed package sets, which
// need new pages, are refused with 507 naming the full storage
// (PostgreSQL's disk_full, 53100), the server stays up and answers a CVE
// question, and once the file is removed every device reports again.
// Every report the server acknowledged is in PostgreSQL.
func TestFaultPostgresDiskFull(t *testing.T) {
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatalf("start PostgreSQL (run make deps): %v", err)
	}
	t.Cleanup(func() { pg.Stop() })
	// PostgreSQL runs as postgres (or nobody) under root: the volume is
	// that user's, as CREATE TABLESPACE demands.
	u, err := user.Lookup("postgres")
	if err != nil {
		u, err = user.Lookup("nobody")
	}
	if err != nil {
		t.Fatal(err)
	}
	// The volume's folders may be crossed by that user.
	tmp := t.TempDir()
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	vol := filepath.Join(tmp, "vol")
	mountTmpfs(t, vol, 48<<20, "uid="+u.Uid, "gid="+u.Gid)
	ts := fmt.Sprintf("fault_%d", time.Now().UnixNano())
	var db string
	made := false
	t.Cleanup(func() { // after the replica stopped and the schema went
		if !made {
			return
		}
		c, err := pgx.Connect(context.Background(), db)
		if err == nil {
			_, err = c.Exec(context.Background(), "DROP TABLESPACE "+ts)
			c.Close(context.Background())
		}
		if err != nil {
			t.Errorf("drop tablespace: %v", err)
		}
	})
	db = pg.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLESPACE "+ts+" LOCATION '"+vol+"'"); err != nil {
		t.Fatal(err)
	}
	made = true
	rs := startReplicas(t, db+"&default_tablespace="+ts, 1)
	dumpOnFailure(t, rs.servers[0])
	var onVol int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablespace = $1`, ts).Scan(&onVol); err != nil || onVol < 10 {
		t.Fatalf("%d tables in the tablespace on the volume (%v), want the server's", onVol, err)
	}

	admin := fleetsim.Admin{URL: rs.servers[0].url, Token: rs.servers[0].admin}
	tok, err := admin.EnrollToken(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	base, info := simBase(t)
	sim, err := fleetsim.New(fleetsim.Options{Servers: rs.urls(), Devices: 8, Base: base, Variants: 8, Info: info, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Enroll(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if res, err := sim.Report(ctx); err != nil || res.OK != 8 {
		t.Fatalf("reports before the fill: %d, %v", res.OK, err)
	}
	filler := filepath.Join(vol, "filler")
	t.Logf("filled the tablespace's volume with %d bytes", fill(t, filler))

	// Every device changes every package: eight new sets of 179 rows.
	for r := range 10 {
		sim.Transact(r)
	}
	res, err := sim.Report(ctx)
	t.Logf("with the volume full: %d of 8 acknowledged; %v", res.OK, err)
	if err == nil || !strings.Contains(err.Error(), "507") || !strings.Contains(err.Error(), "storage is full") {
		t.Errorf("reports on a full volume: %d acknowledged, err %v; want refusals with 507 naming the full storage", res.OK, err)
	}
	if _, err := admin.CVE(ctx, "CVE-2023-2650", 10); err != nil && !strings.Contains(err.Error(), "404") {
		t.Errorf("the server does not answer a read on a full volume: %v", err)
	}
	if rs.servers[0].cmd.ProcessState != nil {
		t.Fatal("the server exited on a full volume")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	if res, err := sim.Report(ctx); err != nil || res.OK != 8 {
		t.Fatalf("reports once space returned: %d of 8, %v", res.OK, err)
	}
	t.Logf("space back: every device's report acknowledged within %v", time.Since(freed).Round(time.Millisecond))
	missing := 0
	for _, d := range sim.Devices() {
		for _, id := range d.Acked() {
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM reports WHERE device_id = $1 AND id = $2`, d.ID, id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d acknowledged reports are not in PostgreSQL", missing)
	}
}
