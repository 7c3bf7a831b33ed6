package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/fleetlock"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/agent/internal/utmp"
	"github.com/rpmfleet/rpmfleet/pkg/durable"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// Reboot coordination: the steps between "this cycle needs a reboot and the
// window is open" and "the device runs the new kernel", around the reboot
// timer of reboot.go.
//
//  1. Take a FleetLock slot of the device's reboot group ([reboot]
//     fleetlock_url, the enrolled server's own by default), asking again
//     with backoff while others hold every slot.
//  2. Warn the logged-in users with wall, wait the grace period, then wait
//     while interactive sessions remain (utmp), at most [reboot]
//     session_wait.
//  3. Write STATE/reboot.json (the slot, the kernel the cycle installed,
//     the boot id) and run the reboot command.
//  4. At the next start, once the boot id changed: if the running kernel
//     is the one the cycle installed and the policy's health checks pass,
//     free the slot (steady-state) and remove reboot.json (a failing check
//     keeps the slot: stage unhealthy, checked again at the next start). If
//     the kernel is not, the slot is kept and reboot.json
//     says so (stage wrong-kernel): the device booted something else (the
//     boot loader's default, or a fallback after the new kernel failed),
//     so no other device of the group should reboot into it until an admin
//     has looked; rpmfleet fleetlock release frees it, or the server's
//     slot timeout does.
//
// A device that never comes back keeps its slot the same way. The window
// closing before the reboot frees the slot and schedules the reboot for
// the next window.

// RebootOptions are the reboot coordination's seams.
type RebootOptions struct {
	// ProcRoot is where sys/kernel/osrelease and sys/kernel/random/boot_id
	// are read; "/proc" when empty. Tests point it at a folder a FAKE
	// reboot rewrites.
	ProcRoot string
	// Utmp is the login records file; "/run/utmp" when empty.
	Utmp string
	// LockBackoff paces FleetLock retries (fleetlock.Backoff's defaults,
	// 5 s doubling to 5 min, when zero).
	LockBackoff fleetlock.Backoff
	// SessionPoll is how often logged-in sessions are looked at while a
	// reboot waits for them; 30 s when 0.
	SessionPoll time.Duration
}

// rebootFile is the state dir's record of a reboot in flight.
const rebootFile = "reboot.json"

// Stages of rebootRecord.
const (
	stageLocked      = "locked"       // slot taken, not rebooted yet
	stageRebooting   = "rebooting"    // the reboot command ran
	stageWrongKernel = "wrong-kernel" // came back on another kernel; slot kept
	stageUnhealthy   = "unhealthy"    // came back, health checks failed; slot kept
)

// rebootRecord is STATE/reboot.json.
type rebootRecord struct {
	Version int    `json:"version"`
	Stage   string `json:"stage"`
	// URL, Group and ID name the slot held; URL is "" when no lock was
	// taken (the kernel is still checked after the boot).
	URL   string `json:"url,omitempty"`
	Group string `json:"group,omitempty"`
	ID    string `json:"id,omitempty"`
	// Cycle is the update cycle that needed the reboot; Kernel the release
	// its newest kernel package boots as (VERSION-RELEASE), "" when it
	// installed none.
	Cycle  int    `json:"cycle,omitempty"`
	Kernel string `json:"kernel,omitempty"`
	// BootID is the boot the record was written in; Running the kernel
	// found running (stage wrong-kernel).
	BootID  string    `json:"boot_id,omitempty"`
	Running string    `json:"running,omitempty"`
	Since   time.Time `json:"since"`
}

// rebootCoord is the loop's reboot lock state.
type rebootCoord struct {
	done chan lockDone
	// cancel stops the running lock attempt; busy says one runs.
	cancel context.CancelFunc
	busy   bool
	// held is the slot's client while one is held; lockless says this
	// reboot goes without one (off, standalone, or a server without
	// FleetLock).
	held     *fleetlock.Client
	lockless bool
	// warnedAt is when the users were warned; sessions how many
	// logged-in users the reboot found when its grace ran out (it waits
	// for them).
	warnedAt time.Time
	sessions int
}

type lockDone struct {
	unlock bool
	c      *fleetlock.Client
	err    error
	// noLock: the implicit fleet server answered 404, it speaks no
	// FleetLock.
	noLock bool
	// health is the health checks' answer after a boot (rec the reboot
	// record), failed the checks that failed.
	health *bootHealth
}

type bootHealth struct {
	rec    rebootRecord
	failed []string
	err    error
}

func (d *daemon) procPath(rel string) string {
	root := d.o.Reboot.ProcRoot
	if root == "" {
		root = "/proc"
	}
	return filepath.Join(root, rel)
}

// procLine reads a one-line file of /proc; "" when it cannot.
func (d *daemon) procLine(rel string) string {
	b, err := os.ReadFile(d.procPath(rel))
	if err != nil || len(b) > 4096 {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (d *daemon) bootID() string { return d.procLine("sys/kernel/random/boot_id") }

// lockClient builds the FleetLock client the configuration asks for; nil
// with no error when no lock is to be taken. implicit says the URL is the
// enrolled server's, chosen by default.
func (d *daemon) lockClient(rawURL, group, id string) (c *fleetlock.Client, implicit bool, err error) {
	rc := d.cfg.Reboot
	if rawURL == "" {
		if rc.FleetLockOff {
			return nil, false, nil
		}
		rawURL = rc.FleetLockURL
		if rawURL == "" {
			if d.standalone {
				return nil, false, nil
			}
			rawURL, implicit = d.o.Credential.Server, true
		}
		group, id = rc.Group, rc.ID
	}
	if id == "" {
		id = d.deviceID
	}
	o := fleetlock.Options{URL: rawURL, ID: id, Group: group}
	if !d.standalone && sameOrigin(rawURL, d.o.Credential.Server) {
		// Only the fleet server gets the device's credential, through
		// the client that pins its CA.
		o.Token = d.o.Credential.Credential
		if d.o.HTTPClient != nil {
			o.HTTPClient = d.o.HTTPClient
		} else if hc, err := d.o.Credential.HTTPClient(); err == nil {
			o.HTTPClient = hc
		}
	}
	c, err = fleetlock.New(o)
	return c, implicit, err
}

func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && strings.EqualFold(ua.Host, ub.Host)
}

// rebootDue is the window allowing a needed reboot now: take the slot
// first, then warn (warnReboot). A slot this device holds already (from
// before a restart, or a wrong-kernel boot) is asked for again: the
// protocol's locks are recursive, and it may have timed out or been
// released by an admin meanwhile, and another device taken it.
func (d *daemon) rebootDue() {
	if d.rb.lockless {
		d.warnReboot()
		return
	}
	if d.rb.busy {
		return // asking already
	}
	c, implicit, err := d.lockClient("", "", "")
	if h := d.rb.held; h != nil && err == nil && (c == nil || h.URL() != c.URL() || h.Group() != c.Group() || h.ID() != c.ID()) {
		// The configuration names another lock now: free the old one.
		d.releaseSlot()
	}
	if h := d.rb.held; h != nil && c != nil {
		c = h // the same slot: keep the client that holds it
	}
	if err != nil {
		d.rebootStage = rebootNone
		d.log.Error("reboot needed, but the reboot lock is misconfigured: left to the admin", "err", err)
		return
	}
	if c == nil {
		d.rb.lockless = true
		d.warnReboot()
		return
	}
	d.rebootStage = rebootAskSlot
	d.log.Info("reboot needed: asking for a reboot slot", "fleetlock", c.URL(), "group", c.Group(), "id", c.ID())
	ctx, cancel := context.WithCancel(d.ctx)
	d.rb.cancel, d.rb.busy = cancel, true
	done := d.rebootDone()
	bo := d.o.Reboot.LockBackoff
	go func() {
		defer cancel()
		var noLock bool
		err := fleetlock.Retry(ctx, bo, c.PreReboot, func(err error, n int, wait time.Duration) bool {
			if implicit && fleetlock.IsNotFound(err) {
				noLock = true
				return false
			}
			var fe *fleetlock.Error
			if errors.As(err, &fe) && fe.Held() {
				d.log.Info("reboot slots all held by others; asking again", "group", c.Group(), "attempt", n, "in", wait.Round(time.Millisecond))
			} else {
				d.log.Warn("reboot slot not taken; asking again", "group", c.Group(), "attempt", n, "in", wait.Round(time.Millisecond), "err", err)
			}
			return true
		})
		select {
		case done <- lockDone{c: c, err: err, noLock: noLock}:
		case <-d.ctx.Done():
		}
	}()
}

func (d *daemon) rebootDone() chan lockDone {
	if d.rb.done == nil {
		d.rb.done = make(chan lockDone, 1)
	}
	return d.rb.done
}

// lockFinished takes a lock or unlock attempt's answer, on the loop.
func (d *daemon) lockFinished(r lockDone) {
	if r.health != nil {
		d.bootHealthDone(*r.health)
		return
	}
	if r.unlock {
		if r.err != nil {
			return // stopping; the slot is freed at the next start
		}
		d.log.Info("reboot slot freed", "fleetlock", r.c.URL(), "group", r.c.Group(), "id", r.c.ID())
		if d.rb.held == nil {
			d.removeRebootRecord()
		}
		return
	}
	d.rb.busy, d.rb.cancel = false, nil
	switch {
	case r.noLock:
		d.log.Warn("the fleet server speaks no FleetLock (404): rebooting without a slot", "server", r.c.URL())
		d.rb.lockless = true
	case r.err != nil:
		return // cancelled: stopping, or the reboot is no longer wanted
	default:
		d.rb.held = r.c
		d.log.Info("reboot slot taken", "fleetlock", r.c.URL(), "group", r.c.Group(), "id", r.c.ID())
		d.writeRebootRecord(stageLocked, "")
	}
	if d.rebootStage != rebootAskSlot {
		d.releaseSlot()
		return
	}
	if !d.currentPolicy().RebootAllowed(d.now()) {
		d.log.Info("maintenance window closed while waiting for a reboot slot")
		d.releaseSlot()
		d.rebootStage = rebootNone
		d.scheduleReboot()
		return
	}
	d.warnReboot()
}

// warnReboot broadcasts the warning and sets the reboot after the grace.
func (d *daemon) warnReboot() {
	now := d.now()
	msg := fmt.Sprintf("rpmfleet-agent: this system reboots in %s to finish installing security updates", d.o.RebootGrace.Round(time.Second))
	if len(d.o.WallCommand) > 0 {
		if _, err := exec.LookPath(d.o.WallCommand[0]); err != nil {
			d.log.Warn("reboot needed: no wall to warn users with", "command", d.o.WallCommand[0], "err", err)
		} else {
			d.log.Warn("reboot needed: warning users", "in", d.o.RebootGrace)
			d.command(d.o.WallCommand, msg)
		}
	}
	d.rb.warnedAt, d.rb.sessions = now, 0
	d.rebootStage = rebootWarned
	d.status.RebootAt = now.Add(d.o.RebootGrace)
	d.rebootT.Stop()
	d.rebootT.Reset(d.o.RebootGrace)
}

// rebootNow is the grace period over: reboot, unless the window closed or
// users are still logged in (and session_wait has not run out).
func (d *daemon) rebootNow() {
	now := d.now()
	if !d.currentPolicy().RebootAllowed(now) {
		d.log.Info("maintenance window closed before the reboot; freeing the slot")
		d.releaseSlot()
		d.rebootStage = rebootNone
		d.scheduleReboot()
		return
	}
	if ss, err := readSessions(d.o.Reboot.Utmp); err != nil {
		d.log.Warn("logged-in users not known; not waiting for them", "err", err)
	} else if len(ss) > 0 {
		until := d.rb.warnedAt.Add(d.o.RebootGrace + d.cfg.Reboot.SessionWait)
		if now.Before(until) {
			poll := d.o.Reboot.SessionPoll
			if poll <= 0 {
				poll = 30 * time.Second
			}
			d.log.Info("reboot waits for interactive sessions to end", "sessions", len(ss), "users", sessionUsers(ss), "until", until)
			d.status.RebootAt, d.rb.sessions = until, len(ss)
			d.rebootT.Reset(min(poll, until.Sub(now)))
			return
		}
		d.log.Warn("interactive sessions still open after session_wait: rebooting anyway", "sessions", len(ss), "users", sessionUsers(ss))
	}
	d.writeRebootRecord(stageRebooting, "")
	d.rebootStage = rebootNone
	d.status.State = protocol.StateRebooting
	d.log.Warn("rebooting to finish the update", "command", d.o.RebootCommand)
	d.command(d.o.RebootCommand)
}

// rebootWait says what a needed reboot waits for now (DeviceState's
// RebootWait).
func (d *daemon) rebootWait() protocol.RebootWait {
	switch {
	case d.rebootStage == rebootWaitWindow:
		return protocol.RebootWaitWindow
	case d.rebootStage == rebootAskSlot:
		return protocol.RebootWaitSlot
	case d.rebootStage == rebootWarned && d.rb.sessions > 0:
		return protocol.RebootWaitSessions
	}
	return ""
}

// rebootCancel stops a lock attempt and frees a held slot: the reboot is
// no longer wanted.
func (d *daemon) rebootCancel() {
	if d.rb.cancel != nil {
		d.rb.cancel()
	}
	d.releaseSlot()
}

// releaseSlot frees the held slot in the background, asking again with
// backoff until the server says done.
func (d *daemon) releaseSlot() {
	c := d.rb.held
	d.rb.held, d.rb.lockless = nil, false
	if c == nil {
		d.removeRebootRecord()
		return
	}
	done := d.rebootDone()
	bo := d.o.Reboot.LockBackoff
	go func() {
		err := fleetlock.Retry(d.ctx, bo, c.SteadyState, func(err error, n int, wait time.Duration) bool {
			d.log.Warn("reboot slot not freed; trying again", "group", c.Group(), "attempt", n, "in", wait.Round(time.Millisecond), "err", err)
			return true
		})
		select {
		case done <- lockDone{unlock: true, c: c, err: err}:
		case <-d.ctx.Done():
		}
	}()
}

// writeRebootRecord persists the reboot in flight; a failure is logged:
// the reboot goes on, and its slot is then freed by the server's timeout.
func (d *daemon) writeRebootRecord(stage, running string) {
	rec := rebootRecord{Version: 1, Stage: stage, BootID: d.bootID(), Running: running, Since: d.now().UTC()}
	if c := d.rb.held; c != nil {
		rec.URL, rec.Group, rec.ID = c.URL(), c.Group(), c.ID()
	}
	if h, err := update.History(d.cfg.StateDir); err == nil {
		rec.Cycle, rec.Kernel = expectedKernel(h)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err == nil {
		err = durable.WriteFile(filepath.Join(d.cfg.StateDir, rebootFile), append(b, '\n'), 0o600)
	}
	if err != nil {
		d.log.Error("reboot record not written; the slot is freed only by the lock server's timeout", "err", err)
	}
}

func (d *daemon) removeRebootRecord() {
	if err := durable.Remove(filepath.Join(d.cfg.StateDir, rebootFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.log.Warn("reboot record not removed", "err", err)
	}
}

// rebootResume runs at start: a reboot record says a slot may be held and
// a kernel is expected.
func (d *daemon) rebootResume() {
	path := filepath.Join(d.cfg.StateDir, rebootFile)
	b, err := readBounded(path, 64<<10)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var rec rebootRecord
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err == nil && rec.Version != 1 {
		err = fmt.Errorf("version %d, want 1", rec.Version)
	}
	if err != nil {
		d.log.Error("reboot record unreadable; removed (a slot it held frees by the lock server's timeout)", "file", path, "err", err)
		d.removeRebootRecord()
		return
	}
	var c *fleetlock.Client
	if rec.URL != "" {
		if c, _, err = d.lockClient(rec.URL, rec.Group, rec.ID); err != nil {
			d.log.Error("reboot record names an unusable lock; removed", "file", path, "err", err)
			d.removeRebootRecord()
			return
		}
	}
	d.rb.held = c
	boot := d.bootID()
	rebooted := boot != rec.BootID
	if boot == "" || rec.BootID == "" {
		rebooted = rec.Stage == stageRebooting // the best one can tell
	}
	switch {
	case !rebooted && rec.Stage == stageUnhealthy:
		// Restarted after an unhealthy boot: look again.
		d.log.Warn("the last boot was unhealthy; running the health checks again", "group", rec.Group, "id", rec.ID)
		d.checkBootHealth(rec)
		return
	case !rebooted && rec.Stage == stageWrongKernel:
		d.log.Error("running kernel is not the one the update installed; the reboot slot stays held until an admin frees it or it times out",
			"running", rec.Running, "expected", rec.Kernel, "group", rec.Group, "id", rec.ID)
		return
	case !rebooted:
		// Restarted before the reboot: the slot is asked for again (it
		// may have timed out while the agent was down) and the reboot
		// scheduled again, or the slot freed if no longer wanted.
		d.log.Warn("agent restarted before the reboot it had a slot for", "group", rec.Group, "id", rec.ID)
		d.scheduleReboot()
		return
	}
	running := d.procLine("sys/kernel/osrelease")
	if rec.Kernel != "" && !kernelMatches(running, rec.Kernel) {
		d.log.Error("booted a kernel other than the one the update installed: keeping the reboot slot so no other device of the group reboots until an admin looks (rpmfleet fleetlock release GROUP ID) or the slot times out",
			"running", running, "expected", rec.Kernel, "cycle", rec.Cycle, "group", rec.Group, "id", rec.ID)
		rec.Stage, rec.Running, rec.BootID = stageWrongKernel, running, boot
		if b, err := json.MarshalIndent(rec, "", "  "); err == nil {
			if err := durable.WriteFile(path, append(b, '\n'), 0o600); err != nil {
				d.log.Error("reboot record not written", "err", err)
			}
		}
		return
	}
	d.log.Info("back from the reboot on the expected kernel; running the health checks", "running", running, "expected", rec.Kernel, "cycle", rec.Cycle)
	rec.Running = running
	d.checkBootHealth(rec)
}

// checkBootHealth runs the policy's health checks (and health.d) in the
// background after a boot; bootHealthDone frees the slot if they pass.
func (d *daemon) checkBootHealth(rec rebootRecord) {
	done := d.rebootDone()
	cmds := d.currentPolicy().HealthChecks
	go func() {
		h := bootHealth{rec: rec}
		results, _, err := update.Health(d.ctx, d.cfg.Root, cmds)
		h.err = err
		for _, r := range results {
			if !r.OK {
				h.failed = append(h.failed, r.Check)
			}
		}
		select {
		case done <- lockDone{health: &h}:
		case <-d.ctx.Done():
		}
	}()
}

// bootHealthDone frees the slot after a healthy boot; after an unhealthy
// one it keeps it, as after a wrong kernel: the fleet should not reboot
// into what broke this device until an admin has looked.
func (d *daemon) bootHealthDone(h bootHealth) {
	if d.ctx.Err() != nil {
		return // stopping: checked again at the next start
	}
	if h.err == nil && len(h.failed) == 0 {
		d.log.Info("healthy after the reboot; freeing the reboot slot")
		d.releaseSlot()
		return
	}
	d.log.Error("unhealthy after the reboot: keeping the reboot slot so no other device of the group reboots until an admin looks (rpmfleet fleetlock release GROUP ID) or the slot times out",
		"failed", h.failed, "err", h.err, "group", h.rec.Group, "id", h.rec.ID)
	rec := h.rec
	rec.Stage, rec.BootID = stageUnhealthy, d.bootID()
	if b, err := json.MarshalIndent(rec, "", "  "); err == nil {
		if err := durable.WriteFile(filepath.Join(d.cfg.StateDir, rebootFile), append(b, '\n'), 0o600); err != nil {
			d.log.Error("reboot record not written", "err", err)
		}
	}
}

// readBounded reads a regular file of at most max bytes, never blocking
// on a FIFO.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(b)) > max {
		err = fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return b, err
}

// kernelPackage reports whether a package named name carries a bootable
// kernel: kernel, kernel-core and their variants (rt, 64k, uek), and the
// Raspberry Pi kernels (raspberrypi2-kernel4).
func kernelPackage(name string) bool {
	switch name {
	case "kernel", "kernel-core", "kernel-rt", "kernel-rt-core", "kernel-64k", "kernel-64k-core", "kernel-uek", "kernel-uek-core":
		return true
	}
	i := strings.Index(name, "-kernel")
	return i > 0 && !strings.Contains(name[i:], "-devel") && !strings.Contains(name[i:], "-headers") && !strings.Contains(name[i:], "-tools")
}

// expectedKernel is the kernel the newest committed cycle that needs a
// reboot installed, as uname -r starts: VERSION-RELEASE of its newest
// kernel package; "" when it installed none.
func expectedKernel(history []*update.Cycle) (cycle int, kernel string) {
	var newest *update.Cycle
	for _, c := range history {
		if c.Phase == update.Committed && c.Reboot.Needed && (newest == nil || c.Finished.After(newest.Finished)) {
			newest = c
		}
	}
	if newest == nil {
		return 0, ""
	}
	var best rpmver.EVR
	found := false
	for _, p := range newest.Packages {
		if !kernelPackage(p.Name) {
			continue
		}
		e, err := rpmver.ParseEVR(p.To)
		if err != nil {
			continue
		}
		if !found || rpmver.Compare(e, best) > 0 {
			best, found = e, true
		}
	}
	if !found {
		return newest.ID, ""
	}
	return newest.ID, best.Version + "-" + best.Release
}

// kernelMatches reports whether the running release (uname -r, such as
// 5.14.0-362.8.1.el9_3.aarch64 or 6.1.31-v8.1.el9) is expected
// (VERSION-RELEASE): equal, or followed by an arch or flavour suffix.
func kernelMatches(running, expected string) bool {
	rest, ok := strings.CutPrefix(running, expected)
	return ok && expected != "" && (rest == "" || rest[0] == '.' || rest[0] == '+' || rest[0] == '-')
}

// readSessions lists the interactive sessions open now.
func readSessions(path string) ([]utmp.Session, error) { return utmp.Sessions(path) }

// sessionUsers names who is logged in, for the log, escaped.
func sessionUsers(ss []utmp.Session) string {
	var names []string
	for _, s := range ss {
		n := protocol.Escape(s.User) + "@" + protocol.Escape(s.Line)
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}
