package update

// An apply with the repositories out of reach: download mode prefetched
// the packages (Prefetch) and kept the metadata it planned from
// (repo.Repo.Keep); Run, finding a repository unreachable, plans from that
// copy instead, and the cycle finds the packages already in the state dir.

import (
	"context"
	"errors"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/repo"
)

// DefaultPrefetchMaxAge is how old a prefetched copy of a repository's
// metadata may be and still be used: a week, the longest a device's
// weekly maintenance window leaves between the download and the apply. An
// older copy could withhold a week of fixes published since (a freeze
// attack, as TUF calls it), so it is refused and the apply fails as it
// would have with no copy.
const DefaultPrefetchMaxAge = 7 * 24 * time.Hour

// loadMetadata reads each repository's repomd.xml. One that cannot be
// reached (a network error or a timeout, repo.Unreachable) and has a kept
// copy is read from that copy, checked again as a fetched one is; any
// other failure (an answer that does not verify, above all) is the
// planning error it always was, never a reason to use the copy.
func (o *Options) loadMetadata(ctx context.Context, repos []*repo.Repo) error {
	maxAge := o.PrefetchMaxAge
	if maxAge <= 0 {
		maxAge = DefaultPrefetchMaxAge
	}
	for _, r := range repos {
		_, err := r.Metadata(ctx)
		if err == nil {
			continue
		}
		if ctx.Err() != nil || !repo.Unreachable(err) {
			return stepErr(ErrPlan, true, "%w", err)
		}
		age, kerr := r.UseKept(maxAge, time.Now())
		if errors.Is(kerr, repo.ErrNoKept) {
			return stepErr(ErrPlan, true, "%w", err)
		}
		if kerr != nil {
			return stepErr(ErrPlan, true, "%s cannot be reached (%v), and its prefetched copy is refused: %w", r, err, kerr)
		}
		o.Log.Info("repository unreachable: applying from the prefetched copy", "repo", r.String(),
			"age", age.Round(time.Second).String(), "err", err)
	}
	return nil
}
