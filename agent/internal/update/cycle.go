package update

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/rpmfleet/rpmfleet/agent/internal/rpmcmd"
	"github.com/rpmfleet/rpmfleet/agent/internal/rpmdb"
	"github.com/rpmfleet/rpmfleet/agent/internal/verify"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/repo"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// RPM is what the cycle needs from rpm; *rpmcmd.Runner is the real one.
type RPM interface {
	Test(ctx context.Context, files ...string) (string, error)
	Upgrade(ctx context.Context, files ...string) (string, error)
	Rollback(ctx context.Context, files ...string) (string, error)
	ImportKeys(ctx context.Context, keyFiles ...string) (string, error)
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
	// Pinned maps a package's NEVRA, as rpm -q writes it
	// ("openssl-libs-1:3.0.7-16.el9_2.aarch64"), to the SHA-256 (hex) its
	// file must have: a signed plan's digest, on top of the repository's
	// checksum. A planned package of the same name and arch but another
	// NEVRA, or a downloaded file with another digest, fails the cycle as
	// a verification failure (ErrVerify). Nil pins nothing.
	Pinned map[string]string
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
	plan, err := makePlan(ctx, repos, installed, o.Select, st.SetAside)
	res.Plan = plan
	if err != nil || o.DryRun || len(plan.Packages) == 0 {
		return res, err
	}
	var noOld []string
	for _, p := range plan.Packages {
		if p.Old == nil {
			noOld = append(noOld, p.Name+"-"+p.From+"."+p.Arch)
		}
	}
	if len(noOld) > 0 && !o.NoRollback {
		return res, stepErr(ErrNoRollback, false, "cannot keep a way back: %s in no repository; pass --no-rollback to apply without one", strings.Join(noOld, ", "))
	}
	if err := pin(plan.Packages, o.Pinned); err != nil {
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

// repositories opens --repo, or the device's enabled .repo files, and
// returns the keys to pin. The pinned keys also check repomd.xml.asc where a
// repository has one; a .repo file's repo_gpgcheck makes it required.
func (o *Options) repositories() ([]*repo.Repo, []string, error) {
	type source struct {
		base       string
		requireSig bool
	}
	var srcs []source
	keys := o.Keys
	if len(o.Repos) > 0 {
		for _, b := range o.Repos {
			srcs = append(srcs, source{base: b})
		}
	} else {
		cfgs, err := o.repoConfigs()
		if err != nil {
			return nil, nil, err
		}
		for _, c := range cfgs {
			srcs = append(srcs, source{base: c.BaseURLs[0], requireSig: c.RepoGPGCheck})
			if len(o.Keys) > 0 {
				continue
			}
			for _, k := range c.GPGKeys {
				p, ok := strings.CutPrefix(k, "file://")
				if !ok {
					return nil, nil, stepErr(ErrPlan, false, "%s:%d: [%s] gpgkey %q is not a file:// URL; only local keys can be pinned (give --gpgkey)", c.File, c.Line, c.ID, k)
				}
				keys = append(keys, filepath.Join(o.Root, p))
			}
		}
	}
	ring, err := armoredKeyRing(keys)
	if err != nil {
		return nil, nil, err
	}
	var repos []*repo.Repo
	for i, s := range srcs {
		r, err := repo.New(s.base, repo.Options{HTTPClient: o.HTTPClient, CacheDir: filepath.Join(o.StateDir, "metadata", fmt.Sprint(i)),
			Keyring: ring, RequireSignature: s.requireSig && ring != nil})
		if err != nil {
			return nil, nil, stepErr(ErrPlan, false, "repository %s: %w", s.base, err)
		}
		repos = append(repos, r)
	}
	return repos, keys, nil
}

// repoConfigs reads the enabled repositories of ROOT/etc/yum.repos.d, with
// $releasever from os-release, $basearch from this machine and the
// variables of ROOT/etc/dnf/vars.
func (o *Options) repoConfigs() ([]repo.Config, error) {
	vars, err := repo.ReadVars(filepath.Join(o.Root, "etc/dnf/vars"))
	if err != nil {
		return nil, err
	}
	if vars == nil {
		vars = map[string]string{}
	}
	if _, ok := vars["releasever"]; !ok {
		if rel, err := readReleaseVer(o.Root); err == nil {
			vars["releasever"] = rel
		}
	}
	if _, ok := vars["basearch"]; !ok {
		vars["basearch"] = baseArch()
		vars["arch"] = baseArch()
	}
	dir := filepath.Join(o.Root, "etc/yum.repos.d")
	all, err := repo.LoadConfigDir(dir, vars)
	if err != nil {
		return nil, err
	}
	var out []repo.Config
	for _, c := range all {
		if !c.Enabled {
			continue
		}
		if len(c.BaseURLs) == 0 {
			o.Log.Warn("repository has no baseurl, only a mirror list; skipped", "repo", c.ID, "file", c.File)
			continue
		}
		if strings.Contains(c.BaseURLs[0], "$") {
			return nil, stepErr(ErrPlan, false, "%s:%d: [%s] baseurl %q has a variable this agent cannot fill", c.File, c.Line, c.ID, c.BaseURLs[0])
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, stepErr(ErrPlan, false, "no repository: give --repo, or enable one with a baseurl in %s", dir)
	}
	return out, nil
}

// armoredKeyRing reads the pinned key files for the repomd.xml.asc check;
// nil when there are none.
func armoredKeyRing(files []string) (openpgp.EntityList, error) {
	var ring openpgp.EntityList
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("read pinned key: %w", err)
		}
		el, err := openpgp.ReadArmoredKeyRing(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("read pinned key %s: %w", f, err)
		}
		ring = append(ring, el...)
	}
	return ring, nil
}

func baseArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "arm":
		return "armhfp"
	}
	return runtime.GOARCH
}

func readReleaseVer(root string) (string, error) {
	f, err := os.Open(filepath.Join(root, "etc/os-release"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	rel, err := inventory.ParseOSRelease(f)
	if err != nil {
		return "", err
	}
	v, _, _ := strings.Cut(rel.VersionID, ".")
	return v, nil
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

func (r *runner) download(ctx context.Context) error {
	need := int64(0)
	for _, p := range r.c.Packages {
		need += p.New.Size
		if p.Old != nil {
			need += p.Old.Size
		}
	}
	if free, err := freeBytes(r.o.StateDir); err == nil && free < need {
		return stepErr(ErrPreflight, true, "state dir %s has %d bytes free, the downloads need %d", r.o.StateDir, free, need)
	}
	f := &fetcher{client: r.o.HTTPClient, log: r.log.Warn}
	for _, a := range r.artifacts() {
		at, err := f.fetch(ctx, a.URL, a.File, a.Checksum, a.Size)
		if at > 0 {
			r.note(fmt.Sprintf("%s resumed at byte %d", filepath.Base(a.File), at))
		}
		if err != nil {
			return err
		}
		if a.PinnedSHA256 == "" {
			continue
		}
		if ok, got := fileMatches(a.File, "sha256", a.PinnedSHA256, a.Size); !ok {
			return stepErr(ErrVerify, false, "%s: %s; the signed plan pins sha256:%s", a.NEVRA, got, a.PinnedSHA256)
		}
	}
	return nil
}

// pin copies Options.Pinned onto the planned packages, refusing a plan that
// would install another version of a pinned package than the one pinned.
func pin(pkgs []Package, pinned map[string]string) error {
	if len(pinned) == 0 {
		return nil
	}
	byNameArch := map[string]string{}
	for nevra := range pinned {
		n, err := rpmver.ParseNEVRA(nevra)
		if err != nil {
			return stepErr(ErrVerify, false, "pinned package %q: %w", nevra, err)
		}
		byNameArch[n.Name+"."+n.Arch] = nevra
	}
	for i := range pkgs {
		p := &pkgs[i]
		sum, ok := pinned[p.New.NEVRA]
		if !ok {
			if want, clash := byNameArch[p.Name+"."+p.Arch]; clash {
				return stepErr(ErrVerify, false, "the repositories offer %s, the signed plan pins %s", p.New.NEVRA, want)
			}
			continue
		}
		p.New.PinnedSHA256 = strings.ToLower(sum)
	}
	return nil
}

// artifacts lists every file the cycle needs: the new packages, then the
// rollback set.
func (r *runner) artifacts() []*Artifact {
	var out []*Artifact
	for i := range r.c.Packages {
		out = append(out, &r.c.Packages[i].New)
	}
	for i := range r.c.Packages {
		if r.c.Packages[i].Old != nil {
			out = append(out, r.c.Packages[i].Old)
		}
	}
	return out
}

// verifyAll checks every package (or only the rollback set) against the
// pinned keys and the plan, recording a verdict on each.
func (r *runner) verifyAll(rollbackOnly bool) error {
	kr, err := verify.LoadKeyring(r.c.Keys...)
	if err != nil {
		return stepErr(ErrVerify, false, "load pinned keys: %w", err)
	}
	if !rollbackOnly {
		r.c.Verdicts = nil // a resumed step judges every file again
	}
	var firstErr error
	check := func(a *Artifact, name, arch, evr string, rollback bool) {
		e, err := rpmver.ParseEVR(evr)
		if err != nil {
			firstErr = stepErr(ErrVerify, false, "plan for %s: %w", name, err)
			return
		}
		want := rpmver.NEVRA{Name: name, EVR: e, Arch: arch}
		v := Verdict{NEVRA: nevraString(want), File: a.File, Rollback: rollback}
		res, err := verify.File(a.File, kr, &want)
		if err != nil {
			v.Detail = err.Error()
			var ve *verify.Error
			if errors.As(err, &ve) {
				v.Kind = ve.Kind.String()
			}
			if firstErr == nil {
				firstErr = stepErr(ErrVerify, false, "%w", err)
			}
		} else {
			v.OK = true
			for _, s := range res.Signatures {
				v.Keys = append(v.Keys, s.Fingerprint)
			}
		}
		r.c.Verdicts = append(r.c.Verdicts, v)
	}
	for _, p := range r.c.Packages {
		if !rollbackOnly {
			check(&p.New, p.Name, p.Arch, p.To, false)
		}
		if p.Old != nil {
			check(p.Old, p.Name, p.Arch, p.From, true)
		}
	}
	return firstErr
}

func (r *runner) preflight(ctx context.Context) error {
	var need int64
	for _, p := range r.c.Packages {
		need += p.New.InstalledSize
	}
	need += r.o.MinFreeBytes
	if free, err := freeBytes(r.c.Root); err != nil {
		return stepErr(ErrPreflight, false, "free space of %s: %w", r.c.Root, err)
	} else if free < need {
		return stepErr(ErrPreflight, true, "root %s has %d bytes free, the update needs %d (installed size plus %d kept free)", r.c.Root, free, need, r.o.MinFreeBytes)
	}
	if out, err := r.rpm.Test(ctx, r.newFiles()...); err != nil {
		if stopping(ctx) {
			return ctx.Err()
		}
		r.c.RPMOutput = out
		return stepErr(ErrPreflight, false, "rpm --test refused the transaction: %w", err)
	}
	return nil
}

func (r *runner) newFiles() []string {
	var fs []string
	for _, p := range r.c.Packages {
		fs = append(fs, p.New.File)
	}
	return fs
}

// apply imports the pinned keys and runs the one rpm -U transaction. When
// rpm fails, the database says whether it changed anything.
func (r *runner) apply(ctx context.Context) (Phase, error) {
	if out, err := r.rpm.ImportKeys(ctx, r.c.Keys...); err != nil {
		if stopping(ctx) {
			return Applying, ctx.Err()
		}
		r.c.RPMOutput = out
		return Failed, stepErr(ErrApply, false, "import pinned keys: %w", err)
	}
	// The transaction is not cancelled with ctx: killing rpm half way
	// through would leave exactly the mix the journal exists to avoid.
	out, err := r.rpm.Upgrade(context.WithoutCancel(ctx), r.newFiles()...)
	r.c.RPMOutput = out
	crashPoint("applied")
	if err == nil {
		return HealthCheck, nil
	}
	applyErr := stepErr(ErrApply, false, "%w", err)
	st, _, serr := r.dbState()
	if serr != nil {
		return Failed, applyErr
	}
	switch {
	case st == allNew:
		r.note("rpm failed but every new version is installed")
		return HealthCheck, nil
	case st == allOld:
		return Failed, applyErr
	default:
		return RollingBack, applyErr
	}
}

func (r *runner) health(ctx context.Context) (Phase, error) {
	res, ok, err := runHealth(ctx, r.c.Root, r.c.HealthChecks)
	if (err != nil || !ok) && stopping(ctx) {
		// A check killed because the agent stops says nothing about the
		// update: the checks run again at the next start.
		return HealthCheck, ctx.Err()
	}
	r.c.Health = res
	if err != nil {
		return RollingBack, stepErr(ErrHealth, false, "%w", err)
	}
	if !ok {
		var bad []string
		for _, h := range res {
			if !h.OK {
				bad = append(bad, fmt.Sprintf("%s exited %d", h.Check, h.ExitCode))
			}
		}
		return RollingBack, stepErr(ErrHealth, false, "health check failed: %s", strings.Join(bad, ", "))
	}
	return Committed, nil
}

// rollback reinstalls the previous versions, unless the database already
// holds them (a rollback finished before an interruption), and checks
// health again.
func (r *runner) rollback(ctx context.Context) (Phase, error) {
	_, notOld, err := r.dbState()
	if err != nil {
		return Failed, stepErr(ErrRollback, false, "read rpm database: %w", err)
	}
	// Only the packages not at their previous version are reinstalled:
	// after a transaction cut half way, the others are still there, and
	// rpm would refuse to install them again.
	var files, missing []string
	for _, i := range notOld {
		p := r.c.Packages[i]
		if p.Old == nil {
			missing = append(missing, p.Name+"-"+p.From+"."+p.Arch)
			continue
		}
		files = append(files, p.Old.File)
	}
	if len(missing) > 0 {
		return Failed, stepErr(ErrRollback, false, "cannot roll back, no previous version of %s (applied with --no-rollback)", strings.Join(missing, ", "))
	}
	if len(files) > 0 {
		if err := r.verifyAll(true); err != nil {
			return Failed, stepErr(ErrRollback, false, "rollback set: %w", err)
		}
		// The keys are imported again: a cycle resumed after a cut
		// transaction may never have reached the import in apply.
		if out, err := r.rpm.ImportKeys(ctx, r.c.Keys...); err != nil {
			if stopping(ctx) {
				return RollingBack, ctx.Err()
			}
			r.c.RollbackOutput = out
			return Failed, stepErr(ErrRollback, false, "import pinned keys: %w", err)
		}
		out, err := r.rpm.Rollback(context.WithoutCancel(ctx), files...)
		r.c.RollbackOutput = out
		if err != nil {
			return Failed, stepErr(ErrRollback, false, "%w", err)
		}
	} else {
		r.note("the previous versions were already installed")
	}
	res, ok, err := runHealth(ctx, r.c.Root, r.c.HealthChecks)
	if (err != nil || !ok) && stopping(ctx) {
		return RollingBack, ctx.Err()
	}
	r.c.HealthAfterRollback = res
	if err != nil {
		return Failed, stepErr(ErrRollback, false, "health after rollback: %w", err)
	}
	return RolledBack, stepErr(ErrRollback, false, "rolled back: %s", r.c.Error)
}

type dbVerdict int

const (
	allOld dbVerdict = iota + 1
	allNew
	mixed
)

// dbState reads the database and says whether it holds the previous
// versions of every planned package, the new ones, or a mix; notOld lists
// the packages (indices into Packages) not at their previous version.
func (r *runner) dbState() (v dbVerdict, notOld []int, err error) {
	pkgs, err := r.installed()
	if err != nil {
		return 0, nil, err
	}
	nNew, nOld := 0, 0
	for i, p := range r.c.Packages {
		to, _ := rpmver.ParseEVR(p.To)
		from, _ := rpmver.ParseEVR(p.From)
		isNew, isOld := false, false
		for _, ip := range pkgs {
			if ip.Name != p.Name || ip.Arch != p.Arch {
				continue
			}
			isNew = isNew || rpmver.Compare(ip.EVR, to) == 0
			isOld = isOld || rpmver.Compare(ip.EVR, from) == 0
		}
		if isNew {
			nNew++
		}
		if isOld {
			nOld++
		} else {
			notOld = append(notOld, i)
		}
	}
	switch n := len(r.c.Packages); {
	case nNew == n && nOld == 0:
		return allNew, notOld, nil
	case nOld == n && nNew == 0:
		return allOld, notOld, nil
	}
	return mixed, notOld, nil
}

// resume settles a cycle an earlier run left unfinished. The journal says
// which step may have been cut short; the rpm database says what really
// happened: before Applying nothing was installed and the cycle carries on
// (downloads resume from their .part files, every check runs again); in
// Applying, a database holding the new versions means rpm finished, so the
// cycle goes on to the health check, the old versions mean rpm changed
// nothing, so the transaction runs (once), and a mix is rolled back; in
// HealthCheck the checks run again; in RollingBack the rollback is finished.
func (r *runner) resume(ctx context.Context) ([]string, error) {
	c := r.c
	if c.Phase.Final() {
		r.st.Active = 0
		return nil, r.j.SaveState(r.st)
	}
	st, _, err := r.dbState()
	if err != nil {
		return nil, fmt.Errorf("resume cycle %d: read rpm database: %w", c.ID, err)
	}
	add := func(s string) {
		c.Recovery = append(c.Recovery, fmt.Sprintf("%s: interrupted in %s; %s", time.Now().UTC().Format(time.RFC3339), c.Phase, s))
	}
	switch c.Phase {
	case Planned, Downloading, Verifying, Preflight:
		if st != allOld {
			add("the rpm database no longer holds the planned-from versions; the plan is stale")
			c.Error, c.ErrorClass = "rpm database changed under an unfinished cycle", "plan"
			if err := r.next(Failed, "stale plan"); err != nil {
				return nil, err
			}
			return r.finish(stepErr(ErrPlan, false, "%s", c.Error))
		}
		add("nothing was installed; carrying on from this step")
	case Applying:
		switch st {
		case allNew:
			add("the rpm database holds every new version: the transaction had completed")
			if err := r.next(HealthCheck, "recovered: transaction had completed"); err != nil {
				return nil, err
			}
		case allOld:
			add("the rpm database holds the previous versions: the transaction had not run; running it once")
		default:
			add("the rpm database holds a mix of old and new versions; rolling back")
			c.Error, c.ErrorClass = "transaction interrupted half way", "apply"
			if err := r.next(RollingBack, "recovered: half-applied"); err != nil {
				return nil, err
			}
		}
	case HealthCheck:
		add("running the health checks again")
	case RollingBack:
		add("finishing the rollback")
	}
	if err := r.j.SaveCycle(c); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

// stopping reports whether ctx has ended: the agent is stopping, so a
// command or download it cut short is no verdict on the update. The step
// returns ctx.Err() instead, the journal keeps the cycle at that step, and
// the next start runs it again (resume). Only rpm transactions themselves
// are never cut: they run without ctx's cancellation.
func stopping(ctx context.Context) bool { return ctx.Err() != nil }

func freeBytes(path string) (int64, error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(path, &s); err != nil {
		return 0, err
	}
	return int64(s.Bavail) * int64(s.Bsize), nil
}
