// Package sqlite opens rpmfleet's store on an embedded SQLite database
// (modernc.org/sqlite, pure Go, so the server cross-builds without cgo).
//
// The database runs in WAL mode, so readers never wait for the writer.
// All writes go through one connection, whose transactions begin
// IMMEDIATE, so writers queue in the process instead of failing with
// SQLITE_BUSY; a second process (a backup, the sqlite3 shell) is waited for
// up to the busy timeout. Readers use a separate pool of query-only
// connections. synchronous=FULL makes a committed report survive a power
// cut, not only a crash of the process, at the price of an fsync per
// transaction.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"runtime"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// busyTimeoutMS is how long a connection waits for another process's lock.
const busyTimeoutMS = 10000

// Open opens (creating if needed) the database file at path, applies the
// migrations it lacks, and returns the store.
func Open(ctx context.Context, path string) (*sqlstore.Store, error) {
	db, err := open(path)
	if err != nil {
		return nil, err
	}
	if err := sqlstore.Migrate(ctx, db, migrations, "migrations", ""); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return sqlstore.New(db), nil
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeoutMS))
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "1")
	q.Set("_synchronous", "FULL")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func open(path string) (*db, error) {
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	// The writer connection creates the file and switches it to WAL before
	// any reader opens it.
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	return &db{w: w, r: r}, nil
}

// db is a sqlstore.DB over the writer and the reader pools.
type db struct {
	w, r *sql.DB
}

func (d *db) Write(ctx context.Context, fn func(sqlstore.Conn) error) error {
	return run(ctx, d.w, fn)
}

func (d *db) Read(ctx context.Context, fn func(sqlstore.Conn) error) error {
	return run(ctx, d.r, fn)
}

func run(ctx context.Context, pool *sql.DB, fn func(sqlstore.Conn) error) error {
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(conn{tx}); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

func (d *db) Close() error {
	return errors.Join(d.r.Close(), d.w.Close())
}

type conn struct{ tx *sql.Tx }

func (c conn) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := c.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (c conn) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	rows, err := c.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (c conn) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	return c.tx.QueryRowContext(ctx, q, args...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }
