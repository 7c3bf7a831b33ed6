package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Channel is the LISTEN/NOTIFY channel replicas tell each other on, with
// "_SCHEMA" after it when the store is not in schema public (channels and
// advisory locks are per database, tables per schema). A payload is
// small: "m:ID:ORIGIN" for a message stored in replica_messages
// (migration 0011), "a:ORIGIN:MICROS" for advisories changed by an import
// that started at MICROS (Unix microseconds).
const Channel = "rpmfleet_replica"

// Cluster is what several rpmfleet-server replicas on one database share
// besides the store: the notice sequence, the messages one replica
// publishes for the others to publish on their own brokers, the
// notifications that carry them, and the leader lock of the jobs that must
// run once. It holds a small pool of its own, and a dedicated connection
// for listening and one for each lock held, so a lost connection is seen
// as lost notifications (caught up on reconnect) or lost leadership.
type Cluster struct {
	cfg     *pgx.ConnConfig
	pool    *pgxpool.Pool
	id      string
	log     *slog.Logger
	channel string // Channel, for this schema
	schema  string

	// Retry is how long Listen and Lead wait before connecting again,
	// and how often Lead tries for a lock another replica holds, and
	// checks the one it holds.
	Retry time.Duration
}

// Message is what one replica published on its broker for the others.
type Message struct {
	ID       int64
	Origin   string
	Topic    string
	Payload  []byte
	Retained bool
	Created  time.Time
}

// OpenCluster connects to the database at url, whose migrations Open
// applied, as the replica called id (unique among the replicas: the
// host and process make one).
func OpenCluster(ctx context.Context, url, id string, log *slog.Logger) (*Cluster, error) {
	if id == "" || strings.Contains(id, ":") {
		return nil, fmt.Errorf("postgres: cluster: replica id %q is empty or holds ':'", id)
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: cluster: parse url: %w", err)
	}
	pcfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: cluster: connect: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: cluster: connect: %w", err)
	}
	channel := Channel
	if schema != "public" {
		channel += "_" + schema
	}
	return &Cluster{cfg: pcfg.ConnConfig, pool: pool, id: id, log: log.With("component", "cluster", "replica", id),
		channel: channel, schema: schema, Retry: 2 * time.Second}, nil
}

// ID is this replica's name among the others.
func (c *Cluster) ID() string { return c.id }

// Close closes the cluster's pool; Listen and Lead end with their context.
func (c *Cluster) Close() { c.pool.Close() }

// NextSeq returns the next notice sequence number (notice.SignerOptions.Seq):
// one sequence for every replica, every kind and every device, so what
// any replica signs for a device is numbered after what another signed
// before. A sequence is never rolled back, so a number is never given
// twice.
func (c *Cluster) NextSeq(ctx context.Context) (uint64, error) {
	var n int64
	err := c.again(func() error { return c.pool.QueryRow(ctx, `SELECT nextval('notice_seq')`).Scan(&n) })
	if err != nil {
		return 0, fmt.Errorf("postgres: notice sequence: %w", err)
	}
	return uint64(n), nil
}

// Publish stores a message this replica published on its own broker and
// tells the others, in one transaction: a NOTIFY is delivered at commit,
// so a listener always finds the row.
func (c *Cluster) Publish(ctx context.Context, topic string, payload []byte, retained bool, now time.Time) (int64, error) {
	var id int64
	// Run again on a lost connection: when the first commit did land
	// after all, the others publish the message twice, and a device
	// drops the second copy of a signed notice as a replay.
	err := c.again(func() error {
		return pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `INSERT INTO replica_messages (origin, topic, payload, retained, created)
				VALUES ($1, $2, $3, $4, $5) RETURNING id`, c.id, topic, payload, retained, now.UnixMicro()).Scan(&id); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, c.channel, "m:"+strconv.FormatInt(id, 10)+":"+c.id)
			return err
		})
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: tell the replicas of %s: %w", topic, err)
	}
	return id, nil
}

// again runs fn, and once more on a new connection when the first failed
// because PostgreSQL ended the pool's connection (a restart): fn must be
// safe to run twice.
func (c *Cluster) again(fn func() error) error {
	err := fn()
	if err != nil && connectionLost(err) {
		c.pool.Reset()
		err = fn()
	}
	return err
}

// AdvisoriesChanged tells the other replicas to reload their advisories:
// an import that started at started changed them.
func (c *Cluster) AdvisoriesChanged(ctx context.Context, started time.Time) error {
	payload := "a:" + c.id + ":" + strconv.FormatInt(started.UnixMicro(), 10)
	err := c.again(func() error {
		_, err := c.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, c.channel, payload)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: tell the replicas advisories changed: %w", err)
	}
	return nil
}

const messageCols = `id, origin, topic, payload, retained, created`

func scanMessages(rows pgx.Rows) ([]Message, error) {
	var out []Message
	for rows.Next() {
		var m Message
		var created int64
		if err := rows.Scan(&m.ID, &m.Origin, &m.Topic, &m.Payload, &m.Retained, &created); err != nil {
			return nil, err
		}
		m.Created = time.UnixMicro(created).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// Message reads the stored message id.
func (c *Cluster) Message(ctx context.Context, id int64) (Message, error) {
	rows, err := c.pool.Query(ctx, `SELECT `+messageCols+` FROM replica_messages WHERE id = $1`, id)
	if err != nil {
		return Message{}, fmt.Errorf("postgres: read replica message %d: %w", id, err)
	}
	ms, err := scanMessages(rows)
	if err != nil {
		return Message{}, fmt.Errorf("postgres: read replica message %d: %w", id, err)
	}
	if len(ms) == 0 {
		return Message{}, fmt.Errorf("postgres: replica message %d: %w", id, pgx.ErrNoRows)
	}
	return ms[0], nil
}

// Since returns the messages after id created at or after from, oldest
// first, at most limit: what a replica missed while it did not listen.
func (c *Cluster) Since(ctx context.Context, id int64, from time.Time, limit int) ([]Message, error) {
	rows, err := c.pool.Query(ctx, `SELECT `+messageCols+` FROM replica_messages
		WHERE id > $1 AND created >= $2 ORDER BY id LIMIT $3`, id, from.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: read replica messages: %w", err)
	}
	ms, err := scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: read replica messages: %w", err)
	}
	return ms, nil
}

// Retained returns the newest retained message of each topic: what a
// replica's broker must hold when it starts.
func (c *Cluster) Retained(ctx context.Context) ([]Message, error) {
	rows, err := c.pool.Query(ctx, `SELECT DISTINCT ON (topic) `+messageCols+` FROM replica_messages
		WHERE retained ORDER BY topic, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("postgres: read retained replica messages: %w", err)
	}
	ms, err := scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: read retained replica messages: %w", err)
	}
	return ms, nil
}

// Last returns the id of the newest message, 0 when there is none.
func (c *Cluster) Last(ctx context.Context) (int64, error) {
	var id int64
	if err := c.pool.QueryRow(ctx, `SELECT COALESCE(max(id), 0) FROM replica_messages`).Scan(&id); err != nil {
		return 0, fmt.Errorf("postgres: last replica message: %w", err)
	}
	return id, nil
}

// Prune deletes the messages created before before, except the newest
// retained one of each topic.
func (c *Cluster) Prune(ctx context.Context, before time.Time) (int64, error) {
	tag, err := c.pool.Exec(ctx, `DELETE FROM replica_messages m WHERE created < $1
		AND NOT (retained AND id = (SELECT max(id) FROM replica_messages r WHERE r.topic = m.topic AND r.retained))`,
		before.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("postgres: prune replica messages: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Notification is one thing another replica told this one.
type Notification struct {
	// Origin is the replica that sent it.
	Origin string
	// Message is the id of a stored message (Message), 0 for
	// AdvisoriesChanged.
	Message int64
	// Import is when the import that changed the advisories started
	// (AdvisoriesChanged), zero for a message.
	Import time.Time
}

// ParseNotification reads a payload on Channel.
func ParseNotification(payload string) (Notification, error) {
	kind, rest, _ := strings.Cut(payload, ":")
	switch kind {
	case "a":
		origin, num, ok := strings.Cut(rest, ":")
		us, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || us <= 0 || origin == "" {
			break
		}
		return Notification{Origin: origin, Import: time.UnixMicro(us).UTC()}, nil
	case "m":
		num, origin, ok := strings.Cut(rest, ":")
		id, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || id <= 0 || origin == "" {
			break
		}
		return Notification{Origin: origin, Message: id}, nil
	}
	return Notification{}, fmt.Errorf("postgres: notification %q: %w", payload, ErrBadNotification)
}

// ErrBadNotification is a payload on Channel that is neither form.
var ErrBadNotification = errors.New("postgres: not a replica notification")

// Listen listens on Channel until ctx ends, on a connection of its own.
// After each (re)connection, once listening, it calls connected, so the
// caller catches up on what it may have missed while not listening (its
// first call included); then it hands every notification from another
// replica to fn, in order. A lost connection is logged and made again
// after Retry. fn and connected run on Listen's goroutine.
func (c *Cluster) Listen(ctx context.Context, connected func(context.Context), fn func(context.Context, Notification)) {
	for ctx.Err() == nil {
		err := c.listen(ctx, connected, fn)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("replica notifications lost; listening again", "err", err, "after", c.Retry)
		select {
		case <-ctx.Done():
		case <-time.After(c.Retry):
		}
	}
}

func (c *Cluster) listen(ctx context.Context, connected func(context.Context), fn func(context.Context, Notification)) error {
	conn, err := pgx.ConnectConfig(ctx, c.cfg.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{c.channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	connected(ctx)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		p, err := ParseNotification(n.Payload)
		if err != nil {
			c.log.Warn("replica notification ignored", "err", err)
			continue
		}
		if p.Origin != c.id {
			fn(ctx, p)
		}
	}
}

// Lead runs fn while this replica holds the leader lock called name, until
// ctx ends. The lock is a session-level pg_try_advisory_lock on a
// connection of its own: PostgreSQL frees it when that connection ends, so
// a replica that dies or loses the database loses leadership with it, and
// another replica takes it within Retry. Lead checks its connection every
// Retry, each check given at most Retry; when one fails, fn's context is
// cancelled and Lead waits for fn to return before it tries for the lock
// again. PostgreSQL frees a dead connection's lock at once, before the old
// leader's next check can notice, so a new leader waits two Retry periods
// (the longest the old one can take to stop) before it starts fn: fn runs
// on one replica at a time as long as fn stops when its context ends.
func (c *Cluster) Lead(ctx context.Context, name string, fn func(context.Context)) {
	key := lockKey(c.schema + "." + name)
	for ctx.Err() == nil {
		held, err := c.lead(ctx, name, key, fn)
		if ctx.Err() != nil {
			return
		}
		if held || err != nil {
			c.log.Warn("leader lock lost or not reachable", "lock", name, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(c.Retry):
		}
	}
}

// lockKey is the advisory lock key of name (the schema, a dot, the job):
// rpmfleet's migrations hold 1919053158 ("rpmf"); a job's key is the
// FNV-1a hash of its name with the high bit set, apart from it.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("rpmfleet leader " + name))
	return int64(h.Sum64() | 1<<63)
}

func (c *Cluster) lead(ctx context.Context, name string, key int64, fn func(context.Context)) (held bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, c.cfg.Copy())
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
			return false, fmt.Errorf("try lock: %w", err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(c.Retry):
		}
	}
	c.log.Info("leader lock taken", "lock", name)
	select {
	case <-ctx.Done():
		return true, nil
	case <-time.After(2 * c.Retry):
	}
	jctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); fn(jctx) }()
	defer func() { cancel(); <-done }()
	t := time.NewTicker(c.Retry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case <-done:
			// fn returned on its own: keep the lock, so no other
			// replica starts the job again, until ctx ends.
			<-ctx.Done()
			return true, nil
		case <-t.C:
			pctx, pcancel := context.WithTimeout(ctx, c.Retry)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				return true, fmt.Errorf("check lock connection: %w", err)
			}
		}
	}
}
