package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Group commit. Reports are not written one transaction each: a report
// joins a queue, and a writer takes every report waiting (up to MaxBatch)
// into one transaction. A report that fails is answered with its error
// alone and leaves nothing; the others commit (writeBatch says how,
// with savepoints only when one is needed). Every caller is answered only after the transaction
// holding its report has committed, so an acknowledged report is in the
// database (for SQLite, in its write-ahead log) before the device hears
// of it. A commit that fails answers every report of the batch with the
// error; none of them was acknowledged, and the devices send them again.
//
// SQLite has one writer, so batching is what amortises a commit and the
// writer's hand-over over many reports; PostgreSQL gets fewer commits too,
// and several writers (Options.Writers) to keep its connections busy.

// Options tune a Store.
type Options struct {
	// Writers is how many report transactions may be open at once: 1 for
	// a single-writer database (SQLite); more where the database runs
	// writers in parallel (PostgreSQL). Zero means 1.
	Writers int
	// MaxBatch bounds the reports written in one transaction. Zero means
	// DefaultMaxBatch.
	MaxBatch int
}

// DefaultMaxBatch is the batch bound when Options gives none.
const DefaultMaxBatch = 64

// Conflicter is implemented by a DB that can tell an error that aborted a
// statement for a conflict with another transaction (PostgreSQL's
// deadlock or serialization failure). A report failing so is not failed
// alone: its whole batch is run again, as DB.Write runs again any
// transaction aborted for a conflict.
type Conflicter interface {
	Conflict(err error) bool
}

// Fuller is implemented by a DB that can tell an error of a full disk. A
// report refused for one is answered wrapping store.ErrStorageFull,
// whether it failed alone, in a batch behind a savepoint, or at commit.
type Fuller interface {
	Full(err error) bool
}

// reportReq is one report waiting for a writer.
type reportReq struct {
	ctx      context.Context
	deviceID string
	r        *protocol.Report
	now      time.Time
	match    store.MatchFunc
	full     []protocol.Package // a full inventory, sorted and checked
	// from and after are a delta's prediction: applied to the set with
	// digest from, it makes after, whose digest the report's is.
	from  string
	after []protocol.Package
	// pre is the match of the set the report makes, worked out by
	// prepare when the store did not know that set.
	pre *matched
	// digest is the set the report leaves the device on, set by report;
	// touched is set once report changed anything.
	digest  string
	touched bool
	done    chan reportResult // buffered: the writer never waits on it
}

type reportResult struct {
	resp protocol.ReportResponse
	err  error
}

// errClosed answers reports sent to a closed store.
var errClosed = errors.New("sqlstore: store closed")

// writer takes batches off the queue until the store closes.
func (s *Store) writer() {
	defer s.writers.Done()
	for {
		var first *reportReq
		select {
		case first = <-s.queue:
		case <-s.stop:
			return
		}
		batch := append(make([]*reportReq, 0, s.opts.MaxBatch), first)
		batch = s.gather(batch)
		s.writeBatch(batch)
	}
}

// gather adds the reports already waiting to batch. It does not wait for
// more: the reports that arrive while a batch is written make the next
// one, and under load that is batching enough (with 4 reporters or 16, the
// writer's own work is the limit; docs/benchmarks.md).
func (s *Store) gather(batch []*reportReq) []*reportReq {
	for len(batch) < s.opts.MaxBatch {
		select {
		case q := <-s.queue:
			batch = append(batch, q)
		default:
			return batch
		}
	}
	return batch
}

// writeBatch writes the reports of batch in one transaction and answers
// each. It first writes them with no savepoints, which cost two statements
// a report: a duplicate or a device unknown is found by a report's first
// statement, before it changed anything, and is answered without undoing
// anything. Any other failure rolls the whole batch back, and it is
// written again with a savepoint around each report, so the failure is
// that report's alone.
func (s *Store) writeBatch(batch []*reportReq) {
	res, err := s.runBatch(batch, len(batch) == 1)
	if errors.Is(err, errUseSavepoints) {
		res, err = s.runBatch(batch, true)
	}
	for i, q := range batch {
		r := res[i]
		if err != nil {
			r = reportResult{err: fmt.Errorf("write batch of %d reports: %w", len(batch), err)}
		} else if r.err == nil && !r.resp.Duplicate && q.digest != "" {
			s.remember(q.deviceID, q.digest)
		}
		q.done <- r
	}
}

// errUseSavepoints ends a batch written without savepoints in which a
// report failed after changing something.
var errUseSavepoints = errors.New("sqlstore: a report failed; write the batch with savepoints")

// runBatch writes batch in one transaction, with a savepoint around each
// report when savepoints is true (a batch of one needs none: the
// transaction holds nothing else to keep).
func (s *Store) runBatch(batch []*reportReq, savepoints bool) ([]reportResult, error) {
	ctx := context.Background()
	res := make([]reportResult, len(batch))
	conflict := func(error) bool { return false }
	if c, ok := s.db.(Conflicter); ok {
		conflict = c.Conflict
	}
	alone := len(batch) == 1
	err := s.db.Write(ctx, func(c Conn) error {
		for i, q := range batch {
			res[i] = reportResult{}
			if err := q.ctx.Err(); err != nil {
				res[i].err = err // the caller gave up: not written, not acknowledged
				continue
			}
			if savepoints && !alone {
				if _, err := c.Exec(ctx, `SAVEPOINT report`); err != nil {
					return err
				}
			}
			q.touched = false
			err := s.report(ctx, c, q, &res[i].resp)
			switch {
			case err == nil:
			case conflict(err):
				return err // the whole batch runs again
			case !q.touched && (errors.Is(err, errDuplicate) || errors.Is(err, store.ErrNotFound)):
				// Found before the report changed anything.
				res[i] = reportResult{err: err}
				if errors.Is(err, errDuplicate) {
					res[i].resp, res[i].err = duplicate(ctx, c, q.deviceID)
				}
			case alone:
				return errAlone{err}
			case !savepoints:
				return errUseSavepoints
			default:
				if _, rerr := c.Exec(ctx, `ROLLBACK TO SAVEPOINT report`); rerr != nil {
					return errors.Join(err, rerr)
				}
				res[i] = reportResult{err: err}
			}
			if savepoints && !alone {
				if _, err := c.Exec(ctx, `RELEASE SAVEPOINT report`); err != nil {
					return err
				}
			}
		}
		return nil
	})
	var a errAlone
	if errors.As(err, &a) {
		// The transaction held only this report, and rolled back. A
		// failed rollback joined to it would be lost here; the database
		// reports it again on the next transaction.
		res[0], err = reportResult{err: a.err}, nil
	}
	return res, err
}

// errAlone carries the failure of a report alone in its batch out of the
// transaction it rolled back, to be answered as its own.
type errAlone struct{ err error }

func (e errAlone) Error() string { return e.err.Error() }
func (e errAlone) Unwrap() error { return e.err }

// duplicate answers a report whose id the device already used.
func duplicate(ctx context.Context, c Conn, deviceID string) (protocol.ReportResponse, error) {
	var stale int
	if err := c.QueryRow(ctx, `SELECT inventory_stale FROM devices WHERE id = ?`, deviceID).Scan(&stale); err != nil {
		return protocol.ReportResponse{}, err
	}
	return protocol.ReportResponse{Duplicate: true, NeedFullInventory: stale != 0}, nil
}
