package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// Checkpoints. In WAL mode a commit appends pages to the log; a
// checkpoint copies them into the database file and syncs it. SQLite runs
// one by default inside the commit that grows the log past 1,000 pages,
// so one report in a few hundred waited for a copy and two fsyncs. Here the
// writer never checkpoints: a goroutine with its own connection does, a
// moment after writes, while the writer goes on (a PASSIVE checkpoint
// waits for no one). When the log has grown large because the writer
// never paused, a RESTART checkpoint waits for the writer once and lets
// the log start over.
const (
	checkpointDelay = 200 * time.Millisecond
	// restartFrames is the log size (4 KiB pages) past which a
	// checkpoint restarts the log: 32 MiB. A reader looks every page up
	// in the log's index first, so a long log slows every query.
	restartFrames = 8192
)

type checkpoints struct {
	db    *sql.DB
	dirty chan struct{} // a write committed since the last checkpoint
	stop  chan struct{}
	done  sync.WaitGroup
}

func newCheckpoints(db *sql.DB) *checkpoints {
	c := &checkpoints{db: db, dirty: make(chan struct{}, 1), stop: make(chan struct{})}
	c.done.Add(1)
	go c.run()
	return c
}

// wrote tells the checkpointer a write committed.
func (c *checkpoints) wrote() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

func (c *checkpoints) run() {
	defer c.done.Done()
	mode := "PASSIVE"
	for {
		select {
		case <-c.dirty:
		case <-c.stop:
			return
		}
		select {
		case <-time.After(checkpointDelay):
		case <-c.stop:
			return
		}
		var busy, log, copied int
		err := c.db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &log, &copied)
		// A failed checkpoint is harmless: the log keeps every page, and
		// the next one tries again.
		mode = "PASSIVE"
		if err == nil && log > restartFrames {
			mode = "RESTART"
			c.wrote()
		}
	}
}

// close stops the checkpointer and checkpoints what is left.
func (c *checkpoints) close() error {
	close(c.stop)
	c.done.Wait()
	_, err := c.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
	if err != nil {
		c.db.Close()
		return err
	}
	return c.db.Close()
}
