package update

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/rpmcmd"
	"github.com/rpmfleet/rpmfleet/agent/internal/rpmdb"
	"github.com/rpmfleet/rpmfleet/agent/internal/verify"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// RPM is what the cycle needs from rpm; *rpmcmd.Runner is the real one.
type RPM interface {
	Test(ctx context.Context, files ...string) (string, error)
	Upgrade(ctx context.Context, files ...string) (string, error)
	Rollback(ctx context.Context, files ...string) (string, error)
	ImportKeys(ctx context.Context, keyFiles ...string) (string, error)
	// TestInstall, Install and Erase are for install-only packages
	// (installonly.go): rpm --test -i, rpm -i, rpm -e.
	TestInstall(ctx context.Context, files ...string) (string, error)
	Install(ctx context.Context, files ...string) (string, error)
	Erase(ctx context.Context, nevras ...string) (string, error)
}

// Options configure Run.
type Options struct {
	// StateDir holds the journal, the lock and the downloaded packages.
	StateDir string
	// Root is the device root ("/"), DBPath the rpm database folder inside
	// it ("/var/lib/rpm"); empty DBPath means the one rpmdb.Find finds.
	Root, DBPath string
	// Repos are repository bases (URLs or folders); empty means the
	// enabled repositories of ROOT/etc/yum.repos.d.
	Repos []string
	// Keys are the pinned OpenPGP key files; empty means the gpgkey files
	// the .repo files name.
	Keys         []string
	Select       Selection
	HealthChecks []string
	// NoRollback allows applying packages whose installed version no
	// repository has any more.
	NoRollback bool
	// DryRun makes the plan and stops.
	DryRun bool
	// HTTPClient fetches metadata and packages; nil means a client with a
	// 30 s connect and header timeout.
	HTTPClient *http.Client
	Log        *slog.Logger
	// NewRPM makes the rpm runner for a root and database; nil means
	// the real rpm.
	NewRPM func(root, dbPath string) RPM
	// MinFreeBytes is kept free on the root beyond what the packages
	// need; 0 means 16 MiB.
	MinFreeBytes int64
	// Pins maps a package build to the SHA-256 (hex) its file must have:
	// a signed plan's digest, on top of the repository's checksum. A
	// planned package of the same name and arch but another build, or a
	// downloaded file with another digest, fails the cycle as a
	// verification failure (ErrVerify). Nil pins nothing.
	Pins map[rpmver.Key]string
	// InstallonlyLimit is how many instances of an install-only package a
	// committed cycle leaves installed (installonly.go); 0 means
	// DefaultInstallonlyLimit, a negative value keeps every one.
	InstallonlyLimit int
	// RunningKernel is the running kernel's release (uname -r), whose
	// package the install-only limit never erases; "" means
	// /proc/sys/kernel/osrelease when Root is "/", and none otherwise.
	RunningKernel string
	// PrefetchMaxAge bounds the age of a prefetched copy of a
	// repository's metadata that Run uses when the repository cannot be
	// reached (offline.go); 0 means DefaultPrefetchMaxAge.
	PrefetchMaxAge time.Duration
}

// Result is what Run did.
type Result struct {
	// Recovered is a cycle an earlier run left unfinished, now settled.
	Recovered *Cycle
	// Plan is this run's plan; nil when none was made.
	Plan *Plan
	// Cycle is this run's cycle; nil for a dry run or when there was
	// nothing to do.
	Cycle *Cycle
	// SetAside lists advisories set aside by this run.
	SetAside []string
	// Pending is an unfinished cycle a dry run found and left alone.
	Pending *Cycle
}

func (o *Options) fill() error {
	if o.StateDir == "" {
		return errors.New("update: no state dir")
	}
	var err error
	if o.StateDir, err = filepath.Abs(o.StateDir); err != nil {
		return err
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Root, err = filepath.Abs(o.Root); err != nil {
		return err
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			ResponseHeaderTimeout: 30 * time.Second,
			TLSHandshakeTimeout:   30 * time.Second,
		}}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Log = o.Log.With("component", "update")
	if o.NewRPM == nil {
		o.NewRPM = func(root, dbPath string) RPM { return &rpmcmd.Runner{Root: root, DBPath: dbPath} }
	}
	if o.MinFreeBytes <= 0 {
		o.MinFreeBytes = 16 << 20
	}
	return nil
}

// dbPaths returns the database folder inside root, as rpm --dbpath takes it,
// and the path rpmdb.Read takes.
func dbPaths(root, dbPath string) (rel, abs string, err error) {
	if dbPath != "" {
		return dbPath, filepath.Join(root, dbPath), nil
	}
	p, err := rpmdb.Find(root)
	if err != nil {
		return "", "", err
	}
	dir := filepath.Dir(p)
	r, err := filepath.Rel(root, dir)
	if err != nil {
		return "", "", err
	}
	return "/" + r, dir, nil
}

// Run settles a cycle an earlier run left unfinished, then plans and runs a
// new cycle for the selected advisories. It holds the state dir's lock
// throughout. A failed cycle is returned in Result.Cycle along with the
// error.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	j, err := OpenJournal(o.StateDir)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	st, err := j.State()
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if st.Active != 0 {
		c, err := ReadCycle(j.dir, st.Active)
		if err != nil {
			return res, fmt.Errorf("resume cycle %d: %w", st.Active, err)
		}
		if o.DryRun {
			// A dry run changes nothing, not even an interrupted cycle.
			res.Pending = c
			return res, nil
		}
		r := &runner{o: &o, j: j, st: st, c: c, log: o.Log.With("cycle", c.ID)}
		r.log.Info("resuming interrupted cycle", "phase", c.Phase)
		aside, err := r.resume(ctx)
		res.Recovered, res.SetAside = c, aside
		if err != nil && !isCycleErr(err) {
			return res, err
		}
	}
	if o.Select.empty() {
		return res, nil
	}

	relDB, absDB, err := dbPaths(o.Root, o.DBPath)
	if err != nil {
		return res, err
	}
	installed, err := rpmdb.Read(absDB)
	if err != nil {
		return res, err
	}
	repos, keys, err := o.repositories()
	if err != nil {
		return res, err
	}
	if err := o.loadMetadata(ctx, repos); err != nil {
		return res, err
	}
	plan, err := makePlan(ctx, repos, installed, o.Select, st.SetAside)
	res.Plan = plan
	if err != nil || o.DryRun || len(plan.Packages) == 0 {
		return res, err
	}
	var noOld []string
	for _, p := range plan.Packages {
		if p.Old == nil && !p.InstallOnly {
			noOld = append(noOld, p.installedName())
		}
	}
	if len(noOld) > 0 && !o.NoRollback {
		return res, stepErr(ErrNoRollback, false, "cannot keep a way back: %s in no repository; pass --no-rollback to apply without one", strings.Join(noOld, ", "))
	}
	if err := pin(plan.Packages, o.Pins); err != nil {
		return res, err
	}
	if len(keys) == 0 {
		return res, fmt.Errorf("%w: give --gpgkey", verify.ErrNoKeys)
	}
	if _, err := verify.LoadKeyring(keys...); err != nil {
		return res, err
	}

	st.LastID++
	c := &Cycle{
		ID: st.LastID, Phase: Planned, Started: time.Now().UTC(),
		Root: o.Root, DBPath: relDB, Keys: keys, HealthChecks: o.HealthChecks, NoRollback: o.NoRollback,
		Advisories: plan.Advisories, Packages: plan.Packages, Dropped: plan.Dropped,
		Steps:        []Step{{Phase: Planned, Started: time.Now().UTC()}},
		BeforeDigest: inventory.Digest(installed),
	}
	for i := range c.Packages {
		p := &c.Packages[i]
		p.New.File = filepath.Join(o.StateDir, p.New.File)
		if p.Old != nil {
			p.Old.File = filepath.Join(o.StateDir, p.Old.File)
		}
	}
	// The cycle's file first, then the state naming it active: a crash in
	// between leaves a cycle file no state points at and nothing done; the
	// next cycle takes the same ID and replaces it.
	if err := j.SaveCycle(c); err != nil {
		return res, err
	}
	st.Active = c.ID
	if err := j.SaveState(st); err != nil {
		return res, err
	}
	crashPoint(Planned.String())
	res.Cycle = c
	r := &runner{o: &o, j: j, st: st, c: c, log: o.Log.With("cycle", c.ID)}
	aside, err := r.run(ctx)
	res.SetAside = append(res.SetAside, aside...)
	return res, err
}

func isCycleErr(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// runner drives one cycle through its phases.
type runner struct {
	o   *Options
	j   *Journal
	st  *State
	c   *Cycle
	log *slog.Logger
	rpm RPM
}

// next moves the cycle to phase to and persists it before the step runs.
func (r *runner) next(to Phase, note string) error {
	p, err := transition(r.c.Phase, to)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	if n := len(r.c.Steps); n > 0 && r.c.Steps[n-1].Duration == "" {
		r.c.Steps[n-1].Duration = now.Sub(r.c.Steps[n-1].Started).Round(time.Millisecond).String()
	}
	r.c.Phase = p
	r.c.Steps = append(r.c.Steps, Step{Phase: p, Started: now, Note: note})
	if p.Final() {
		r.c.Steps[len(r.c.Steps)-1].Duration = "0s"
		r.c.Finished = now
	}
	if err := r.j.SaveCycle(r.c); err != nil {
		return err
	}
	r.log.Info("phase", "phase", p)
	crashPoint(p.String())
	return nil
}

func (r *runner) note(s string) {
	if n := len(r.c.Steps); n > 0 {
		if r.c.Steps[n-1].Note != "" {
			s = r.c.Steps[n-1].Note + "; " + s
		}
		r.c.Steps[n-1].Note = s
	}
}

// installed reads the rpm database of the cycle's root.
func (r *runner) installed() ([]inventory.Package, error) {
	return rpmdb.Read(filepath.Join(r.c.Root, r.c.DBPath))
}

// run drives the cycle from its current phase to a final one.
func (r *runner) run(ctx context.Context) ([]string, error) {
	if r.rpm == nil {
		r.rpm = r.o.NewRPM(r.c.Root, r.c.DBPath)
	}
	var cycleErr error
	for !r.c.Phase.Final() {
		var to Phase
		var err error
		switch r.c.Phase {
		case Planned:
			to = Downloading
		case Downloading:
			to, err = Verifying, r.download(ctx)
		case Verifying:
			to, err = Preflight, r.verifyAll(false)
		case Preflight:
			to, err = Applying, r.preflight(ctx)
		case Applying:
			to, err = r.apply(ctx)
		case HealthCheck:
			to, err = r.health(ctx)
		case RollingBack:
			to, err = r.rollback(ctx)
		}
		if err != nil {
			if !isCycleErr(err) {
				// Not a verdict on the update (a journal write failed,
				// the context ended): stop here, the next run resumes.
				return nil, err
			}
			cycleErr = err
			if r.c.Error == "" {
				r.c.Error, r.c.ErrorClass = err.Error(), className(err)
			}
			if to != RollingBack && to != RolledBack {
				to = Failed
			}
		}
		if err := r.next(to, ""); err != nil {
			return nil, err
		}
	}
	return r.finish(cycleErr)
}

// finish records the outcome in the state and releases the cycle.
func (r *runner) finish(cycleErr error) ([]string, error) {
	var aside []string
	switch r.c.Phase {
	case Committed:
		r.c.Reboot = needsReboot(r.c.Packages, r.c.Advisories)
		r.st.recordSuccess(r.c)
		r.prune()
	default:
		if pkgs, err := r.installed(); err == nil {
			r.c.DatabaseUnchanged = r.c.BeforeDigest != "" && inventory.Digest(pkgs) == r.c.BeforeDigest
		}
		aside = r.st.recordFailure(r.c)
		if cycleErr == nil {
			cycleErr = stepErr(ErrApply, false, "%s", r.c.Error)
		}
	}
	if err := r.j.SaveCycle(r.c); err != nil {
		return aside, err
	}
	r.st.Active = 0
	if err := r.j.SaveState(r.st); err != nil {
		return aside, err
	}
	return aside, cycleErr
}

// stopping reports whether ctx has ended: the agent is stopping, so a
// command or download it cut short is no verdict on the update. The step
// returns ctx.Err() instead, the journal keeps the cycle at that step, and
// the next start runs it again (resume). Only rpm transactions themselves
// are never cut: they run without ctx's cancellation.
func stopping(ctx context.Context) bool { return ctx.Err() != nil }
