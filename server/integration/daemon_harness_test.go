package integration

// The daemon tests' harness: a signed repository holding a security fix,
// device roots with the old version installed for real by rpm, and
// rpmfleet-agent run processes, each enrolled with the server under test and
// started on its own agent.toml. Everything the tests wait for is asked of
// the real thing (the server's CLI, rpm -q, the agent's log) until a
// deadline; nothing sleeps and hopes.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// The advisory of the daemon tests: demo-lib 1.0-1.el9 is installed on
// every device, 1.1-1.el9 fixes CVE-2026-1001.
const (
	fixAdvisory = "RFSA-2026:1001"
	fixCVE      = "CVE-2026-1001"
	oldLib      = "1.0-1.el9"
	newLib      = "1.1-1.el9"
)

// rpmArch names this machine's architecture as rpm does; the device roots
// and their packages use it, so rpm installs them without --ignorearch and
// the agent reports the arch the packages carry.
func rpmArch(t testing.TB) string {
	t.Helper()
	a, ok := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	if !ok {
		t.Fatalf("no rpm arch known for GOARCH %s", runtime.GOARCH)
	}
	return a
}

// fleetRepo is a signed repository served over loopback HTTP: demo-lib's
// old version and its fix, demo-tool (in no advisory, for manual installs),
// and an updateinfo.xml naming the fix as fixAdvisory.
type fleetRepo struct {
	dir string
	srv *rpmtest.Server
	// key is the pinned RPM-GPG-KEY file the packages are signed with.
	key string
	// rpms maps "name-version" ("demo-lib-1.0") to the signed rpm file.
	rpms map[string]string
}

func (r *fleetRepo) url() string { return r.srv.URL + "/" }

// The daemon tests' packages, built and signed once per test binary: each
// test makes its own repository of them.
var (
	signedOnce sync.Once
	signed     struct {
		paths []string // as fleetPackages
		key   string   // the public key file
		err   error
	}
)

// fleetPackages are demo-lib's old version and its fix, and demo-tool's two
// versions.
func fleetPackages(arch string) []rpmtest.Package {
	return []rpmtest.Package{
		{Name: "demo-lib", Version: "1.0", Release: "1.el9", Arch: arch, Files: map[string]string{"/usr/lib/demo/lib.txt": "demo-lib 1.0\n"}},
		{Name: "demo-lib", Version: "1.1", Release: "1.el9", Arch: arch, Files: map[string]string{"/usr/lib/demo/lib.txt": "demo-lib 1.1\n"}},
		{Name: "demo-tool", Version: "1.0", Release: "1.el9", Arch: arch, Files: map[string]string{"/usr/bin/demo-tool": "demo-tool 1.0\n"}},
		{Name: "demo-tool", Version: "2.0", Release: "1.el9", Arch: arch, Files: map[string]string{"/usr/bin/demo-tool": "demo-tool 2.0\n"}},
	}
}

// signedPackages builds fleetPackages with rpmbuild (cached across runs by
// internal/rpmtest) and signs them with rpmsign, once, into binDir.
func signedPackages(t *testing.T) ([]string, string) {
	t.Helper()
	signedOnce.Do(func() {
		dir := filepath.Join(binDir, "daemon-rpms")
		paths, err := rpmtest.Build(dir, fleetPackages(rpmArch(t))...)
		if err != nil {
			signed.err = fmt.Errorf("build rpms (run make deps): %w", err)
			return
		}
		key := rpmtest.NewKey(t, rpmtest.KeyRSA4096, "rpmfleet-daemon-it")
		if err = rpmtest.Sign(key, paths...); err != nil {
			// gpg-agent on a busy machine now and then drops a
			// connection ("keydb_search failed: Connection reset by
			// peer"); that is gpg's weather, not rpmfleet's: try once
			// more, then fail.
			t.Logf("rpmsign failed once, trying again: %v", err)
			err = rpmtest.Sign(key, paths...)
		}
		if err != nil {
			signed.err = err
			return
		}
		// The key's GNUPGHOME goes when this test ends; keep the public
		// key beside the packages.
		pub := filepath.Join(dir, filepath.Base(key.PublicKeyFile))
		b, err := os.ReadFile(key.PublicKeyFile)
		if err == nil {
			err = os.WriteFile(pub, b, 0o644)
		}
		signed.paths, signed.key, signed.err = paths, pub, err
	})
	if signed.err != nil {
		t.Fatal(signed.err)
	}
	return signed.paths, signed.key
}

// newFleetRepo makes a repository of the signed packages with createrepo_c
// and modifyrepo_c, and serves it over loopback HTTP.
func newFleetRepo(t *testing.T) *fleetRepo { return makeFleetRepo(t, false) }

// makeFleetRepo is newFleetRepo's repository; with rebootSuggested, the
// fix's advisory suggests a reboot (newRebootRepo).
func makeFleetRepo(t *testing.T, rebootSuggested bool) *fleetRepo {
	t.Helper()
	for _, bin := range []string{"rpm", "rpmbuild", "rpmsign", "createrepo_c", "modifyrepo_c", "gpg"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: run make deps", bin)
		}
	}
	arch := rpmArch(t)
	pkgs := fleetPackages(arch)
	paths, key := signedPackages(t)
	dir := t.TempDir()
	r := &fleetRepo{dir: filepath.Join(dir, "repo"), key: key, rpms: map[string]string{}}
	for i, p := range pkgs {
		r.rpms[p.Name+"-"+p.Version] = paths[i]
	}
	adv := &advisory.Advisory{
		ID: fixAdvisory, Type: advisory.Security, Severity: advisory.Important, RebootSuggested: rebootSuggested,
		Title:  "demo-lib security update",
		Issued: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), CVEs: []string{fixCVE},
		// updateinfo.xml carries CVEs as references; the writer writes
		// only References.
		References: []advisory.Reference{{Type: "cve", ID: fixCVE, URL: "https://www.cve.org/CVERecord?id=" + fixCVE, Title: fixCVE}},
		Packages:   []advisory.Package{{Name: "demo-lib", EVR: rpmver.MustParseEVR(newLib), Arch: arch, Filename: pkgs[1].FileName()}},
	}
	if rebootSuggested {
		adv.Title += " (reboot suggested)"
	}
	var ui bytes.Buffer
	w := updateinfo.NewWriter(&ui)
	if err := w.Write(adv); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rpmtest.NewRepo(r.dir, paths, ui.Bytes()); err != nil {
		t.Fatal(err)
	}
	r.srv = rpmtest.Serve(t, r.dir)
	return r
}

// deviceRoot makes a device root (AlmaLinux 9.2's os-release) with demo-lib
// 1.0 installed for real by rpm: files written, signature not needed.
func (r *fleetRepo) deviceRoot(t *testing.T) string {
	t.Helper()
	osr, err := os.ReadFile(filepath.Join(fixtures(t), "os-release", "almalinux-9.2-host.os-release"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := rpmtest.NewDevRoot(root, osr, nil); err != nil {
		t.Fatalf("make device root (run make deps if rpm is missing): %v", err)
	}
	rpmIn(t, root, "-i", r.rpms["demo-lib-1.0"])
	return root
}

// rpmIn runs rpm on a device root, as an admin on the device would.
func rpmIn(t *testing.T, root string, args ...string) {
	t.Helper()
	full := append([]string{"--root", root, "--dbpath", rpmtest.DBPath, "--nodeps", "--noscripts", "--nosignature"}, args...)
	cmd := exec.Command("rpm", full...)
	cmd.Env = append(os.Environ(), "HOME=/root")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpm %s: %v\n%s", strings.Join(full, " "), err, out)
	}
}

// installed is the version-release of name in root, "" when it is not
// installed.
func installed(t *testing.T, root, name string) string {
	t.Helper()
	cmd := exec.Command("rpm", "--root", root, "--dbpath", rpmtest.DBPath, "-q", "--qf", "%{VERSION}-%{RELEASE}\n", name)
	cmd.Env = append(os.Environ(), "HOME=/root")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 1 {
			return "" // not installed
		}
		t.Fatalf("rpm -q %s in %s: %v", name, root, err)
	}
	return strings.TrimSpace(string(out))
}

// agentConfig is what a test puts in an agent.toml; the harness fills in
// server, state_dir, root and the repository.
type agentConfig struct {
	// Mode is the policy mode: notify, download or apply.
	Mode string
	// Window is "open" for a maintenance window open now, "closed" for one
	// that opens in three hours, "" for none.
	Window string
	// Poll is [poll] interval; "1h" when empty, so that only a push can
	// explain an update made within seconds.
	Poll string
	// Broker, Username and PasswordFile are [mqtt]; empty leaves the broker
	// to what the agent learnt at enrolment.
	Broker, Username, PasswordFile string
	// HealthChecks are [policy] health_checks.
	HealthChecks []string
	// Servers are more replicas' URLs (servers), asked when the first
	// fails.
	Servers []string
	// Raw replaces the whole file when set (a broken config).
	Raw string
}

// toml renders the configuration for the agent a.
func (c agentConfig) toml(a *agent) string {
	if c.Raw != "" {
		return c.Raw
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# agent %s, written by the daemon tests\n", a.name)
	fmt.Fprintf(&b, "server = %q\nstate_dir = %q\nroot = %q\n", a.server, a.state, a.root)
	if len(c.Servers) > 0 {
		q := make([]string, len(c.Servers))
		for i, s := range c.Servers {
			q[i] = strconv.Quote(s)
		}
		fmt.Fprintf(&b, "servers = [%s]\n", strings.Join(q, ", "))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "[[repo]]\nid = \"demo\"\nbaseurl = %q\ngpgkey = [%q]\n\n", a.repo.url(), a.repo.key)
	mode := c.Mode
	if mode == "" {
		mode = "notify"
	}
	fmt.Fprintf(&b, "[policy]\nmode = %q\nsecurity_only = true\nmin_severity = \"moderate\"\nexclude = [\"kernel*\"]\n", mode)
	if len(c.HealthChecks) > 0 {
		q := make([]string, len(c.HealthChecks))
		for i, h := range c.HealthChecks {
			q[i] = strconv.Quote(h)
		}
		fmt.Fprintf(&b, "health_checks = [%s]\n", strings.Join(q, ", "))
	}
	now := time.Now().UTC()
	switch c.Window {
	case "open":
		// Opened an hour ago, every day, for three hours.
		start := now.Add(-time.Hour)
		fmt.Fprintf(&b, "\n[[policy.window]]\ndays = [\"mon-sun\"]\nstart = \"%02d:%02d\"\nlength = \"3h\"\ntimezone = \"UTC\"\n", start.Hour(), start.Minute())
	case "closed":
		// Opens in three hours, for one hour: closed now whatever the day.
		start := now.Add(3 * time.Hour)
		fmt.Fprintf(&b, "\n[[policy.window]]\ndays = [\"mon-sun\"]\nstart = \"%02d:%02d\"\nlength = \"1h\"\ntimezone = \"UTC\"\n", start.Hour(), start.Minute())
	case "":
	default:
		panic("agentConfig.Window: " + c.Window)
	}
	poll := c.Poll
	if poll == "" {
		poll = "1h"
	}
	iv, err := time.ParseDuration(poll)
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(&b, "\n[poll]\ninterval = %q\njitter = %q\n", poll, (iv / 4).String())
	if c.Broker != "" || c.Username != "" || c.PasswordFile != "" {
		b.WriteString("\n[mqtt]\n")
		if c.Broker != "" {
			fmt.Fprintf(&b, "broker = %q\n", c.Broker)
		}
		if c.Username != "" {
			fmt.Fprintf(&b, "username = %q\n", c.Username)
		}
		if c.PasswordFile != "" {
			fmt.Fprintf(&b, "password_file = %q\n", c.PasswordFile)
		}
	}
	return b.String()
}

// agent is one rpmfleet-agent run process and its device.
type agent struct {
	name, root, state, cfgPath string
	server                     string
	repo                       *fleetRepo
	// id and credential are what enrolment gave the device.
	id, credential string

	log *syncBuffer // every run's stderr and stdout, in order
	// env is added to daemonEnv for this agent's processes (a later
	// entry wins over an earlier one with the same key).
	env []string

	mu     sync.Mutex // guards cmd and done
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	runs   int
	waitEr error
}

// syncBuffer is a bytes.Buffer written by a process's output copier and
// read by the test.
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

// Len is a mark: logAfter(mark) is what was logged since.
func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// enrollAgent enrols a device named name, whose root is root, with srv: an
// enrolment token from the admin CLI, then rpmfleet-agent enroll.
func enrollAgent(t *testing.T, srv *server, repo *fleetRepo, name, root string) *agent {
	t.Helper()
	tok := strings.TrimSpace(must(t, adminEnv(srv), "rpmfleet", "enroll-token", "create").stdout)
	dir := t.TempDir()
	a := &agent{name: name, root: root, state: filepath.Join(dir, "state"), cfgPath: filepath.Join(dir, "agent.toml"),
		server: srv.url, repo: repo, log: &syncBuffer{}}
	args := []string{"enroll", "--server", srv.url, "--token", tok, "--name", name, "--state-dir", a.state, "--root", root}
	if strings.HasPrefix(srv.url, "https://") {
		args = append(args, "--ca-fingerprint", caFingerprint(t, srv))
	}
	must(t, nil, "rpmfleet-agent", args...)
	b, err := os.ReadFile(filepath.Join(a.state, "credential.json"))
	if err != nil {
		t.Fatalf("enrolment left no credential: %v", err)
	}
	var cred struct {
		DeviceID   string `json:"device_id"`
		Credential string `json:"credential"`
	}
	if err := json.Unmarshal(b, &cred); err != nil || cred.DeviceID == "" || cred.Credential == "" {
		t.Fatalf("credential.json %s: %v", b, err)
	}
	a.id, a.credential = cred.DeviceID, cred.Credential
	return a
}

// startAgent enrols a device and starts rpmfleet-agent run on it.
func startAgent(t *testing.T, srv *server, repo *fleetRepo, name, root string, cfg agentConfig) *agent {
	t.Helper()
	a := enrollAgent(t, srv, repo, name, root)
	a.writeConfig(t, cfg)
	a.start(t)
	return a
}

// writeConfig writes the agent's configuration the way an admin's tool
// should: a temporary file renamed into place, so the agent never reads
// half a file. The file is 0644 and its folder not group-writable, as
// config.Load demands.
func (a *agent) writeConfig(t *testing.T, cfg agentConfig) {
	t.Helper()
	tmp := a.cfgPath + ".new"
	if err := os.WriteFile(tmp, []byte(cfg.toml(a)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := os.Rename(tmp, a.cfgPath); err != nil {
		t.Fatal(err)
	}
}

// daemonEnv is the environment of every agent process: a clean one, with
// the test seams rpmfleet-agent run documents (agent/internal/cli/run.go).
func daemonEnv() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=/root",
		// A manual rpm -U is reported 300 ms after the database is quiet.
		"RPMFLEET_DEBOUNCE=300ms",
		// A failed plan fetch is retried within a second at first.
		"RPMFLEET_POLL_RETRY_MIN=1s",
		// Queued reports are retried at least every 2 s, so a returning
		// server gets them within seconds even when no poll is due.
		"RPMFLEET_REPORT_RETRY_MAX=2s",
		// A FAKE reboot and wall: the policy never reboots here
		// (reboot = "never" by default), and must not reboot this machine
		// if that ever changed.
		"RPMFLEET_REBOOT_COMMAND=true",
		"RPMFLEET_WALL_COMMAND=true",
		// Tests wait for per-advisory lines ("advisory not applied
		// now"), which are at debug level.
		"RPMFLEET_LOG=debug",
	}
}

// start runs rpmfleet-agent run --config on the agent's file. Cleanup stops
// it with SIGTERM and checks it exits 0.
func (a *agent) start(t *testing.T) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		t.Fatalf("agent %s is already running", a.name)
	}
	a.runs++
	fmt.Fprintf(a.log, "=== run %d of rpmfleet-agent run (%s) ===\n", a.runs, a.name)
	cmd := exec.Command(filepath.Join(binDir, "rpmfleet-agent"), "run", "--config", a.cfgPath)
	cmd.Env = append(daemonEnv(), a.env...)
	cmd.Stdout, cmd.Stderr = a.log, a.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rpmfleet-agent run: %v", err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		a.mu.Lock()
		a.waitEr = err
		a.mu.Unlock()
		close(done)
	}()
	a.cmd, a.done = cmd, done
	if a.runs == 1 {
		t.Cleanup(func() {
			a.stop(t)
			if t.Failed() {
				t.Logf("log of agent %s:\n%s", a.name, a.log)
			}
		})
	}
}

// running reports whether the agent's process is alive.
func (a *agent) running() bool {
	a.mu.Lock()
	done := a.done
	a.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// stop ends the agent with SIGTERM, as systemd does, and checks that it
// exits 0 within 20 s: a shutdown is not an error. Stopping a stopped agent
// does nothing.
func (a *agent) stop(t *testing.T) {
	t.Helper()
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		a.mu.Lock()
		a.cmd = nil
		err := a.waitEr
		a.mu.Unlock()
		t.Errorf("agent %s had exited before it was stopped: %v", a.name, err)
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	a.waitExit(t, 20*time.Second)
}

// signal sends sig to the running agent and returns at once.
func (a *agent) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		t.Fatalf("agent %s is not running", a.name)
	}
	a.cmd.Process.Signal(sig)
}

// waitExit waits for an agent that was sent SIGTERM to exit, and checks it
// exited 0: a shutdown is not an error.
func (a *agent) waitExit(t *testing.T, timeout time.Duration) {
	t.Helper()
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		t.Fatalf("agent %s is not running", a.name)
	}
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Errorf("agent %s ignored SIGTERM for %v", a.name, timeout)
		return
	}
	a.mu.Lock()
	err := a.waitEr
	a.mu.Unlock()
	if err != nil {
		t.Errorf("agent %s did not exit cleanly on SIGTERM: %v", a.name, err)
	}
}

// kill9 ends the agent with SIGKILL: no shutdown, no flush, as a power cut
// or the OOM killer would.
func (a *agent) kill9(t *testing.T) {
	t.Helper()
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		t.Fatalf("agent %s is not running", a.name)
	}
	cmd.Process.Kill()
	<-done
	fmt.Fprintf(a.log, "=== killed with SIGKILL ===\n")
}

// logSince is what the agent logged since mark (a.log.Len()).
func (a *agent) logSince(mark int) string {
	s := a.log.String()
	if mark > len(s) {
		return ""
	}
	return s[mark:]
}

// waitLog waits until the agent, since mark, logged a line holding every
// one of subs (case-insensitive), and returns that line.
func (a *agent) waitLog(t *testing.T, mark int, timeout time.Duration, subs ...string) string {
	t.Helper()
	var line string
	waitFor(t, timeout, fmt.Sprintf("agent %s to log a line with %q", a.name, subs), func() (bool, string) {
		for _, l := range strings.Split(a.logSince(mark), "\n") {
			low := strings.ToLower(l)
			if !slices.ContainsFunc(subs, func(s string) bool { return !strings.Contains(low, strings.ToLower(s)) }) {
				line = l
				return true, ""
			}
		}
		if !a.running() {
			return false, "the agent has exited"
		}
		return false, "not yet"
	})
	return line
}

// waitFor polls cond every 100 ms until it holds or timeout passes, then
// fails the test with what cond last said.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (ok bool, detail string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %s", timeout, what, detail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitInstalled waits until rpm says name is at version-release want in
// the agent's root.
func (a *agent) waitInstalled(t *testing.T, timeout time.Duration, name, want string) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, timeout, fmt.Sprintf("%s %s in %s's root", name, want, a.name), func() (bool, string) {
		got := installed(t, a.root, name)
		return got == want, fmt.Sprintf("rpm -q says %q", got)
	})
	return time.Since(start)
}

// adminEnv is the admin CLI's environment for srv.
func adminEnv(srv *server) []string {
	env := []string{"RPMFLEET_SERVER=" + srv.url, "RPMFLEET_TOKEN=" + srv.admin}
	if strings.HasPrefix(srv.url, "https://") {
		// --tls auto: the CLI trusts the server's own CA.
		env = append(env, "RPMFLEET_CA="+filepath.Join(srv.data, "tls", "ca.crt"))
	}
	return env
}

// caFingerprint is the enrolment pin of a --tls auto server's CA.
func caFingerprint(t *testing.T, srv *server) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(srv.data, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s/tls/ca.crt holds no PEM block", srv.data)
	}
	sum := sha256.Sum256(block.Bytes)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// device asks the server, through the admin CLI, what it holds for a
// device.
func device(t *testing.T, srv *server, name string) protocol.Device {
	t.Helper()
	out := must(t, adminEnv(srv), "rpmfleet", "device", name, "--json").stdout
	var d protocol.Device
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("rpmfleet device %s --json printed %q: %v", name, out, err)
	}
	return d
}

// statusOf is the device's status for fixAdvisory on the server:
// not-affected when the device record does not list it.
func statusOf(d protocol.Device) protocol.Status {
	for _, a := range d.Advisories {
		if a.Advisory == fixAdvisory {
			return a.Status
		}
	}
	return protocol.StatusNotAffected
}

// waitDevice waits until the server's record of a device satisfies ok.
func waitDevice(t *testing.T, srv *server, name string, timeout time.Duration, what string, ok func(protocol.Device) bool) protocol.Device {
	t.Helper()
	var d protocol.Device
	waitFor(t, timeout, fmt.Sprintf("the server to show %s %s", name, what), func() (bool, string) {
		d = device(t, srv, name)
		b, _ := json.Marshal(d)
		return ok(d), string(b)
	})
	return d
}

// waitReported waits until the server holds a first inventory of the
// device: the daemon reports at start.
func waitReported(t *testing.T, srv *server, a *agent) {
	t.Helper()
	waitDevice(t, srv, a.name, 30*time.Second, "reported", func(d protocol.Device) bool {
		return !d.LastSeen.IsZero() && d.Packages > 0
	})
}

// exposure is who the server lists as exposed to and patched against a CVE.
func exposure(t *testing.T, srv *server, cveID string) (exposed, patched []string) {
	t.Helper()
	r := cve(t, adminEnv(srv), cveID)
	for _, e := range r.Exposed {
		exposed = append(exposed, e.Device)
	}
	for _, p := range r.Patched {
		patched = append(patched, p.Device)
	}
	slices.Sort(exposed)
	slices.Sort(patched)
	return slices.Compact(exposed), slices.Compact(patched)
}

// waitExposure waits until rpmfleet cve --json lists exactly these devices
// as exposed and as patched.
func waitExposure(t *testing.T, srv *server, cveID string, timeout time.Duration, wantExposed, wantPatched []string) {
	t.Helper()
	slices.Sort(wantExposed)
	slices.Sort(wantPatched)
	waitFor(t, timeout, fmt.Sprintf("rpmfleet cve %s to list exposed %v and patched %v", cveID, wantExposed, wantPatched), func() (bool, string) {
		e, p := exposure(t, srv, cveID)
		return slices.Equal(e, wantExposed) && slices.Equal(p, wantPatched), fmt.Sprintf("exposed %v, patched %v", e, p)
	})
}

// startPushServer starts rpmfleet-server with its embedded broker on a
// free loopback port and waits until the broker accepts connections.
func startPushServer(t *testing.T, data string, extra ...string) (*server, string) {
	t.Helper()
	mqttAddr := freeAddr(t)
	srv := startServer(t, data, append([]string{"--mqtt-listen", mqttAddr}, extra...)...)
	waitFor(t, 10*time.Second, "the embedded broker on "+mqttAddr, func() (bool, string) {
		c, err := net.DialTimeout("tcp", mqttAddr, time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	return srv, mqttAddr
}

// importFix imports fixAdvisory from the repository's URL, as an admin
// would: rpmfleet import URL.
func importFix(t *testing.T, srv *server, repo *fleetRepo) {
	t.Helper()
	out := must(t, adminEnv(srv), "rpmfleet", "import", repo.url())
	if !strings.Contains(out.stdout, "1 new or changed") {
		t.Fatalf("rpmfleet import %s: %s%s; want one new advisory", repo.url(), out.stdout, out.stderr)
	}
}

// queued lists the reports waiting in the agent's on-disk queue
// (STATE/reports), in queue order: their ids.
func (a *agent) queued(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(a.state, "reports", "[0-9]*-*.json"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files) // names start with a zero-padded sequence number
	var ids []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // delivered meanwhile
			}
			t.Fatal(err)
		}
		var rec struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &rec); err != nil || rec.ID == "" {
			t.Fatalf("queued report %s: %v", f, err)
		}
		ids = append(ids, rec.ID)
	}
	return ids
}

// dumpOnFailure logs the server's log when the test fails; it reads the
// log under no lock, once the test is over.
func dumpOnFailure(t *testing.T, srv *server) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.log)
		}
	})
}

// unreadTCP is how many bytes sockets on local port port hold that their
// process has not read: a request sent to a stopped server.
func unreadTCP(port int) (int, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	total := 0
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		_, hexPort, ok := strings.Cut(fs[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		_, rx, _ := strings.Cut(fs[4], ":")
		if n, err := strconv.ParseUint(rx, 16, 32); err == nil {
			total += int(n)
		}
	}
	return total, sc.Err()
}

func jsonDecode(s string, v any) error { return json.Unmarshal([]byte(s), v) }
