package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	fx "github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// What an outsider on the same network can try against the real
// rpmfleet-server before it has any credential: hold MQTT sockets open
// without logging in, drip a CONNECT or an HTTP body a byte at a time, run
// the process out of file descriptors, enrol with names made to trick an
// admin's terminal. Each attack runs against the real binary; a real device
// (a paho client logging in as the agent does, or the real CLI) must still
// get through.

// serverConfig writes a server configuration file and returns the flags
// that load it.
func serverConfig(t *testing.T, toml string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "server.toml")
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", path}
}

// dialRaw opens a TCP connection that sends nothing.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closed c before deadline.
func closedByServer(c net.Conn, deadline time.Time) bool {
	c.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, c)
	ne, ok := err.(net.Error)
	return !(ok && ne.Timeout())
}

func TestMQTTHeldConnectionsClosedAndDevicesStillLogIn(t *testing.T) {
	const loginTimeout = time.Second
	srv, mqttAddr := startPushServer(t, filepath.Join(t.TempDir(), "data"), serverConfig(t, "[mqtt]\nlogin_timeout = \"1s\"\n")...)
	dev := enrollDevice(t, srv, "pi-held")

	var socks []net.Conn
	for range 50 {
		socks = append(socks, dialRaw(t, mqttAddr))
	}
	// Five send a CONNECT header announcing 100 bytes and drip them, one
	// every 100 ms: 10 s for the packet.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for range 5 {
		c := dialRaw(t, mqttAddr)
		socks = append(socks, c)
		wg.Go(func() {
			if _, err := c.Write([]byte{0x10, 100}); err != nil {
				return
			}
			for range 100 {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := c.Write([]byte{0}); err != nil {
					return
				}
			}
		})
	}
	// A real device logs in while they are held.
	m, err := dialMQTT(t, mqttAddr, dev.DeviceID, dev.DeviceID, dev.Credential)
	if err != nil {
		t.Fatalf("the device could not log in while 55 connections were held: %v", err)
	}
	giveUp := time.Now().Add(loginTimeout + 10*time.Second)
	for i, c := range socks {
		if !closedByServer(c, giveUp) {
			t.Fatalf("held connection %d still open 10 s after the 1 s login deadline", i)
		}
	}
	if !m.c.IsConnectionOpen() {
		t.Errorf("the logged-in device lost its connection with the held ones")
	}
	// A CONNECT announcing 200 KB (under the 256 KB packet limit) is
	// refused as its header arrives.
	big := dialRaw(t, mqttAddr)
	big.Write([]byte{0x10, 0xc0, 0x9a, 0x0c})
	if !closedByServer(big, time.Now().Add(loginTimeout/2)) {
		t.Errorf("a CONNECT announcing 200 KB was not refused at once")
	}
}

// setNoFile sets the soft file descriptor limit of the process pid, as
// prlimit(1) does, and returns the one it had; the hard limit stays, so
// the old soft limit can be set back without privilege.
func setNoFile(pid int, soft uint64) (uint64, error) {
	var old syscall.Rlimit
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE, 0, uintptr(unsafe.Pointer(&old)), 0, 0); e != 0 {
		return 0, e
	}
	lim := syscall.Rlimit{Cur: min(soft, old.Max), Max: old.Max}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		return 0, e
	}
	return old.Cur, nil
}

// TestMQTTAcceptSurvivesRunningOutOfFileDescriptors: the real server is
// brought to a few descriptors short of its limit, and sockets are opened
// to its broker until accept fails with EMFILE. mochi's own listener ended
// its accept loop there for good; the broker's backs off and goes on, so
// once the sockets go a device logs in again.
func TestMQTTAcceptSurvivesRunningOutOfFileDescriptors(t *testing.T) {
	// A long login deadline: what frees the descriptors is the attacker
	// leaving, not the deadline.
	srv, mqttAddr := startPushServer(t, filepath.Join(t.TempDir(), "data"), serverConfig(t, "[mqtt]\nlogin_timeout = \"60s\"\n")...)
	dumpOnFailure(t, srv)
	dev := enrollDevice(t, srv, "pi-fds")
	pid := srv.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	limit := uint64(len(fds) + 12)
	was, err := setNoFile(pid, limit)
	if err != nil {
		t.Fatalf("set the server's descriptor limit to %d: %v", limit, err)
	}
	t.Logf("the server holds %d descriptors; limit set to %d", len(fds), limit)

	var socks []net.Conn
	for range 60 {
		socks = append(socks, dialRaw(t, mqttAddr)) // the kernel's backlog takes what the server cannot
	}
	waitFor(t, 10*time.Second, "the broker to run out of descriptors", func() (bool, string) {
		return strings.Contains(srv.log.String(), "mqtt accept failed"), "no accept failure logged yet"
	})
	if !strings.Contains(srv.log.String(), "too many open files") {
		t.Errorf("the accept failure is not EMFILE:\n%s", srv.log)
	}
	for _, c := range socks {
		c.Close()
	}
	// The loop goes on: the held connections end, the backlog drains,
	// and a device logs in.
	waitFor(t, 20*time.Second, "the device to log in once the descriptors are free", func() (bool, string) {
		m, err := dialMQTT(t, mqttAddr, dev.DeviceID, dev.DeviceID, dev.Credential)
		if err != nil {
			return false, err.Error()
		}
		m.c.Disconnect(0)
		return true, ""
	})
	if code, raw := call(t, "GET", srv.url+protocol.PathSummary, srv.admin, nil, nil); code != 200 {
		t.Errorf("the API after the attack: %d %s", code, raw)
	}
	if _, err := setNoFile(pid, was); err != nil {
		t.Fatal(err)
	}
}

// dripHTTP sends a request's headers announcing 200 bytes of body, then a
// byte every 100 ms, and returns the status line the server answers (empty
// if it closed without one), how many body bytes went, and how long it
// took.
func dripHTTP(t *testing.T, base, path string) (string, int, time.Duration) {
	t.Helper()
	c := dialRaw(t, strings.TrimPrefix(base, "http://"))
	start := time.Now()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: fleet\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n", path)
	var mu sync.Mutex
	sent := 0
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for range 200 {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
			mu.Lock()
			sent++
			mu.Unlock()
		}
	}()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("POST %s: the server still reads a body dripped a byte every 100 ms after 30 s", path)
	}
	mu.Lock()
	defer mu.Unlock()
	return strings.TrimSpace(line), sent, time.Since(start)
}

func TestSlowBodiesCutOffLargeImportsServed(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "data"),
		serverConfig(t, "[http]\nbody_timeout = \"1s\"\n")...)
	// Enrolment needs no login: anyone who reaches the port can do this.
	status, sent, took := dripHTTP(t, srv.url, protocol.PathEnroll)
	if !strings.Contains(status, "408") || sent >= 200 {
		t.Errorf("dripped enrolment: %q after %d of 200 bytes in %v, want 408 before the body was in", status, sent, took)
	}
	t.Logf("dripped enrolment cut off after %d bytes in %v: %q", sent, took.Round(time.Millisecond), status)

	// The real AlmaLinux 9 OSV database (602 KiB compressed) imports
	// through the same limit: a large body keeps the minimum rate. (The
	// write timeout lifted while an import works is shown by the API's
	// TestSteadyImportOutlastsTheSmallLimits.)
	start := time.Now()
	out := must(t, adminEnv(srv), "rpmfleet", "import", fx.Path(t, "almalinux-osv/almalinux9.jsonl.gz"))
	if !strings.Contains(out.stdout, "imported ") || strings.Contains(out.stdout, "imported 0 ") {
		t.Errorf("rpmfleet import: %s%s", out.stdout, out.stderr)
	}
	t.Logf("import of almalinux9.jsonl.gz with a 1 s body limit: %v, %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out.stdout))
}

// TestNastyNamesRefusedAndStoredOnesEscaped: names made to trick a terminal
// are refused by the agent before it sends its token and by the server at
// enrolment; devices an older server stored with such names and info are
// listed by the real CLI with every such byte escaped.
func TestNastyNamesRefusedAndStoredOnesEscaped(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, data)
	var tok protocol.EnrollTokenCreateResponse
	if code, raw := call(t, "POST", srv.url+protocol.PathEnrollTokens, srv.admin, protocol.EnrollTokenCreateRequest{Uses: 10}, &tok); code != 200 {
		t.Fatalf("enrolment token: %d %s", code, raw)
	}
	nasty := []struct{ name, value string }{
		{"ANSI clear screen", "pi\x1b[2J"},
		{"newline", "pi\nforged"},
		{"right-to-left override", "pi\u202egnp.exe"},
		{"64 KiB", strings.Repeat("p", 64<<10)},
		{"NUL", "pi\x00"},
		{"invalid UTF-8", "pi\xff"},
	}
	for _, n := range nasty {
		t.Run(n.name, func(t *testing.T) {
			if n.name != "NUL" { // an argument cannot hold a NUL
				r := run(t, nil, "rpmfleet-agent", "enroll", "--server", srv.url, "--token", tok.Token, "--name", n.value, "--state-dir", t.TempDir())
				if r.code == 0 || !strings.Contains(r.stderr, "--name") || strings.ContainsAny(r.stderr, "\x1b\u202e") {
					t.Errorf("rpmfleet-agent enroll --name %.40q: exit %d, stderr %.300q; want a refusal naming --name, escaped", n.value, r.code, r.stderr)
				}
			}
			code, raw := call(t, "POST", srv.url+protocol.PathEnroll, "", protocol.EnrollRequest{Token: tok.Token, Name: n.value}, nil)
			if n.name == "64 KiB" {
				if code != 413 {
					t.Errorf("a 64 KiB name: %d, want 413", code)
				}
				return
			}
			if e := apiError(t, raw); code != 400 || e.Field != "name" || strings.ContainsAny(e.Error, "\x1b\n\u202e\x00") {
				t.Errorf("enrol %q: %d %q (field %q), want 400 naming name, the value escaped", n.value, code, e.Error, e.Field)
			}
		})
	}
	var ts []protocol.EnrollTokenInfo
	call(t, "GET", srv.url+protocol.PathEnrollTokens, srv.admin, nil, &ts)
	if len(ts) != 1 || ts[0].UsesLeft != 10 {
		t.Errorf("the refusals spent token uses: %+v", ts)
	}

	// What an older server stored, written straight to its database.
	srv.stop(t)
	st, err := sqlite.Open(t.Context(), filepath.Join(data, "rpmfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := st.CreateEnrollToken(t.Context(), store.EnrollToken{ID: "old", Hash: store.HashSecret("old"), Expires: now.Add(time.Hour), UsesLeft: 5, Created: now}); err != nil {
		t.Fatal(err)
	}
	for i, n := range []string{"pi\x1b[2J\x1b[H", "pi\nforged-row  almalinux 9.2", "pi\u202egnp.exe"} {
		_, err := st.Enroll(t.Context(), store.HashSecret("old"), store.NewDevice{ID: fmt.Sprint("old-", i), Name: n,
			CredentialHash: store.HashSecret(n), Enrolled: now, Info: protocol.DeviceInfo{OSID: "almalinux\x1b]0;owned\x07", OSVersionID: "9.2", Kernel: "\u202e6.1"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	srv = startServer(t, data)
	for _, args := range [][]string{{"devices"}, {"devices", "--json"}, {"device", "pi\u202egnp.exe"}} {
		out := must(t, adminEnv(srv), "rpmfleet", args...).stdout
		if i := strings.IndexAny(out, "\x1b\u202e\x07"); i >= 0 {
			t.Errorf("rpmfleet %q printed a raw control or format character at byte %d:\n%s", args, i, out)
		}
		if args[len(args)-1] == "--json" {
			var ds []protocol.DeviceSummary
			if err := json.Unmarshal([]byte(out), &ds); err != nil || len(ds) != 3 {
				t.Errorf("rpmfleet devices --json: %v, %d devices", err, len(ds))
			}
		}
	}
	table := must(t, adminEnv(srv), "rpmfleet", "devices").stdout
	for _, want := range []string{`pi\x1b[2J\x1b[H`, `pi\x0aforged-row`, `pi\u202egnp.exe`, `almalinux\x1b]0;owned\x07`} {
		if !strings.Contains(table, want) {
			t.Errorf("rpmfleet devices does not show %s:\n%s", want, table)
		}
	}
	if rows := strings.Count(strings.TrimSpace(table), "\n"); rows != 3 {
		t.Errorf("rpmfleet devices printed %d rows under its header, want 3:\n%s", rows, table)
	}
}

// TestDataFolderModesUnderUmask0: the real server started under umask 0
// in a data folder that exists with mode 0777 leaves the folder 0700 and
// every file 0600, the database's -wal and -shm and the TLS files
// included, while it runs and after it stopped.
func TestDataFolderModesUnderUmask0(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	old := syscall.Umask(0)
	if err := os.Mkdir(data, 0o777); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(data, "from-an-older-server"), []byte("x"), 0o666)
	srv := startServer(t, data, "--tls", "auto")
	syscall.Umask(old)
	// The first start wrote the admin token to the database: its -wal
	// and -shm exist.
	check := func(when string, want ...string) {
		t.Helper()
		seen := map[string]bool{}
		err := filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(data, path)
			seen[rel] = true
			if wantMode := fs.FileMode(0o600); d.IsDir() && info.Mode().Perm() != 0o700 || !d.IsDir() && info.Mode().Perm() != wantMode {
				t.Errorf("%s: %s is %#o", when, rel, info.Mode().Perm())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !seen[w] {
				t.Errorf("%s: %s missing, so unchecked", when, w)
			}
		}
	}
	check("while it runs", "rpmfleet.db", "rpmfleet.db-wal", "rpmfleet.db-shm", "notice.key", "admin.token",
		"tls/ca.key", "tls/ca.crt", "tls/server.key", "tls/server.crt", "tmp", "from-an-older-server")
	srv.stop(t)
	check("after it stopped", "rpmfleet.db", "notice.key", "admin.token")
}
