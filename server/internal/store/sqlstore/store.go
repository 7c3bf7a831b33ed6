package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Store is store.Store over a DB.
type Store struct {
	db   DB
	opts Options
	sets *setCache

	// mu guards digests: per device, the digest of the set its last
	// committed report left it on (for predict; a hint, checked); and
	// knownSets, the package sets stored, by release and digest (known).
	mu        sync.Mutex
	digests   map[string]string
	knownSets map[string]bool

	// queue carries reports to the writers (batch.go); stop ends them.
	queue     chan *reportReq
	stop      chan struct{}
	writers   sync.WaitGroup
	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// New returns a Store over db, whose schema must be migrated, and starts
// its report writers; Close stops them.
func New(db DB, opts Options) *Store {
	if opts.Writers < 1 {
		opts.Writers = 1
	}
	if opts.MaxBatch < 1 {
		opts.MaxBatch = DefaultMaxBatch
	}
	s := &Store{db: db, opts: opts, sets: newSetCache(setCacheSize), digests: map[string]string{}, knownSets: map[string]bool{},
		queue: make(chan *reportReq), stop: make(chan struct{})}
	for range opts.Writers {
		s.writers.Add(1)
		go s.writer()
	}
	return s
}

// Close stops the report writers, after the batches they are writing,
// and closes the DB. Reports sent after Close fail.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.writers.Wait()
	})
	return s.db.Close()
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// CreateToken stores an admin token.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	return s.db.Write(ctx, func(c Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO tokens (id, name, role, hash, created, revoked) VALUES (?, ?, ?, ?, ?, 0)`,
			t.ID, t.Name, string(t.Role), t.Hash[:], micros(t.Created))
		if err != nil {
			return fmt.Errorf("create token %s: %w", t.ID, err)
		}
		return nil
	})
}

// TokenByHash returns the valid token with hash h.
func (s *Store) TokenByHash(ctx context.Context, h store.Hash) (store.Token, error) {
	var t store.Token
	err := s.db.Read(ctx, func(c Conn) error {
		var role string
		var hash []byte
		var created, revoked int64
		err := c.QueryRow(ctx, `SELECT id, name, role, hash, created, revoked FROM tokens WHERE hash = ? AND revoked = 0`, h[:]).
			Scan(&t.ID, &t.Name, &role, &hash, &created, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("token by hash: %w", store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("token by hash: %w", err)
		}
		t.Role, t.Created, t.Revoked = protocol.Role(role), fromMicros(created), fromMicros(revoked)
		copy(t.Hash[:], hash)
		return nil
	})
	return t, err
}

// ListTokens lists all admin tokens, revoked ones included, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	var ts []store.Token
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT id, name, role, hash, created, revoked FROM tokens ORDER BY created, id`)
		if err != nil {
			return fmt.Errorf("list tokens: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var t store.Token
			var role string
			var hash []byte
			var created, revoked int64
			if err := rows.Scan(&t.ID, &t.Name, &role, &hash, &created, &revoked); err != nil {
				return fmt.Errorf("list tokens: %w", err)
			}
			t.Role, t.Created, t.Revoked = protocol.Role(role), fromMicros(created), fromMicros(revoked)
			copy(t.Hash[:], hash)
			ts = append(ts, t)
		}
		return rows.Err()
	})
	return ts, err
}

// RevokeToken revokes the token with the given id.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return s.db.Write(ctx, func(c Conn) error {
		n, err := c.Exec(ctx, `UPDATE tokens SET revoked = ? WHERE id = ? AND revoked = 0`, micros(at), id)
		if err != nil {
			return fmt.Errorf("revoke token %s: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("revoke token %s: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// CreateEnrollToken stores an enrolment token.
func (s *Store) CreateEnrollToken(ctx context.Context, t store.EnrollToken) error {
	labels, err := json.Marshal(orEmpty(t.Labels))
	if err != nil {
		return fmt.Errorf("create enrolment token %s: %w", t.ID, err)
	}
	if t.UsesLeft < 1 {
		return fmt.Errorf("create enrolment token %s: uses %d, want at least 1", t.ID, t.UsesLeft)
	}
	return s.db.Write(ctx, func(c Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO enroll_tokens (id, hash, labels, expires, uses_left, created) VALUES (?, ?, ?, ?, ?, ?)`,
			t.ID, t.Hash[:], string(labels), micros(t.Expires), t.UsesLeft, micros(t.Created))
		if err != nil {
			return fmt.Errorf("create enrolment token %s: %w", t.ID, err)
		}
		return nil
	})
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Enroll spends one use of an enrolment token and creates a device.
func (s *Store) Enroll(ctx context.Context, token store.Hash, nd store.NewDevice) (store.Device, error) {
	d := store.Device{ID: nd.ID, Name: nd.Name, CredentialHash: nd.CredentialHash, Enrolled: nd.Enrolled, Info: nd.Info}
	err := s.db.Write(ctx, func(c Conn) error {
		var labels string
		var expires, revoked int64
		var uses int
		err := c.QueryRow(ctx, `SELECT labels, expires, uses_left, revoked FROM enroll_tokens WHERE hash = ?`, token[:]).Scan(&labels, &expires, &uses, &revoked)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.ErrTokenInvalid
		case err != nil:
			return err
		case revoked != 0:
			return store.ErrTokenRevoked
		case micros(nd.Enrolled) >= expires:
			return store.ErrTokenExpired
		case uses < 1:
			return store.ErrTokenUsedUp
		}
		// The check above is advisory; this guarded update is what makes
		// concurrent enrolments unable to over-spend the token.
		n, err := c.Exec(ctx, `UPDATE enroll_tokens SET uses_left = uses_left - 1 WHERE hash = ? AND uses_left > 0 AND expires > ?`,
			token[:], micros(nd.Enrolled))
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrTokenUsedUp
		}
		if err := json.Unmarshal([]byte(labels), &d.Labels); err != nil {
			return fmt.Errorf("labels of enrolment token: %w", err)
		}
		n, err = c.Exec(ctx, `INSERT INTO devices (id, name, labels, credential_hash, enrolled, os_id, os_version_id, arch, kernel, hostname, agent_version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
			d.ID, d.Name, labels, d.CredentialHash[:], micros(d.Enrolled),
			d.Info.OSID, d.Info.OSVersionID, d.Info.Arch, d.Info.Kernel, d.Info.Hostname, d.Info.AgentVersion)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNameTaken
		}
		for _, k := range slices.Sorted(maps.Keys(d.Labels)) {
			if _, err := c.Exec(ctx, `INSERT INTO device_labels (device_id, key, value) VALUES (?, ?, ?)`, d.ID, k, d.Labels[k]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("enroll %s: %w", nd.Name, err)
	}
	return d, nil
}

const deviceColumns = `d.id, d.name, d.labels, d.credential_hash, d.enrolled, d.last_seen,
	d.os_id, d.os_version_id, d.arch, d.kernel, d.hostname, d.agent_version, COALESCE(p.digest, '')`

func scanDevice(r Row) (store.Device, error) {
	var d store.Device
	var labels string
	var hash []byte
	var enrolled, seen int64
	err := r.Scan(&d.ID, &d.Name, &labels, &hash, &enrolled, &seen,
		&d.Info.OSID, &d.Info.OSVersionID, &d.Info.Arch, &d.Info.Kernel, &d.Info.Hostname, &d.Info.AgentVersion, &d.Digest)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal([]byte(labels), &d.Labels); err != nil {
		return d, fmt.Errorf("labels of device %s: %w", d.ID, err)
	}
	copy(d.CredentialHash[:], hash)
	d.Enrolled, d.LastSeen = fromMicros(enrolled), fromMicros(seen)
	return d, nil
}

// DeviceByCredential returns the device holding the credential.
func (s *Store) DeviceByCredential(ctx context.Context, h store.Hash) (store.Device, error) {
	var d store.Device
	err := s.db.Read(ctx, func(c Conn) error {
		var err error
		d, err = scanDevice(c.QueryRow(ctx, `SELECT `+deviceColumns+`
			FROM devices d LEFT JOIN package_sets p ON p.id = d.package_set WHERE d.credential_hash = ?`, h[:]))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("device by credential: %w", err)
	}
	return d, nil
}
