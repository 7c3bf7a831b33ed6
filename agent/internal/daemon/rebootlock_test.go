package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/config"
	"github.com/rpmfleet/rpmfleet/agent/internal/fleetlock"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/agent/internal/utmp"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestExpectedKernel: the kernel a reboot must come back on is the newest
// kernel package of the newest committed cycle that needed the reboot, as
// uname -r starts; other packages of the same source (headers, tools) and
// other cycles do not count.
func TestExpectedKernel(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	cyc := func(id int, phase update.Phase, reboot bool, finished time.Time, pkgs ...update.Package) *update.Cycle {
		return &update.Cycle{ID: id, Phase: phase, Finished: finished, Reboot: update.Reboot{Needed: reboot}, Packages: pkgs}
	}
	pkg := func(name, to string) update.Package { return update.Package{Name: name, To: to, Arch: "aarch64"} }
	for _, tc := range []struct {
		name      string
		history   []*update.Cycle
		wantCycle int
		want      string
	}{
		{"kernel-core of EL9", []*update.Cycle{cyc(1, update.Committed, true, t0,
			pkg("kernel-headers", "5.14.0-427.13.1.el9_4"), pkg("kernel-core", "5.14.0-362.8.1.el9_3"), pkg("kernel-modules", "5.14.0-362.8.1.el9_3"))}, 1, "5.14.0-362.8.1.el9_3"},
		{"two kernels, the newer wins", []*update.Cycle{cyc(1, update.Committed, true, t0,
			pkg("kernel", "5.14.0-9.el9"), pkg("kernel", "5.14.0-10.el9"))}, 1, "5.14.0-10.el9"},
		{"raspberry pi kernel, epoch dropped", []*update.Cycle{cyc(1, update.Committed, true, t0,
			pkg("raspberrypi2-firmware", "6.1.31-v8.1.el9"), pkg("raspberrypi2-kernel4", "1:6.1.31-v8.1.el9"))}, 1, "6.1.31-v8.1.el9"},
		{"glibc only: no kernel to confirm", []*update.Cycle{cyc(1, update.Committed, true, t0, pkg("glibc", "2.34-100.el9"))}, 1, ""},
		{"the newest rebooting cycle, not a rolled back one", []*update.Cycle{
			cyc(1, update.Committed, true, t0, pkg("kernel-core", "5.14.0-1.el9")),
			cyc(2, update.RolledBack, true, t0.Add(time.Hour), pkg("kernel-core", "5.14.0-2.el9")),
			cyc(3, update.Committed, false, t0.Add(2*time.Hour), pkg("demo-lib", "1.1-1.el9")),
		}, 1, "5.14.0-1.el9"},
		{"no cycle", nil, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, k := expectedKernel(tc.history)
			if id != tc.wantCycle || k != tc.want {
				t.Errorf("expectedKernel = %d %q, want %d %q", id, k, tc.wantCycle, tc.want)
			}
		})
	}
}

// TestKernelMatches: uname -r against the expected VERSION-RELEASE.
func TestKernelMatches(t *testing.T) {
	for _, tc := range []struct {
		running, expected string
		want              bool
	}{
		{"5.14.0-362.8.1.el9_3.aarch64", "5.14.0-362.8.1.el9_3", true},
		{"5.14.0-362.8.1.el9_3.x86_64+debug", "5.14.0-362.8.1.el9_3", true},
		{"6.1.31-v8.1.el9", "6.1.31-v8.1.el9", true},
		{"5.14.0-362.8.1.el9_3.aarch64", "5.14.0-362.8", true}, // release prefix ends at a dot
		{"5.14.0-284.11.1.el9_2.aarch64", "5.14.0-362.8.1.el9_3", false},
		{"5.14.0-3621.el9.aarch64", "5.14.0-362", false},
		{"", "5.14.0-362.8.1.el9_3", false},
		{"5.14.0", "", false},
	} {
		if got := kernelMatches(tc.running, tc.expected); got != tc.want {
			t.Errorf("kernelMatches(%q, %q) = %v, want %v", tc.running, tc.expected, got, tc.want)
		}
	}
}

// TestRebootRecordUnreadable: a reboot record that is garbled, of another
// version, too large, or not a file at all is logged and removed at start,
// without blocking on a FIFO or acting on it.
func TestRebootRecordUnreadable(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(path string) error
	}{
		{"garbled", func(p string) error { return os.WriteFile(p, []byte(`{"version": 1, "stage": `), 0o600) }},
		{"another version", func(p string) error { return os.WriteFile(p, []byte(`{"version": 2, "stage": "rebooting"}`), 0o600) }},
		{"too large", func(p string) error { return os.WriteFile(p, make([]byte, 65<<10), 0o600) }},
		{"a FIFO", func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"a bad lock URL", func(p string) error {
			return os.WriteFile(p, []byte(`{"version": 1, "stage": "rebooting", "url": "ftp://x", "id": "a", "group": "default"}`), 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, rebootFile)
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			d := &daemon{cfg: &config.Config{StateDir: dir}, log: slog.New(slog.NewTextHandler(&logs, nil))}
			done := make(chan struct{})
			go func() { d.rebootResume(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("rebootResume blocked")
			}
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Errorf("the record is still there: %v", err)
			}
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "removed") || d.rb.held != nil {
				t.Errorf("log %q, held %v; want an error saying it was removed, no slot", logs.String(), d.rb.held)
			}
		})
	}
}

// TestRebootWindowClosesFirst: the users are warned inside the window, but
// the window closes (the daemon's clock moves on) before the grace period
// is over: no reboot, and the reboot moves to the next window's start.
// The fleet server here speaks no FleetLock (404), so no slot is taken.
// The reboot and wall commands are FAKES that write files.
func TestRebootWindowClosesFirst(t *testing.T) {
	w := newWorld(t, worldOpts{rebootSuggested: true})
	w.srv.setPlan(t, advisoryPlan(""))
	now := time.Now().UTC()
	start := now.Add(-30 * time.Minute)
	window := fmt.Sprintf("[[policy.window]]\ndays = [\"mon-sun\"]\nstart = \"%02d:%02d\"\nlength = \"1h\"\ntimezone = \"UTC\"\n", start.Hour(), start.Minute())
	w.writeConfig(t, policyTOML("apply", "", `reboot = "when-needed"`)+window)
	wall, rebooted := filepath.Join(w.dir, "wall.out"), filepath.Join(w.dir, "rebooted")
	var mu sync.Mutex
	offset := time.Duration(0)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(offset)
	}
	r := w.start(t, func(o *Options) {
		o.WallCommand = []string{"sh", "-c", `echo "$1" > ` + wall, "fake-wall"}
		o.RebootCommand = []string{"touch", rebooted}
		o.RebootGrace = 2 * time.Second
		o.Now = clock
	})
	waitFor(t, 60*time.Second, "the warning", func() bool { _, err := os.Stat(wall); return err == nil })
	mu.Lock()
	offset = 45 * time.Minute // the window closed
	mu.Unlock()
	waitFor(t, 30*time.Second, "the reboot moved", func() bool {
		return strings.Contains(r.log.String(), "maintenance window closed before the reboot")
	})
	time.Sleep(500 * time.Millisecond)
	if _, err := os.Stat(rebooted); err == nil {
		t.Fatal("rebooted after the window closed")
	}
	next := time.Date(now.Year(), now.Month(), now.Day(), start.Hour(), start.Minute(), 0, 0, time.UTC)
	for !next.After(clock()) {
		next = next.AddDate(0, 0, 1)
	}
	waitFor(t, 10*time.Second, "the reboot at the next window", func() bool { return r.Status().RebootAt.Equal(next) })
}

// TestRebootWaitInState: what a needed reboot waits for is in the device's
// state and systemd's STATUS: a FleetLock slot while the group's slots are
// all held (the lock server answers 409), then, with the slot taken,
// logged-in users (a utmp record of a live process) until session_wait;
// once they log out it reboots and waits for nothing. The lock server is
// a loopback stand-in; the reboot and wall commands are FAKES that write
// files.
func TestRebootWaitInState(t *testing.T) {
	w := newWorld(t, worldOpts{rebootSuggested: true})
	w.srv.setPlan(t, advisoryPlan(""))
	var free atomic.Bool // false: the group's slots are all held by others
	var asked atomic.Int32
	lock := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if r.URL.Path == protocol.PathPreReboot && !free.Load() {
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(http.StatusConflict)
			fmt.Fprintf(rw, `{"kind":%q,"value":"all 1 slots held"}`, protocol.FleetLockFull)
			return
		}
		rw.WriteHeader(http.StatusOK)
	}))
	defer lock.Close()
	utmpFile := filepath.Join(w.dir, "utmp")
	if err := os.WriteFile(utmpFile, utmp.Record(utmp.Session{PID: os.Getpid(), Line: "pts/0", User: "alice"}), 0o644); err != nil {
		t.Fatal(err)
	}
	w.writeConfig(t, policyTOML("apply", "open", `reboot = "when-needed"`)+
		fmt.Sprintf("[reboot]\nfleetlock_url = %q\nsession_wait = \"10m\"\n", lock.URL))
	rebooted := filepath.Join(w.dir, "rebooted")
	var statusMu sync.Mutex
	var lines []string
	r := w.start(t, func(o *Options) {
		o.WallCommand = []string{"true"}
		o.RebootCommand = []string{"touch", rebooted}
		o.RebootGrace = 100 * time.Millisecond
		o.Reboot.Utmp = utmpFile
		o.Reboot.SessionPoll = 100 * time.Millisecond
		o.Reboot.LockBackoff = fleetlock.Backoff{Min: 50 * time.Millisecond, Max: 100 * time.Millisecond}
		prev := o.OnStatus
		o.OnStatus = func(st protocol.DeviceState) {
			statusMu.Lock()
			lines = append(lines, statusLine(st))
			statusMu.Unlock()
			if prev != nil {
				prev(st)
			}
		}
	})
	waitFor(t, 60*time.Second, "the reboot waiting for a slot", func() bool {
		return r.Status().RebootWait == protocol.RebootWaitSlot && asked.Load() >= 2
	})
	free.Store(true) // a slot frees
	waitFor(t, 30*time.Second, "the reboot waiting for alice", func() bool {
		st := r.Status()
		return st.RebootWait == protocol.RebootWaitSessions && !st.RebootAt.IsZero()
	})
	if _, err := os.Stat(rebooted); err == nil {
		t.Fatal("rebooted while alice was logged in")
	}
	statusMu.Lock()
	all := strings.Join(lines, "\n")
	statusMu.Unlock()
	for _, want := range []string{"reboot waits for a slot", "reboot waits for logged-in users until"} {
		if !strings.Contains(all, want) {
			t.Errorf("systemd's STATUS never said %q:\n%s", want, all)
		}
	}
	if err := os.WriteFile(utmpFile, nil, 0o644); err != nil { // alice logs out
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the reboot", func() bool { _, err := os.Stat(rebooted); return err == nil })
	waitFor(t, 10*time.Second, "nothing waited for", func() bool { return r.Status().RebootWait == "" })
}
