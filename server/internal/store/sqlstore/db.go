// Package sqlstore implements store.Store once, over any SQL database that
// speaks the common subset SQLite and PostgreSQL share (INSERT ... ON
// CONFLICT, RETURNING). The dialect packages, store/sqlite and
// store/postgres, supply the connections (a DB) and the schema migrations;
// everything the store decides (delta inventories, package-set dedup,
// status transitions, idempotency) lives here, written once and exercised
// by the conformance suite against both.
//
// Queries use '?' placeholders; a DB for a database that numbers them
// rewrites the query.
package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Conn runs statements inside one transaction.
type Conn interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow runs a query expected to return at most one row; Scan
	// returns an error that errors.Is sql.ErrNoRows when there is none.
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Rows is a query's result, read one row at a time. A Conn may not run
// another statement until Rows is closed.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is a single row.
type Row interface {
	Scan(dest ...any) error
}

// DB runs transactions.
type DB interface {
	// Write runs fn in a read-write transaction and commits it when fn
	// returns nil; otherwise it rolls back and returns fn's error. A
	// transaction the database aborted for a conflict (serialization
	// failure, deadlock) may be retried by running fn again.
	Write(ctx context.Context, fn func(Conn) error) error
	// Read runs fn in a read-only transaction.
	Read(ctx context.Context, fn func(Conn) error) error
	Close() error
}

// Migrate applies the migrations in dir of fsys that the database lacks,
// in the order of their numbers, each in one transaction together with its
// row in schema_migrations. Files are named NNNN_what.sql. lock is a
// statement run first in each transaction to keep two servers from
// migrating at once ("" when the DB's write transactions are already
// exclusive, as SQLite's are).
func Migrate(ctx context.Context, db DB, fsys fs.FS, dir, lock string) error {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	type migration struct {
		version int
		name    string
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return fmt.Errorf("migration %s: name is not NNNN_what.sql", e.Name())
		}
		ms = append(ms, migration{v, e.Name()})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name    TEXT NOT NULL,
		applied BIGINT NOT NULL)`
	err = db.Write(ctx, func(c Conn) error {
		if lock != "" {
			if _, err := c.Exec(ctx, lock); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		_, err := c.Exec(ctx, create)
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range ms {
		body, err := fs.ReadFile(fsys, path.Join(dir, m.name))
		if err != nil {
			return fmt.Errorf("read migration %s: %w", m.name, err)
		}
		err = db.Write(ctx, func(c Conn) error {
			if lock != "" {
				if _, err := c.Exec(ctx, lock); err != nil {
					return fmt.Errorf("lock: %w", err)
				}
			}
			var n int
			err := c.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n)
			if err != nil || n > 0 {
				return err
			}
			if _, err := c.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err = c.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)`,
				m.version, m.name, time.Now().UnixMicro())
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
	}
	return nil
}

// errDuplicate ends a report transaction that found its id already applied.
var errDuplicate = errors.New("sqlstore: duplicate report")
