// Package sqlite opens rpmfleet's store on an embedded SQLite database
// (modernc.org/sqlite, pure Go, so the server cross-builds without cgo).
//
// The database runs in WAL mode, so readers never wait for the writer.
// All writes go through one connection, whose transactions begin
// IMMEDIATE, so writers queue in the process instead of failing with
// SQLITE_BUSY; a second process (a backup, the sqlite3 shell) is waited for
// up to the busy timeout. Readers use a separate pool of query-only
// connections.
//
// Durability: synchronous=NORMAL. In WAL mode a committed transaction is in
// the WAL file when Commit returns, so a crash or kill -9 of the server
// loses no acknowledged report; only a power cut or kernel crash can lose
// the last transactions before a checkpoint. FULL would close that too at
// the price of an fsync per transaction, which on this project's test
// machine (about 9 ms each) capped ingest near 100 reports a second.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"

	"syscall"

	"modernc.org/sqlite" // also registers the "sqlite" driver

	"github.com/rpmfleet/rpmfleet/server/internal/store"
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
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	// One writer: reports are batched into its transactions (group
	// commit), which is what lets a single-writer database keep up.
	return sqlstore.New(db, sqlstore.Options{Writers: 1}), nil
}

// migrate applies the migrations with foreign keys off, as SQLite's way
// of changing a table (make the new one, copy, drop the old, rename)
// requires, and checks every foreign key before turning them on again.
func (d *db) migrate(ctx context.Context) error {
	<-d.sem
	defer func() { d.sem <- struct{}{} }()
	if _, err := d.w.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return err
	}
	d.sem <- struct{}{}
	err := sqlstore.Migrate(ctx, d, migrations, "migrations", "")
	<-d.sem
	if err != nil {
		return err
	}
	rows, err := d.w.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return err
	}
	var bad []string
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fk int
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			rows.Close()
			return err
		}
		bad = append(bad, fmt.Sprintf("%s row %d -> %s", table, rowid.Int64, parent))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("foreign keys broken after migrating: %s", strings.Join(bad, ", "))
	}
	_, err = d.w.ExecContext(ctx, `PRAGMA foreign_keys = ON`)
	return err
}

// The three kinds of connection the database has.
const (
	writer = iota
	reader
	checkpointer
)

func dsn(path string, mode int) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeoutMS))
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "1")
	q.Set("_synchronous", "NORMAL")
	// Statement journals and sort spills stay in memory rather than in
	// temporary files: writing a statement journal file for each of a
	// report's multi-row statements was the largest cost in its profile.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "cache_size(-32768)")
	switch mode {
	case reader:
		q.Set("_query_only", "1")
	case writer:
		q.Set("_txlock", "immediate")
		// The checkpointer's connection copies the log into the database,
		// so the writer's commits never do (checkpoint.go).
		q.Add("_pragma", "wal_autocheckpoint(0)")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func open(path string) (*db, error) {
	w, err := sql.Open("sqlite", dsn(path, writer))
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
	r, err := sql.Open("sqlite", dsn(path, reader))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	ck, err := sql.Open("sqlite", dsn(path, checkpointer))
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	ck.SetMaxOpenConns(1)
	d := &db{w: w, r: r, sem: make(chan struct{}, 1), stmts: map[string]*sql.Stmt{}, wanted: map[string]bool{},
		ck: newCheckpoints(ck)}
	d.sem <- struct{}{}
	return d, nil
}

// maxStmts bounds the writer's prepared statements. The store's
// statements are a fixed set but for multi-row inserts and IN lists,
// whose variants are few.
const maxStmts = 256

// db is a sqlstore.DB over one writer connection and a reader pool.
type db struct {
	// w has one connection, the writer; r is the pool of readers.
	w, r *sql.DB
	// sem is held by whoever uses the writer: one write transaction at a
	// time, waiting in the process rather than on SQLite's busy handler.
	// It also guards stmts and wanted.
	sem chan struct{}
	// stmts are the writer's prepared statements by query. Parsing and
	// planning a statement cost a report more than running it, so each
	// statement the writer runs is prepared once, between transactions
	// (a statement prepared on the DB is reused by a transaction on the
	// same, only, connection), and run prepared ever after.
	stmts  map[string]*sql.Stmt
	wanted map[string]bool // run unprepared in this transaction
	// ck checkpoints the log after writes.
	ck *checkpoints
}

func (d *db) Write(ctx context.Context, fn func(sqlstore.Conn) error) error {
	select {
	case <-d.sem:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { d.sem <- struct{}{} }()
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	err = finish(tx, fn(conn{tx: tx, d: d}))
	d.prepareWanted(ctx)
	if err == nil {
		d.ck.wrote()
	}
	return full(err)
}

// sqliteFull is SQLite's primary result code SQLITE_FULL: a write found
// the disk full (ENOSPC). A file size limit (EFBIG) is a disk I/O error to
// SQLite, not this.
const sqliteFull = 13

// full marks an error of a disk that is full with store.ErrStorageFull,
// so the API can refuse the request as such (507) instead of failing as
// an unknown error; SQLite rolled the transaction back, nothing of it is
// stored.
func full(err error) error {
	if err != nil && !errors.Is(err, store.ErrStorageFull) && isFull(err) {
		return fmt.Errorf("%w: %w", store.ErrStorageFull, err)
	}
	return err
}

func isFull(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqliteFull || errors.Is(err, syscall.ENOSPC)
}

// Full reports whether err is SQLite's SQLITE_FULL (sqlstore.Fuller).
func (d *db) Full(err error) bool { return isFull(err) }

// prepareWanted prepares the statements the last transaction ran
// unprepared, while the writer is idle. A statement that fails to prepare
// is simply run unprepared again next time.
func (d *db) prepareWanted(ctx context.Context) {
	for q := range d.wanted {
		delete(d.wanted, q)
		if len(d.stmts) >= maxStmts {
			continue
		}
		if st, err := d.w.PrepareContext(ctx, q); err == nil {
			d.stmts[q] = st
		}
	}
}

func (d *db) Read(ctx context.Context, fn func(sqlstore.Conn) error) error {
	tx, err := d.r.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	return finish(tx, fn(conn{tx: tx}))
}

func finish(tx *sql.Tx, err error) error {
	if err != nil {
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
	<-d.sem
	errs := []error{d.ck.close()}
	for _, st := range d.stmts {
		errs = append(errs, st.Close())
	}
	return errors.Join(append(errs, d.r.Close(), d.w.Close())...)
}

// conn runs statements in tx; d is set for the writer's transactions,
// whose statements are prepared once.
type conn struct {
	tx *sql.Tx
	d  *db
}

// stmt returns the prepared form of q for this transaction, or nil when
// it has none yet (and asks for it to be prepared).
func (c conn) stmt(ctx context.Context, q string) *sql.Stmt {
	if c.d == nil {
		return nil
	}
	if st, ok := c.d.stmts[q]; ok {
		return c.tx.StmtContext(ctx, st)
	}
	c.d.wanted[q] = true
	return nil
}

func (c conn) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	var res sql.Result
	var err error
	if st := c.stmt(ctx, q); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = c.tx.ExecContext(ctx, q, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (c conn) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	var rows *sql.Rows
	var err error
	if st := c.stmt(ctx, q); st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = c.tx.QueryContext(ctx, q, args...)
	}
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (c conn) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	if st := c.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.tx.QueryRowContext(ctx, q, args...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }
