package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// AddDeliveries stores new deliveries; (webhook, dedup) decides repeats.
func (s *Store) AddDeliveries(ctx context.Context, ds []store.Delivery) (int, error) {
	var added int
	err := s.db.Write(ctx, func(c Conn) error {
		added = 0
		for _, d := range ds {
			n, err := c.Exec(ctx, `INSERT INTO webhook_deliveries
				(id, webhook, event, event_id, dedup, body, status, attempts, http_status, last_error, created, updated, next_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, '', ?, ?, ?) ON CONFLICT DO NOTHING`,
				d.ID, d.Webhook, d.Event, d.EventID, d.Key, string(d.Body), protocol.DeliveryPending,
				micros(d.Created), micros(d.Created), micros(d.Next))
			if err != nil {
				return err
			}
			added += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("queue webhook deliveries: %w", err)
	}
	return added, nil
}

// ClaimDeliveries takes the due deliveries. Each claim is an UPDATE
// conditioned on the next_at it read: on PostgreSQL a concurrent claim of
// the same row waits for the first to commit, then finds next_at moved
// and claims nothing; SQLite's write transactions are exclusive anyway.
func (s *Store) ClaimDeliveries(ctx context.Context, now, lease time.Time, limit int) ([]store.Delivery, error) {
	// Every server asks every second: a read answers the usual "nothing
	// due" without taking SQLite's write lock from the reports.
	var due bool
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT id FROM webhook_deliveries WHERE status = ? AND next_at <= ? LIMIT 1`, protocol.DeliveryPending, micros(now))
		if err != nil {
			return err
		}
		defer rows.Close()
		due = rows.Next()
		return rows.Err()
	})
	if err != nil || !due {
		if err != nil {
			err = fmt.Errorf("claim webhook deliveries: %w", err)
		}
		return nil, err
	}
	var out []store.Delivery
	err = s.db.Write(ctx, func(c Conn) error {
		out = nil
		rows, err := c.Query(ctx, `SELECT id, webhook, event, event_id, dedup, body, attempts, http_status, last_error, created, updated, next_at
			FROM webhook_deliveries WHERE status = ? AND next_at <= ? ORDER BY next_at, created, id LIMIT ?`,
			protocol.DeliveryPending, micros(now), max(limit, 1))
		if err != nil {
			return err
		}
		var due []store.Delivery
		for rows.Next() {
			var d store.Delivery
			var body string
			var created, updated, next int64
			if err := rows.Scan(&d.ID, &d.Webhook, &d.Event, &d.EventID, &d.Key, &body, &d.Attempts, &d.HTTPStatus, &d.LastError,
				&created, &updated, &next); err != nil {
				rows.Close()
				return err
			}
			d.Body, d.Status = []byte(body), protocol.DeliveryPending
			d.Created, d.Updated, d.Next = fromMicros(created), fromMicros(updated), fromMicros(next)
			due = append(due, d)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
		for _, d := range due {
			n, err := c.Exec(ctx, `UPDATE webhook_deliveries SET next_at = ? WHERE id = ? AND status = ? AND next_at = ?`,
				micros(lease), d.ID, protocol.DeliveryPending, micros(d.Next))
			if err != nil {
				return err
			}
			if n == 1 {
				d.Next = lease
				out = append(out, d)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	return out, nil
}

// RecordDelivery writes what an attempt did.
func (s *Store) RecordDelivery(ctx context.Context, d store.Delivery) error {
	err := s.db.Write(ctx, func(c Conn) error {
		n, err := c.Exec(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = ?, http_status = ?, last_error = ?, updated = ?, next_at = ?
			WHERE id = ?`, d.Status, d.Attempts, d.HTTPStatus, d.LastError, micros(d.Updated), micros(d.Next), d.ID)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record webhook delivery %s: %w", d.ID, err)
	}
	return nil
}

// ListDeliveries lists deliveries newest first.
func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, error) {
	q := `SELECT id, webhook, event, event_id, dedup, status, attempts, http_status, last_error, created, updated, next_at
		FROM webhook_deliveries WHERE 1 = 1`
	var args []any
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.Webhook != "" {
		q += ` AND webhook = ?`
		args = append(args, f.Webhook)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += ` ORDER BY created DESC, id DESC LIMIT ?`
	args = append(args, limit)
	out := []store.Delivery{}
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d store.Delivery
			var created, updated, next int64
			if err := rows.Scan(&d.ID, &d.Webhook, &d.Event, &d.EventID, &d.Key, &d.Status, &d.Attempts, &d.HTTPStatus, &d.LastError,
				&created, &updated, &next); err != nil {
				return err
			}
			d.Created, d.Updated, d.Next = fromMicros(created), fromMicros(updated), fromMicros(next)
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	return out, nil
}

// PruneDeliveries forgets finished deliveries.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.db.Write(ctx, func(c Conn) error {
		var err error
		n, err = c.Exec(ctx, `DELETE FROM webhook_deliveries WHERE status <> ? AND updated < ?`, protocol.DeliveryPending, micros(before))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune webhook deliveries: %w", err)
	}
	return n, nil
}

// SilentDevices lists the devices whose last report (or enrolment) is in
// (from, to].
func (s *Store) SilentDevices(ctx context.Context, from, to time.Time, limit int) ([]store.SilentDevice, error) {
	var out []store.SilentDevice
	f, t := micros(from), micros(to)
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT id, name, last_seen, enrolled FROM devices WHERE revoked = 0 AND
			((last_seen > ? AND last_seen <= ?) OR (last_seen = 0 AND enrolled > ? AND enrolled <= ?))
			ORDER BY name LIMIT ?`, f, t, f, t, max(limit, 1))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d store.SilentDevice
			var seen, enrolled int64
			if err := rows.Scan(&d.ID, &d.Name, &seen, &enrolled); err != nil {
				return err
			}
			d.LastSeen, d.Enrolled = fromMicros(seen), fromMicros(enrolled)
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list silent devices: %w", err)
	}
	return out, nil
}
