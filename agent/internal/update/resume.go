package update

// Resuming a cycle a crash or a stop left unfinished: the journal says
// which step was cut short, the rpm database what really happened.

import (
	"context"
	"fmt"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

type dbVerdict int

const (
	allOld dbVerdict = iota + 1
	allNew
	mixed
)

// dbState reads the database and says whether it holds the previous
// versions of every planned package, the new ones, or a mix; notOld lists
// the packages (indices into Packages) not at their previous version (for
// an install-only package: whose new instance is installed).
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
		if p.InstallOnly {
			// Installed beside the previous instance, which stays: the
			// package is at its previous state while the new one is
			// absent.
			isOld = !isNew
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
			stale := stepErr(ErrPlan, false, "rpm database changed under an unfinished cycle")
			c.Error, c.ErrorClass = stale.Error(), className(stale)
			if err := r.next(Failed, "stale plan"); err != nil {
				return nil, err
			}
			return r.finish(stale)
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
			cut := stepErr(ErrApply, false, "transaction interrupted half way")
			c.Error, c.ErrorClass = cut.Error(), className(cut)
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
