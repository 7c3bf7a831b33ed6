package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
	"github.com/rpmfleet/rpmfleet/agent/internal/rpmdb"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// Spool layout.
const (
	bundlePlan = "plan.json"
	bundleRepo = "repo"
	spoolDone  = "done"
	spoolFail  = "failed"
)

// watchDB watches the rpm database's folder inside the root and pokes the
// loop on every change; the loop debounces.
func (d *daemon) watchDB(ctx context.Context) {
	db, err := rpmdb.Find(d.cfg.Root)
	if err != nil {
		d.log.Warn("rpm database not watched", "err", err)
		return
	}
	d.watch(ctx, filepath.Dir(db), false, d.dbEvents)
}

// watchSpool watches the spool folder and the bundle folders in it.
func (d *daemon) watchSpool(ctx context.Context) {
	if err := os.MkdirAll(d.spool, 0o700); err != nil {
		d.log.Warn("spool folder not watched", "err", err)
		return
	}
	d.watch(ctx, d.spool, true, d.spoolEv)
	poke(d.spoolEv) // bundles dropped while the agent was down
}

// watch forwards fsnotify events on dir (and, with subdirs, on the folders
// created in it) as pokes on ch until ctx is done.
func (d *daemon) watch(ctx context.Context, dir string, subdirs bool, ch chan struct{}) {
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(dir)
	}
	if err != nil {
		d.log.Warn("folder not watched", "dir", dir, "err", err)
		if w != nil {
			w.Close()
		}
		return
	}
	if subdirs {
		if des, err := os.ReadDir(dir); err == nil {
			for _, de := range des {
				if de.IsDir() && de.Name() != spoolDone && de.Name() != spoolFail {
					w.Add(filepath.Join(dir, de.Name()))
				}
			}
		}
	}
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Op == fsnotify.Chmod {
					continue
				}
				if subdirs && ev.Op&(fsnotify.Create|fsnotify.Rename) != 0 && filepath.Dir(ev.Name) == dir {
					if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
						w.Add(ev.Name)
					}
				}
				poke(ch)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				d.log.Warn("folder watch error", "dir", dir, "err", err)
				poke(ch)
			}
		}
	}()
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// scanSpool picks the first complete bundle (by name) and handles it,
// unless a cycle runs; the loop scans again when it ends.
func (d *daemon) scanSpool() {
	if d.running != nil {
		return
	}
	des, err := os.ReadDir(d.spool)
	if err != nil {
		return
	}
	var names []string
	for _, de := range des {
		if de.IsDir() && de.Name() != spoolDone && de.Name() != spoolFail && !strings.HasPrefix(de.Name(), ".") {
			if _, err := os.Stat(filepath.Join(d.spool, de.Name(), bundlePlan)); err == nil {
				names = append(names, de.Name())
			}
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if d.bundle(filepath.Join(d.spool, name)) {
			return // a cycle runs for it
		}
	}
}

// bundle verifies one bundle and starts its cycle; it reports whether a
// cycle was started. A bundle that is refused, or has nothing to apply now,
// is moved out of the way at once.
func (d *daemon) bundle(dir string) bool {
	f, err := os.Open(filepath.Join(dir, bundlePlan))
	var msg []byte
	if err == nil {
		msg, err = io.ReadAll(io.LimitReader(f, notice.MaxMessageSize+1))
		f.Close()
	}
	if err != nil {
		d.moveBundle(dir, spoolFail, fmt.Sprintf("read %s: %v", bundlePlan, err))
		return false
	}
	n, err := d.ver.Verify(msg, notice.KindPlan, d.deviceID)
	if err != nil {
		d.log.Warn("spool bundle refused", "bundle", filepath.Base(dir), "err", err)
		d.moveBundle(dir, spoolFail, fmt.Sprintf("%s: %v", bundlePlan, err))
		return false
	}
	var p protocol.Plan
	if err := json.Unmarshal(n.Body, &p); err != nil {
		d.moveBundle(dir, spoolFail, fmt.Sprintf("%s: body: %v", bundlePlan, err))
		return false
	}
	if fi, err := os.Stat(filepath.Join(dir, bundleRepo)); err != nil || !fi.IsDir() {
		d.moveBundle(dir, spoolFail, fmt.Sprintf("no %s/ folder beside %s", bundleRepo, bundlePlan))
		return false
	}
	now := d.now()
	var ids, held []string
	pinned := map[string]string{}
	for _, pa := range p.Advisories {
		adv := planAdvisory(pa)
		act := policy.Decide(&adv, &d.cfg.Policy, now)
		if act.Verb != policy.ApplyNow || len(act.Excluded) > 0 {
			held = append(held, pa.ID+": "+act.Verb.String()+", "+act.Reason)
			continue
		}
		ids = append(ids, pa.ID)
		for _, pp := range pa.Packages {
			if pp.SHA256 != "" {
				if e, err := rpmver.ParseEVR(pp.Fixed); err == nil {
					pinned[nevra(pp.Name, e, pp.Arch)] = pp.SHA256
				}
			}
		}
	}
	for _, h := range held {
		d.log.Info("spool bundle advisory not applied", "bundle", filepath.Base(dir), "why", h)
	}
	if len(ids) == 0 {
		d.moveBundle(dir, spoolDone, "nothing to apply now:\n"+strings.Join(held, "\n"))
		return false
	}
	d.log.Info("spool bundle verified", "bundle", filepath.Base(dir), "seq", n.Seq, "advisories", ids)
	d.startCycle(cycleJob{label: "bundle " + filepath.Base(dir), bundle: dir, ids: ids}, update.Options{
		Repos: []string{filepath.Join(dir, bundleRepo)}, Select: update.Selection{IDs: ids}, Pinned: pinned,
	})
	return true
}

// bundleDone moves a bundle whose cycle ended.
func (d *daemon) bundleDone(dir string, c *update.Cycle, err error) {
	switch {
	case err != nil && d.ctx.Err() != nil:
		// Stopped: the bundle stays for the next start, whose settle
		// finishes the cycle; its plan is then seen again and refused as
		// a repeat, so mark it here.
		d.moveBundle(dir, spoolFail, "the agent stopped during its cycle; the cycle resumes at the next start: "+err.Error())
	case err != nil:
		d.moveBundle(dir, spoolFail, err.Error())
	case c == nil:
		d.moveBundle(dir, spoolDone, "nothing to apply: every package is already up to date")
	default:
		d.moveBundle(dir, spoolDone, fmt.Sprintf("cycle %d %s", c.ID, c.Phase))
	}
}

// moveBundle moves dir to spool/sub/ with a NAME.reason file beside it.
func (d *daemon) moveBundle(dir, sub, reason string) {
	to := filepath.Join(d.spool, sub)
	if err := os.MkdirAll(to, 0o700); err != nil {
		d.log.Error("spool bundle not moved", "bundle", dir, "err", err)
		return
	}
	name := filepath.Base(dir)
	dst := filepath.Join(to, name)
	if _, err := os.Lstat(dst); err == nil {
		dst = fmt.Sprintf("%s.%d", dst, time.Now().UnixNano())
	}
	if err := os.Rename(dir, dst); err != nil {
		d.log.Error("spool bundle not moved", "bundle", dir, "err", err)
		return
	}
	if err := os.WriteFile(dst+".reason", []byte(reason+"\n"), 0o600); err != nil {
		d.log.Warn("spool reason not written", "bundle", dst, "err", err)
	}
	if sub == spoolDone {
		d.status.SpoolDone++
	} else {
		d.status.SpoolFailed++
	}
	d.log.Info("spool bundle moved", "bundle", name, "to", sub, "reason", reason)
}

// scheduleReboot reboots inside a maintenance window: a broadcast warning
// now and the reboot after the grace period, or, outside every window, the
// same at the next window's start. Without any window the agent never
// reboots on its own (policy.RebootAllowed).
func (d *daemon) scheduleReboot() {
	now := d.now()
	pol := &d.cfg.Policy
	if pol.Reboot != policy.RebootWhenNeeded {
		d.rebootStage, d.status.RebootAt = 0, time.Time{}
		d.rebootT.Stop()
		return
	}
	if pol.RebootAllowed(now) {
		msg := fmt.Sprintf("rpmfleet-agent: this system reboots in %s to finish installing security updates", d.o.RebootGrace.Round(time.Second))
		d.log.Warn("reboot needed: warning users", "in", d.o.RebootGrace)
		d.command(d.o.WallCommand, msg)
		d.rebootStage = 2
		d.status.RebootAt = now.Add(d.o.RebootGrace)
		d.rebootT.Stop()
		d.rebootT.Reset(d.o.RebootGrace)
		return
	}
	next := pol.NextWindow(now)
	if next.IsZero() {
		d.log.Warn("reboot needed, but no maintenance window is set: left to the admin")
		return
	}
	d.log.Info("reboot needed: scheduled for the maintenance window", "at", next)
	d.rebootStage = 1
	d.status.RebootAt = next
	d.rebootT.Stop()
	d.rebootT.Reset(next.Sub(now))
}

func (d *daemon) rebootTimer() {
	switch d.rebootStage {
	case 1:
		d.scheduleReboot()
	case 2:
		if d.running != nil {
			d.rebootT.Reset(time.Minute) // not in the middle of a cycle
			return
		}
		d.rebootStage = 0
		d.status.State = "rebooting"
		d.log.Warn("rebooting to finish the update", "command", d.o.RebootCommand)
		d.command(d.o.RebootCommand)
	}
}

// command runs argv (plus args) in the background, logging a failure.
func (d *daemon) command(argv []string, args ...string) {
	if len(argv) == 0 {
		return
	}
	argv = append(append([]string(nil), argv...), args...)
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			d.log.Error("command failed", "command", argv[0], "err", err, "output", strings.TrimSpace(string(out)))
		}
	}()
}
