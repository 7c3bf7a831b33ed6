package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Replicas tells the other server replicas that share this service's store
// (PostgreSQL) what this one changed that they hold in memory. Only the
// advisory index is such a thing: plans, CVE answers, devices and tokens
// are read from the store at every request.
type Replicas interface {
	// AdvisoriesChanged says an import that started at started changed
	// stored advisories; each other replica calls ReloadAdvisories with
	// it.
	AdvisoriesChanged(ctx context.Context, started time.Time) error
}

// Rematcher matches again the package sets stored since a time
// (sqlstore.Store.Rematch).
type Rematcher interface {
	Rematch(ctx context.Context, since time.Time, match store.MatchFunc) (int, error)
}

// RematchMargin is how long before another replica's import started the
// sets matched again after it begin: room for the replicas' clocks to
// differ.
const RematchMargin = 10 * time.Second

// announceImport tells the other replicas an import changed advisories.
// A failure is logged, not returned: the import stands, and the others
// reload when they next connect (a replica also reloads after every lost
// connection to its notifications).
func (s *Service) announceImport(ctx context.Context, started time.Time, changed int) {
	if s.opts.Replicas == nil || changed == 0 {
		return
	}
	if err := s.opts.Replicas.AdvisoriesChanged(context.WithoutCancel(ctx), started); err != nil {
		s.log.Warn("other replicas not told of the import; they reload when they reconnect", "err", err)
	}
}

// ReloadAdvisories reads every stored advisory again and rebuilds the
// index reports are matched against: what a replica does when another
// imported. It holds the service's lock for writing only to swap the
// index in, so reports wait for the swap, not for the read.
//
// A report this replica took while the other's import ran was matched
// against the index before the import; if it stored a new package set
// after the import's own matching read the sets, that set lacks the
// import. So when since is not zero (the import's start, less
// RematchMargin), the sets stored since then are matched again with the
// new index (Rematcher). The swap waited for every report holding the old
// index to be committed, so none is missed.
func (s *Service) ReloadAdvisories(ctx context.Context, since time.Time) error {
	l, ok := s.st.(AdvisoryLoader)
	if !ok {
		return nil
	}
	vs, err := l.LoadAdvisories(ctx)
	if err != nil {
		return fmt.Errorf("reload advisories: %w", err)
	}
	advs := map[string]store.Variants{}
	for _, v := range vs {
		advs[v.ID], _ = advs[v.ID].With(v)
	}
	m := newMatcher(variantsOf(advs, nil))
	s.mu.Lock()
	s.advs, s.m = advs, m
	s.mu.Unlock()
	s.log.Info("advisories reloaded", "count", len(advs), "variants", len(vs))
	r, ok := s.st.(Rematcher)
	if since.IsZero() || !ok {
		return nil
	}
	// Held for reading, as a report holds it: an import here waits.
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, err := r.Rematch(ctx, since, s.m.match)
	if err != nil {
		return fmt.Errorf("reload advisories: %w", err)
	}
	s.log.Info("package sets matched again after another replica's import", "sets", n, "since", since)
	return nil
}
