package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/client"
	"github.com/rpmfleet/rpmfleet/agent/internal/config"
	"github.com/rpmfleet/rpmfleet/agent/internal/rpmdb"
	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// The daemon's tests build a small world with the real tools: demo-lib
// 1.0-1 installed by rpm into a device root, its fix demo-lib 1.1-1 (and
// 1.0-1, the rollback set) in a repository made by createrepo_c with an
// updateinfo.xml naming advisory RFSA-2026:0001, both signed by rpmsign with
// a key the configuration pins. The fleet server is an httptest server that
// serves plans signed with pkg/notice and records the reports it gets: the
// real rpmfleet-server is exercised against the real agent binary by
// server/integration.

const testAdvisory = "RFSA-2026:0001"

const deviceID = "dev-0001"

var (
	libOld = rpmtest.Package{Name: "demo-lib", Version: "1.0", Release: "1", Arch: "x86_64", Files: map[string]string{"/usr/lib/demo/lib.txt": "v1.0\n"}}
	libNew = rpmtest.Package{Name: "demo-lib", Version: "1.1", Release: "1", Arch: "x86_64", Files: map[string]string{"/usr/lib/demo/lib.txt": "v1.1\n"}}
	// extra is what an admin installs by hand.
	extra = rpmtest.Package{Name: "demo-extra", Version: "3.0", Release: "1", Arch: "noarch", Files: map[string]string{"/etc/demo-extra.conf": "x\n"}}
)

// world is a device root, a repository, a fake fleet server and the keys.
type world struct {
	dir, root, repoDir, stateDir, cfgPath string
	repo                                  *rpmtest.Server
	key                                   *rpmtest.Key
	rpms                                  map[string]string // name-version to the signed file
	signer                                *notice.Signer
	pub                                   ed25519.PublicKey
	priv                                  ed25519.PrivateKey
	srv                                   *fleet
	// broker is the [mqtt] broker URL written into the configuration;
	// mqttExtra more lines of [mqtt].
	broker, mqttExtra string
	// poll is the [poll] section's body; interval 1h, jitter 1s when
	// empty.
	poll string
}

type worldOpts struct {
	rebootSuggested bool
	// repoHandler wraps the repository's handler (slow downloads).
	repoDelay time.Duration
}

func needTools(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"rpm", "rpmkeys", "rpmbuild", "rpmsign", "createrepo_c", "modifyrepo_c", "gpg"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: run make deps", bin)
		}
	}
}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	needTools(t)
	dir := t.TempDir()
	w := &world{dir: dir, root: filepath.Join(dir, "root"), repoDir: filepath.Join(dir, "repo"), stateDir: filepath.Join(dir, "state"),
		cfgPath: filepath.Join(dir, "agent.toml"), rpms: map[string]string{}}
	paths, err := rpmtest.Build(filepath.Join(dir, "rpms"), libOld, libNew, extra)
	if err != nil {
		t.Fatal(err)
	}
	w.key = rpmtest.NewKey(t, rpmtest.KeyEd25519, "rpmfleet-daemon")
	if err := rpmtest.Sign(w.key, paths...); err != nil {
		t.Fatal(err)
	}
	w.rpms["demo-lib-1.0"], w.rpms["demo-lib-1.1"], w.rpms["demo-extra-3.0"] = paths[0], paths[1], paths[2]
	if err := rpmtest.NewDevRoot(w.root, []byte("NAME=\"AlmaLinux\"\nID=\"almalinux\"\nVERSION_ID=\"9.4\"\n"), nil); err != nil {
		t.Fatal(err)
	}
	w.rpm(t, "-i", "--nodeps", "--noscripts", "--nosignature", "--ignorearch", paths[0])
	adv := &advisory.Advisory{
		ID: testAdvisory, Type: advisory.Security, Severity: advisory.Important, Title: "demo-lib security update",
		Issued: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), CVEs: []string{"CVE-2026-0001"}, RebootSuggested: o.rebootSuggested,
		Packages: []advisory.Package{{Name: "demo-lib", EVR: rpmver.MustParseEVR("1.1-1"), Arch: "x86_64", Filename: "demo-lib-1.1-1.x86_64.rpm"}},
	}
	var ui bytes.Buffer
	uw := updateinfo.NewWriter(&ui)
	if err := uw.Write(adv); err != nil {
		t.Fatal(err)
	}
	if err := uw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rpmtest.NewRepo(w.repoDir, paths[:2], ui.Bytes()); err != nil {
		t.Fatal(err)
	}
	if o.repoDelay > 0 {
		files := http.FileServer(http.Dir(w.repoDir))
		ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, ".rpm") {
				select {
				case <-time.After(o.repoDelay):
				case <-r.Context().Done():
					return
				}
			}
			files.ServeHTTP(rw, r)
		}))
		t.Cleanup(ts.Close)
		w.repo = &rpmtest.Server{URL: ts.URL}
	} else {
		w.repo = rpmtest.Serve(t, w.repoDir)
	}

	w.pub, w.priv, w.signer = newSigner(t)
	w.srv = newFleet(t, w.signer)
	if err := (client.State{Dir: w.stateDir}).SaveCredential(client.Credential{
		Server: w.srv.URL, DeviceID: deviceID, Name: "pi-test", Credential: "secret-credential", NoticeKey: w.pub,
	}); err != nil {
		t.Fatal(err)
	}
	return w
}

func newSigner(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey, *notice.Signer) {
	t.Helper()
	pub, priv, err := notice.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := notice.NewSigner(priv, notice.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv, s
}

// rpm runs the real rpm on the device root.
func (w *world) rpm(t *testing.T, args ...string) {
	t.Helper()
	args = append([]string{"--root", w.root, "--dbpath", rpmtest.DBPath}, args...)
	if out, err := exec.Command("rpm", args...).CombinedOutput(); err != nil {
		t.Fatalf("rpm %v: %v\n%s", args, err, out)
	}
}

// installed lists name-version-release of the root's packages. A read
// that meets rpm writing the database (a torn write-ahead log) is tried
// again.
func (w *world) installed(t *testing.T) []string {
	t.Helper()
	db, err := rpmdb.Find(w.root)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := rpmdb.Read(db)
	for try := 0; err != nil && try < 50; try++ {
		time.Sleep(100 * time.Millisecond)
		pkgs, err = rpmdb.Read(db)
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pkgs {
		out = append(out, p.Name+"-"+p.Version+"-"+p.Release)
	}
	slices.Sort(out)
	return out
}

// policyTOML is a [policy] section; window "open", "closed" or "".
func policyTOML(mode, window string, extra ...string) string {
	s := fmt.Sprintf("[policy]\nmode = %q\nsecurity_only = true\n%s\n", mode, strings.Join(extra, "\n"))
	switch window {
	case "open":
		s += "[[policy.window]]\ndays = [\"mon-sun\"]\nstart = \"00:00\"\nlength = \"24h\"\n"
	case "closed":
		// Two days from now, for an hour: not open now, whatever the hour.
		day := strings.ToLower(time.Now().AddDate(0, 0, 2).Weekday().String()[:3])
		s += fmt.Sprintf("[[policy.window]]\ndays = [%q]\nstart = \"12:00\"\nlength = \"1h\"\n", day)
	}
	return s
}

// writeConfig writes the agent's configuration with the given [policy]
// section and extra top-level text.
func (w *world) writeConfig(t *testing.T, policy string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "server = %q\nstate_dir = %q\nroot = %q\n\n", w.srv.URL, w.stateDir, w.root)
	fmt.Fprintf(&b, "[[repo]]\nid = \"demo\"\nbaseurl = %q\ngpgkey = [%q]\n\n", w.repo.URL, w.key.PublicKeyFile)
	b.WriteString(policy)
	poll := w.poll
	if poll == "" {
		poll = "interval = \"1h\"\njitter = \"1s\""
	}
	fmt.Fprintf(&b, "\n[poll]\n%s\n", poll)
	if w.broker != "" {
		fmt.Fprintf(&b, "\n[mqtt]\nbroker = %q\n%s\n", w.broker, w.mqttExtra)
	}
	tmp := w.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, w.cfgPath); err != nil {
		t.Fatal(err)
	}
}

// running is a daemon run by a test.
type running struct {
	cancel context.CancelFunc
	done   chan error
	log    *syncBuffer

	stopOnce sync.Once

	mu     sync.Mutex // guards status
	status protocol.DeviceState
	seen   int
}

func (r *running) Status() protocol.DeviceState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// start runs the daemon on the world's configuration.
func (w *world) start(t *testing.T, opts ...func(*Options)) *running {
	t.Helper()
	cfg, err := config.Load(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := client.State{Dir: w.stateDir}.LoadCredential()
	if err != nil && !errors.Is(err, client.ErrNotEnrolled) { // not enrolled: standalone
		t.Fatal(err)
	}
	r := &running{done: make(chan error, 1), log: new(syncBuffer)}
	o := Options{
		Config: cfg, ConfigPath: w.cfgPath, Credential: cred,
		Log:           slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Debounce:      200 * time.Millisecond,
		PollRetryMin:  200 * time.Millisecond,
		StatusRefresh: 50 * time.Millisecond,
		OnStatus: func(s protocol.DeviceState) {
			r.mu.Lock()
			r.status = s
			r.seen++
			r.mu.Unlock()
		},
	}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- Run(ctx, o) }()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("daemon log:\n%s", r.log.String())
		}
	})
	return r
}

// stop cancels the daemon and waits for Run to return.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.stopOnce.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return 30 s after its context ended")
		}
	})
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fleet is the fake fleet server: signed plans with ETags, and reports.
type fleet struct {
	URL    string
	signer *notice.Signer

	mu       sync.Mutex // guards the fields below
	plan     protocol.Plan
	signed   []byte
	etag     string
	planGets int
	reports  []protocol.Report
	down     bool
}

func newFleet(t *testing.T, s *notice.Signer) *fleet {
	f := &fleet{signer: s}
	f.setPlan(t, protocol.Plan{})
	ts := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(ts.Close)
	f.URL = ts.URL
	return f
}

// setPlan signs a new plan for the device.
func (f *fleet) setPlan(t *testing.T, p protocol.Plan) {
	t.Helper()
	msg, err := f.signer.Sign(notice.KindPlan, deviceID, p, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plan, f.signed = p, msg
	f.etag = fmt.Sprintf("\"%d\"", len(f.reports)+int(time.Now().UnixNano()%1e6))
}

func (f *fleet) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *fleet) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if r.Header.Get("Authorization") != "Bearer secret-credential" {
		http.Error(w, "no credential", http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case protocol.PathPlan:
		f.planGets++
		if r.Header.Get("If-None-Match") == f.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", f.etag)
		w.Write(f.signed)
	case protocol.PathReport:
		var rep protocol.Report
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp := protocol.ReportResponse{}
		for _, old := range f.reports {
			if old.ID == rep.ID {
				resp.Duplicate = true
			}
		}
		if !resp.Duplicate {
			f.reports = append(f.reports, rep)
		}
		json.NewEncoder(w).Encode(resp)
	default:
		http.NotFound(w, r)
	}
}

func (f *fleet) Reports() []protocol.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reports)
}

func (f *fleet) PlanGets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.planGets
}

// advisoryPlan is the plan naming the test advisory, with the fixed
// package's SHA-256 when sum is not empty.
func advisoryPlan(sum string) protocol.Plan {
	return protocol.Plan{Advisories: []protocol.PlanAdvisory{{
		ID: testAdvisory, Type: "security", Severity: "Important", Status: protocol.StatusAffected,
		Packages: []protocol.PlanPackage{{Name: "demo-lib", Arch: "x86_64", Installed: "1.0-1", Fixed: "1.1-1", SHA256: sum}},
	}}}
}

type syncBuffer struct {
	mu sync.Mutex
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
