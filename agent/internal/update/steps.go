package update

// The cycle's steps, each classed by the error it fails with (errors.go):
// download, pin, verify, preflight, apply, health check and rollback.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rpmfleet/rpmfleet/agent/internal/verify"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

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
		at, err := f.fetchAny(ctx, append([]string{a.URL}, a.Mirrors...), a.File, a.Checksum, a.Size)
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

// pin copies Options.Pins onto the planned packages, refusing a plan that
// would install another build of a pinned package than the one pinned.
func pin(pkgs []Package, pins map[rpmver.Key]string) error {
	if len(pins) == 0 {
		return nil
	}
	byNameArch := map[string]rpmver.Key{}
	for k := range pins {
		n := k.NEVRA()
		byNameArch[n.Name+"."+n.Arch] = k
	}
	for i := range pkgs {
		p := &pkgs[i]
		n, err := rpmver.ParseNEVRA(p.New.NEVRA)
		if err != nil {
			return stepErr(ErrPlan, false, "planned package %q: %w", p.New.NEVRA, err)
		}
		sum, ok := pins[n.Key()]
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
		v := Verdict{NEVRA: want.Short(), File: a.File, Rollback: rollback}
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
	if out, err := r.testTransaction(ctx); err != nil {
		if stopping(ctx) {
			return ctx.Err()
		}
		r.c.RPMOutput = out
		return stepErr(ErrPreflight, false, "rpm --test refused the transaction: %w", err)
	}
	return nil
}

// apply imports the pinned keys and runs the one rpm -U transaction (and
// rpm -i of install-only packages, installonly.go). When rpm fails, the
// database says whether it changed anything.
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
	out, err := r.transaction(context.WithoutCancel(ctx))
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
	var erase []int
	for _, i := range notOld {
		p := r.c.Packages[i]
		if p.InstallOnly {
			// Beside the previous instance: erasing the new one is the
			// way back.
			erase = append(erase, i)
			continue
		}
		if p.Old == nil {
			missing = append(missing, p.installedName())
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
	}
	if err := r.eraseNew(context.WithoutCancel(ctx), erase); err != nil {
		return Failed, stepErr(ErrRollback, false, "%w", err)
	}
	if len(files)+len(erase) == 0 {
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

func freeBytes(path string) (int64, error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(path, &s); err != nil {
		return 0, err
	}
	return int64(s.Bavail) * int64(s.Bsize), nil
}
