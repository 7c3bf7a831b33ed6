package update

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/rpmcmd"
	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// faultyRPM is the real rpm (rpmcmd.Runner) with one fault put in, through
// Options.NewRPM. It is a fake only for what cannot be made to happen here
// on demand: a transaction cut half way (rpm killed, or a power cut, after
// it installed some packages) and rpmkeys --import refused (a read-only or
// locked database, which a test running as root cannot provoke). Everything
// else, and the rollback, is the real rpm on a real database.
type faultyRPM struct {
	RPM
	// halfWay makes Upgrade install only the first package, for real,
	// then fail as rpm would; with die it then ends the calling
	// goroutine instead, as the agent's death would: the journal stays in
	// Applying for the next run to resume.
	halfWay, die bool
	// importFails makes ImportKeys fail as rpmkeys does.
	importFails bool

	mu    sync.Mutex // guards calls
	calls []string
}

func (f *faultyRPM) called(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
}

func (f *faultyRPM) Upgrade(ctx context.Context, files ...string) (string, error) {
	f.called("upgrade")
	if !f.halfWay {
		return f.RPM.Upgrade(ctx, files...)
	}
	out, err := f.RPM.Upgrade(ctx, files[0])
	if err != nil {
		return out, err
	}
	if f.die {
		runtime.Goexit()
	}
	return out + "error: " + filepath.Base(files[1]) + ": install failed\n", errors.New("rpm -U: exit status 1")
}

func (f *faultyRPM) ImportKeys(ctx context.Context, keys ...string) (string, error) {
	f.called("import")
	if f.importFails {
		return "error: " + keys[0] + ": key 1 import failed.\n", errors.New("rpmkeys --import: exit status 1")
	}
	return f.RPM.ImportKeys(ctx, keys...)
}

// cycleRPMs are demo-a and demo-b, 1.0 and their fixes 1.1, built and
// signed once per test binary; key is the public key file.
var cycleRPMs = sync.OnceValues(func() (map[string]string, error) {
	arch, err := rpmtest.HostArch()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rpmfleet-update-cycle")
	if err != nil {
		return nil, err
	}
	var pkgs []rpmtest.Package
	for _, n := range []string{"demo-a", "demo-b"} {
		for _, v := range []string{"1.0", "1.1"} {
			pkgs = append(pkgs, rpmtest.Package{Name: n, Version: v, Release: "1.el9", Arch: arch,
				Files: map[string]string{"/usr/share/" + n + "/version": v + "\n"}})
		}
	}
	paths, err := rpmtest.Build(dir, pkgs...)
	if err != nil {
		return nil, err
	}
	key, cleanup, err := rpmtest.GenerateKey(rpmtest.KeyEd25519, "rpmfleet-update-cycle")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := rpmtest.Sign(key, paths...); err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(key.PublicKeyFile)
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(dir, "RPM-GPG-KEY-test")
	if err := os.WriteFile(keyFile, pub, 0o644); err != nil {
		return nil, err
	}
	return map[string]string{"arch": arch, "key": keyFile,
		"demo-a-1.0": paths[0], "demo-a-1.1": paths[1], "demo-b-1.0": paths[2], "demo-b-1.1": paths[3]}, nil
})

// cycleWorld is a device root with demo-a and demo-b 1.0 installed by the
// real rpm, and a repository of both versions whose updateinfo names the
// fixes as TEST-1.
type cycleWorld struct {
	root, repo, state, key string
}

// newAlmaRoot makes root an AlmaLinux 9.2 device root with no packages
// (rpmtest.NewDevRoot).
func newAlmaRoot(t *testing.T, root string) {
	t.Helper()
	osr, err := os.ReadFile(fixtures.Path(t, "os-release/almalinux-9.2-host.os-release"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rpmtest.NewDevRoot(root, osr, nil); err != nil {
		t.Fatal(err)
	}
}

func newCycleWorld(t *testing.T) *cycleWorld {
	t.Helper()
	rpms, err := cycleRPMs()
	if err != nil {
		t.Fatalf("build rpms (run make deps): %v", err)
	}
	w := &cycleWorld{root: t.TempDir(), repo: filepath.Join(t.TempDir(), "repo"), state: t.TempDir(), key: rpms["key"]}
	newAlmaRoot(t, w.root)
	w.rpm(t, "-i", "--nodeps", "--noscripts", "--nosignature", rpms["demo-a-1.0"], rpms["demo-b-1.0"])
	arch := rpms["arch"]
	var ui bytes.Buffer
	uw := updateinfo.NewWriter(&ui)
	if err := uw.Write(&advisory.Advisory{ID: "TEST-1", Type: advisory.Security, Severity: advisory.Important, Title: "demo fixes",
		Issued: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
		Packages: []advisory.Package{
			{Name: "demo-a", EVR: rpmver.MustParseEVR("1.1-1.el9"), Arch: arch},
			{Name: "demo-b", EVR: rpmver.MustParseEVR("1.1-1.el9"), Arch: arch},
		}}); err != nil {
		t.Fatal(err)
	}
	if err := uw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rpmtest.NewRepo(w.repo, []string{rpms["demo-a-1.0"], rpms["demo-a-1.1"], rpms["demo-b-1.0"], rpms["demo-b-1.1"]}, ui.Bytes()); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *cycleWorld) rpm(t *testing.T, args ...string) string {
	t.Helper()
	full := append([]string{"--root", w.root, "--dbpath", rpmtest.DBPath}, args...)
	out, err := exec.Command("rpm", full...).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return string(out)
}

// versions is what rpm -q says of demo-a and demo-b.
func (w *cycleWorld) versions(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(w.rpm(t, "-q", "--qf", "%{NAME}-%{VERSION} ", "demo-a", "demo-b"))
}

func (w *cycleWorld) options(fake *faultyRPM) Options {
	o := Options{StateDir: w.state, Root: w.root, Repos: []string{w.repo}, Keys: []string{w.key},
		Select: Selection{IDs: []string{"TEST-1"}}}
	if fake != nil {
		o.NewRPM = func(root, dbPath string) RPM {
			fake.RPM = &rpmcmd.Runner{Root: root, DBPath: dbPath}
			return fake
		}
	}
	return o
}

// TestCycleTransactionFailsHalfWay: rpm installs demo-a's fix and fails on
// demo-b's. The database holds a mix, so the cycle rolls back (with the
// real rpm) to both previous versions and says the apply step failed.
func TestCycleTransactionFailsHalfWay(t *testing.T) {
	t.Parallel()
	w := newCycleWorld(t)
	fake := &faultyRPM{halfWay: true}
	res, err := Run(context.Background(), w.options(fake))
	// Run's error is the last step's: the rollback, saying why it rolled back.
	if !errors.Is(err, ErrRollback) || err.Error() != "rolled back: rpm -U: exit status 1" {
		t.Fatalf("Run = %v, want ErrRollback: rolled back: rpm -U: exit status 1", err)
	}
	c := res.Cycle
	if c == nil || c.Phase != RolledBack || c.ErrorClass != "apply" || !strings.Contains(c.Error, "rpm -U: exit status 1") {
		t.Fatalf("cycle = %+v, want rolled back, class apply, rpm's error", c)
	}
	if got := w.versions(t); got != "demo-a-1.0 demo-b-1.0" {
		t.Errorf("after the rollback rpm -q says %q, want both at 1.0", got)
	}
	if !strings.Contains(c.RPMOutput, "install failed") {
		t.Errorf("the journal kept rpm's output %q, want its error", c.RPMOutput)
	}
}

// TestCycleResumesHalfAppliedAsApplyFailure: the agent dies right after rpm
// installed half the transaction. The next run finds the cycle in Applying
// and a mixed database, rolls back, and classes it as the apply step would
// have: "apply", errors.Is ErrApply.
func TestCycleResumesHalfAppliedAsApplyFailure(t *testing.T) {
	t.Parallel()
	w := newCycleWorld(t)
	fake := &faultyRPM{halfWay: true, die: true}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(context.Background(), w.options(fake))
		t.Error("Run returned; the fake should have ended it in rpm -U")
	}()
	<-done
	if got := w.versions(t); got != "demo-a-1.1 demo-b-1.0" {
		t.Fatalf("after the cut transaction rpm -q says %q, want a mix", got)
	}
	o := w.options(nil)
	o.Select = Selection{}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("settling run: %v", err)
	}
	c := res.Recovered
	if c == nil || c.Phase != RolledBack || c.ErrorClass != className(ErrApply) || c.Error != "transaction interrupted half way" {
		t.Fatalf("recovered = %+v, want rolled back with class apply", c)
	}
	if len(c.Recovery) != 1 || !strings.Contains(c.Recovery[0], "a mix of old and new versions") {
		t.Errorf("recovery notes %q", c.Recovery)
	}
	if got := w.versions(t); got != "demo-a-1.0 demo-b-1.0" {
		t.Errorf("after the resumed rollback rpm -q says %q, want both at 1.0", got)
	}
}

// TestCycleKeyImportFails: rpmkeys refuses the pinned key. The cycle fails
// in apply, before rpm -U, and nothing changes.
func TestCycleKeyImportFails(t *testing.T) {
	t.Parallel()
	w := newCycleWorld(t)
	fake := &faultyRPM{importFails: true}
	res, err := Run(context.Background(), w.options(fake))
	if !errors.Is(err, ErrApply) || !strings.Contains(err.Error(), "import pinned keys: rpmkeys --import: exit status 1") {
		t.Fatalf("Run = %v, want ErrApply naming the key import", err)
	}
	if c := res.Cycle; c == nil || c.Phase != Failed || c.ErrorClass != "apply" || !strings.Contains(c.RPMOutput, "key 1 import failed") {
		t.Fatalf("cycle = %+v, want failed, class apply, rpmkeys' output", c)
	}
	if strings.Join(fake.calls, ",") != "import" {
		t.Errorf("rpm calls %q, want only the import: no transaction after it failed", fake.calls)
	}
	if got := w.versions(t); got != "demo-a-1.0 demo-b-1.0" {
		t.Errorf("rpm -q says %q, want nothing changed", got)
	}
}

// TestCycleCancelDuringHealthCheck: the agent is told to stop while a
// health check runs. That is no verdict on the update: Run returns the
// context's error, the journal keeps the cycle in HealthCheck with the new
// versions installed, and the next run checks again and commits.
func TestCycleCancelDuringHealthCheck(t *testing.T) {
	t.Parallel()
	w := newCycleWorld(t)
	// The check hangs until released: the journal keeps the cycle's checks,
	// so the settling run runs this same one again.
	started, released := filepath.Join(t.TempDir(), "started"), filepath.Join(t.TempDir(), "released")
	o := w.options(&faultyRPM{})
	o.HealthChecks = []string{"test -e " + released + " || { touch " + started + "; exec sleep 60; }"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		res *Result
		err error
	}
	ran := make(chan result, 1)
	go func() {
		res, err := Run(ctx, o)
		ran <- result{res, err}
	}()
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		select {
		case r := <-ran:
			t.Fatalf("Run ended before the health check started: %+v, %v", r.res, r.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	r := <-ran
	if !errors.Is(r.err, context.Canceled) || isCycleErr(r.err) {
		t.Fatalf("Run = %v, want context.Canceled and no cycle verdict", r.err)
	}
	if got := w.versions(t); got != "demo-a-1.1 demo-b-1.1" {
		t.Errorf("rpm -q says %q, want the fixes installed", got)
	}
	j, err := OpenJournal(w.state)
	if err != nil {
		t.Fatal(err)
	}
	st, err := j.State()
	j.Close()
	if err != nil || st.Active == 0 {
		t.Fatalf("state = %+v, %v; want the cycle still active", st, err)
	}
	c, err := ReadCycle(filepath.Join(w.state), st.Active)
	if err != nil || c.Phase != HealthCheck {
		t.Fatalf("journaled cycle = %+v, %v; want it in health-check", c, err)
	}

	if err := os.WriteFile(released, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	o = w.options(nil)
	o.Select = Selection{}
	res, err := Run(context.Background(), o)
	if err != nil || res.Recovered == nil || res.Recovered.Phase != Committed {
		t.Fatalf("settling run = %+v, %v; want the cycle committed", res, err)
	}
	if n := res.Recovered.Recovery; len(n) != 1 || !strings.Contains(n[0], "running the health checks again") {
		t.Errorf("recovery notes %q", n)
	}
}
