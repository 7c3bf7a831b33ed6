package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff paces retries: after the n-th failure in a row (n from 1) Drain
// waits a uniformly random time in [0, min(Max, Min*2^(n-1))), "full jitter",
// so that devices that lost the server together do not come back together.
type Backoff struct {
	// Min is the first ceiling (1 s when 0), Max the largest (10 min when 0).
	Min, Max time.Duration
	// Jitter returns a uniform random number in [0, n); math/rand/v2's
	// Int64N when nil.
	Jitter func(n int64) int64
	// Sleep waits d or until ctx is done; a timer when nil.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Delay is the wait after the n-th failure in a row.
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = 10 * time.Minute
	}
	ceiling := hi
	if n < 1 {
		n = 1
	}
	if n-1 < 62 && lo <= hi>>(n-1) {
		ceiling = lo << (n - 1)
	}
	jitter := b.Jitter
	if jitter == nil {
		jitter = rand.Int64N
	}
	return time.Duration(jitter(int64(ceiling)))
}

func (b Backoff) sleep(ctx context.Context, d time.Duration) error {
	if b.Sleep != nil {
		return b.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Drain delivers the queue's reports in order, oldest first, until ctx is
// done, waiting for new ones when it is empty. send delivers one report and
// returns nil once the server acknowledged it; Drain then removes it. On an
// error Drain retries the same report, with the same id, after a Backoff
// delay; an error wrapping ErrRejected moves the report to bad/ instead.
// Drain returns nil when ctx is done, and an error only when the queue's
// folder fails.
func (q *Queue) Drain(ctx context.Context, send func(*Item) error) error {
	failures := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		it, err := q.Peek()
		if errors.Is(err, ErrEmpty) {
			select {
			case <-ctx.Done():
				return nil
			case <-q.notify:
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		err = send(it)
		switch {
		case err == nil:
			failures = 0
			// ErrNotFound: the report was collapsed into a resync while it
			// was being sent; the server has it anyway.
			if err := q.Ack(it.ID); err != nil && !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("drain: %w", err)
			}
		case errors.Is(err, ErrRejected):
			failures = 0
			if err := q.reject(it.ID, err.Error()); err != nil {
				return fmt.Errorf("drain: %w", err)
			}
		default:
			failures++
			d := q.opts.Backoff.Delay(failures)
			q.log.Info("report not delivered, will retry", "id", it.ID, "kind", it.Kind, "failures", failures, "retry_in", d, "err", err)
			if q.opts.Backoff.sleep(ctx, d) != nil {
				return nil
			}
		}
	}
}
