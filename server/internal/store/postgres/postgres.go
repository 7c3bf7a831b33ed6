// Package postgres opens rpmfleet's store on PostgreSQL through pgx's
// connection pool, for fleets that outgrow the embedded SQLite or run
// several server replicas.
//
// Transactions run at READ COMMITTED. What must not race is guarded in the
// statements themselves (an enrolment token is spent by an UPDATE whose
// WHERE re-checks the uses left; a device's reports queue on its row lock;
// package sets and report ids are inserted ON CONFLICT), and a transaction
// PostgreSQL aborts for a deadlock or serialization failure is run again.
// Migrations take an advisory lock, so replicas starting together apply
// each migration once.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key migrations hold ("rpmf").
const migrationLock = `SELECT pg_advisory_xact_lock(1919053158)`

// maxAttempts bounds how often a transaction aborted for a conflict runs.
const maxAttempts = 8

// Open connects to the database at url ("postgres://user@host/db"),
// applies the migrations it lacks, and returns the store.
func Open(ctx context.Context, url string) (*sqlstore.Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	// The store's queries are short index walks. Without statistics
	// (a fresh database, before autovacuum analyzed it) the planner
	// overestimates them and JIT-compiles them, which cost the CVE
	// question more than answering it.
	if _, ok := cfg.ConnConfig.RuntimeParams["jit"]; !ok {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect %s: %w", cfg.ConnConfig.Host, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	d := &db{pool: pool}
	if err := sqlstore.Migrate(ctx, d, migrations, "migrations", migrationLock); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	// Reports are batched into transactions (group commit), several
	// batches at once: PostgreSQL runs writers in parallel, and a batch
	// aborted by a conflict with another is run again (Conflict).
	return sqlstore.New(d, sqlstore.Options{Writers: writers}), nil
}

// writers is how many report batches are written at once.
const writers = 4

// Conflict reports whether err aborted a statement for a conflict with
// another transaction; sqlstore then runs the whole batch again.
func (d *db) Conflict(err error) bool { return retryable(err) }

// db is a sqlstore.DB over a pgx pool.
type db struct {
	pool *pgxpool.Pool
}

func (d *db) Write(ctx context.Context, fn func(sqlstore.Conn) error) error {
	var err error
	for attempt := range maxAttempts {
		err = d.run(ctx, pgx.TxOptions{}, fn)
		if !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
		}
	}
	return err
}

func (d *db) Read(ctx context.Context, fn func(sqlstore.Conn) error) error {
	return d.run(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly}, fn)
}

func (d *db) run(ctx context.Context, opts pgx.TxOptions, fn func(sqlstore.Conn) error) error {
	tx, err := d.pool.BeginTx(ctx, opts)
	if err != nil && connectionLost(err) {
		// Nothing was done: begin again on a new connection.
		d.pool.Reset()
		tx, err = d.pool.BeginTx(ctx, opts)
	}
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(conn{tx}); err != nil {
		return full(errors.Join(err, ignoreClosed(tx.Rollback(context.WithoutCancel(ctx)))))
	}
	if err := tx.Commit(ctx); err != nil {
		return full(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// full marks PostgreSQL's disk_full (53100) with store.ErrStorageFull,
// so the API refuses the request as such (507); the transaction was
// rolled back.
func full(err error) error {
	if isFull(err) && !errors.Is(err, store.ErrStorageFull) {
		return fmt.Errorf("%w: %w", store.ErrStorageFull, err)
	}
	return err
}

func isFull(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "53100"
}

// Full reports whether err is PostgreSQL's disk_full (sqlstore.Fuller).
func (d *db) Full(err error) bool { return isFull(err) }

func ignoreClosed(err error) error {
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return err
}

// connectionLost reports whether err says the pool's connection is gone:
// the server ended it (admin_shutdown, crash_shutdown or
// cannot_connect_now, as a restart or failover does to every session), or
// it broke before the request was sent. The pool finds its other
// connections dead only one use at a time, each failing a request, so a
// caller that sees this resets the pool (pgxpool.Pool.Reset) before it
// tries again.
func connectionLost(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	return pgconn.SafeToRetry(err)
}

// retryable reports whether PostgreSQL aborted the transaction for a
// conflict with another: serialization_failure or deadlock_detected.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func (d *db) Close() error {
	d.pool.Close()
	return nil
}

type conn struct{ tx pgx.Tx }

func (c conn) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := c.tx.Exec(ctx, rebind(q), args...)
	return tag.RowsAffected(), err
}

func (c conn) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	return c.tx.Query(ctx, rebind(q), args...)
}

func (c conn) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	return c.tx.QueryRow(ctx, rebind(q), args...)
}

// rebound caches rebind's results: the store's queries are a fixed set.
var rebound sync.Map

// rebind numbers the '?' placeholders of q as $1, $2, ...; the store's
// queries carry no '?' inside string literals.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	if r, ok := rebound.Load(q); ok {
		return r.(string)
	}
	var b strings.Builder
	n := 0
	for _, part := range strings.SplitAfter(q, "?") {
		if strings.HasSuffix(part, "?") {
			n++
			b.WriteString(part[:len(part)-1])
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteString(part)
	}
	r := b.String()
	rebound.Store(q, r)
	return r
}
