package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// RevokeDevice revokes a device: its credential hash is replaced by 32
// random bytes, the hash of no secret anyone holds, so every lookup by the
// old credential (API and MQTT logins alike) misses from the commit on.
func (s *Store) RevokeDevice(ctx context.Context, name string, at time.Time) (string, time.Time, error) {
	var id string
	var revoked int64
	err := s.db.Write(ctx, func(c Conn) error {
		var unusable store.Hash
		rand.Read(unusable[:]) // never fails; see crypto/rand.Read
		err := c.QueryRow(ctx, `UPDATE devices SET revoked = ?, credential_hash = ? WHERE name = ? AND revoked = 0 RETURNING id, revoked`,
			micros(at), unusable[:], name).Scan(&id, &revoked)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// Unknown, or revoked already: keep the first time.
		err = c.QueryRow(ctx, `SELECT id, revoked FROM devices WHERE name = ?`, name).Scan(&id, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("revoke device %s: %w", name, err)
	}
	return id, fromMicros(revoked), nil
}

// DeleteDevice deletes a device; its labels, status overrides, report ids
// and cycles go with it (ON DELETE CASCADE).
func (s *Store) DeleteDevice(ctx context.Context, name string) (string, error) {
	var id string
	err := s.db.Write(ctx, func(c Conn) error {
		err := c.QueryRow(ctx, `DELETE FROM devices WHERE name = ? RETURNING id`, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("delete device %s: %w", name, err)
	}
	s.mu.Lock()
	delete(s.digests, id)
	s.mu.Unlock()
	return id, nil
}

// ListEnrollTokens lists the enrolment tokens, oldest first, without their
// hashes.
func (s *Store) ListEnrollTokens(ctx context.Context) ([]store.EnrollToken, error) {
	var ts []store.EnrollToken
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT id, labels, expires, uses_left, created, revoked FROM enroll_tokens ORDER BY created, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t store.EnrollToken
			var labels string
			var expires, created, revoked int64
			if err := rows.Scan(&t.ID, &labels, &expires, &t.UsesLeft, &created, &revoked); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(labels), &t.Labels); err != nil {
				return fmt.Errorf("labels of enrolment token %s: %w", t.ID, err)
			}
			t.Expires, t.Created, t.Revoked = fromMicros(expires), fromMicros(created), fromMicros(revoked)
			ts = append(ts, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list enrolment tokens: %w", err)
	}
	return ts, nil
}

// RevokeEnrollToken revokes an enrolment token: no uses left, so Enroll
// refuses it (as used up) from the commit on.
func (s *Store) RevokeEnrollToken(ctx context.Context, id string, at time.Time) error {
	return s.db.Write(ctx, func(c Conn) error {
		n, err := c.Exec(ctx, `UPDATE enroll_tokens SET revoked = ?, uses_left = 0 WHERE id = ? AND revoked = 0`, micros(at), id)
		if err != nil {
			return fmt.Errorf("revoke enrolment token %s: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("revoke enrolment token %s (unknown or already revoked): %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// DeviceRows counts the rows kept about the device with id deviceID, in
// devices and in every table that refers to it, by table: how the
// conformance suite checks a deleted device leaves nothing behind.
func (s *Store) DeviceRows(ctx context.Context, deviceID string) (map[string]int, error) {
	out := map[string]int{}
	err := s.db.Read(ctx, func(c Conn) error {
		for _, q := range []struct{ table, where string }{
			{"devices", "id"}, {"device_labels", "device_id"}, {"device_status", "device_id"},
			{"reports", "device_id"}, {"cycles", "device_id"},
		} {
			var n int
			if err := c.QueryRow(ctx, `SELECT COUNT(*) FROM `+q.table+` WHERE `+q.where+` = ?`, deviceID).Scan(&n); err != nil {
				return fmt.Errorf("%s: %w", q.table, err)
			}
			out[q.table] = n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count device rows: %w", err)
	}
	return out, nil
}
