package update

// Prefetch: download mode's half of a cycle.

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/rpmdb"
	"github.com/rpmfleet/rpmfleet/agent/internal/verify"
)

// Prefetched is what Prefetch fetched and checked.
type Prefetched struct {
	// Plan is the plan Run would make now for the same selection.
	Plan *Plan
	// Verdicts are the verification verdicts on every file, new packages
	// and rollback set.
	Verdicts []Verdict
}

// Prefetch plans a cycle for o.Select as Run would, then runs the cycle's
// own download and verify steps on it: the new packages and the rollback
// set are fetched into the state dir, checked against the repository
// metadata, the plan's SHA-256 pins and the pinned keys, and left where a
// later Run for the same packages finds them and downloads none again
// (fetch keeps a file that matches). The repository metadata it planned
// from (repomd.xml, its signature, primary and updateinfo) is kept too, for
// a Run that cannot reach the repository (offline.go). It holds the state dir's lock, and
// changes neither the rpm database nor the journal: no cycle is started,
// an interrupted one is left for Run to settle.
func Prefetch(ctx context.Context, o Options) (*Prefetched, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	j, err := OpenJournal(o.StateDir)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	_, absDB, err := dbPaths(o.Root, o.DBPath)
	if err != nil {
		return nil, err
	}
	installed, err := rpmdb.Read(absDB)
	if err != nil {
		return nil, err
	}
	st, err := j.State()
	if err != nil {
		return nil, err
	}
	repos, keys, err := o.repositories()
	if err != nil {
		return nil, err
	}
	fetched := time.Now()
	plan, err := makePlan(ctx, repos, installed, o.Select, st.SetAside)
	out := &Prefetched{Plan: plan}
	if err != nil || len(plan.Packages) == 0 {
		return out, err
	}
	if err := pin(plan.Packages, o.Pins); err != nil {
		return out, err
	}
	if len(keys) == 0 {
		return out, fmt.Errorf("%w: give --gpgkey", verify.ErrNoKeys)
	}
	// A cycle that is never saved: the same steps on the same files.
	c := &Cycle{Phase: Downloading, Started: time.Now().UTC(), Keys: keys, Packages: plan.Packages}
	for i := range c.Packages {
		p := &c.Packages[i]
		p.New.File = filepath.Join(o.StateDir, p.New.File)
		if p.Old != nil {
			p.Old.File = filepath.Join(o.StateDir, p.Old.File)
		}
	}
	r := &runner{o: &o, j: j, st: st, c: c, log: o.Log.With("prefetch", true)}
	if err := r.download(ctx); err != nil {
		return out, err
	}
	if err := r.verifyAll(false); err != nil {
		out.Verdicts = c.Verdicts
		return out, err
	}
	out.Verdicts = c.Verdicts
	// The metadata planned from, for an apply that finds the
	// repositories unreachable (offline.go).
	for _, rp := range repos {
		if err := rp.Keep(ctx, fetched, "primary", "updateinfo"); err != nil {
			return out, stepErr(ErrDownload, true, "%w", err)
		}
	}
	return out, nil
}
