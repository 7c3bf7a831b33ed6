package sqlstore

import (
	"context"
	"fmt"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// AddAudit appends an audit entry.
func (s *Store) AddAudit(ctx context.Context, e protocol.AuditEntry) error {
	return s.db.Write(ctx, func(c Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO audit_log (at, actor_id, actor_name, actor_role, action, target, detail, status, error)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			micros(e.Time), e.ActorID, e.Actor, string(e.Role), e.Action, e.Target, e.Detail, e.Status, e.Error)
		if err != nil {
			return fmt.Errorf("add audit entry %s: %w", e.Action, err)
		}
		return nil
	})
}

// Audit reads a page of the audit log, newest first.
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]protocol.AuditEntry, error) {
	q := `SELECT id, at, actor_id, actor_name, actor_role, action, target, detail, status, error FROM audit_log WHERE 1 = 1`
	var args []any
	if f.Before > 0 {
		q += ` AND id < ?`
		args = append(args, f.Before)
	}
	if f.Action != "" {
		q += ` AND action = ?`
		args = append(args, f.Action)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, max(f.Limit, 1))
	out := []protocol.AuditEntry{}
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e protocol.AuditEntry
			var at int64
			var role string
			if err := rows.Scan(&e.ID, &at, &e.ActorID, &e.Actor, &role, &e.Action, &e.Target, &e.Detail, &e.Status, &e.Error); err != nil {
				return err
			}
			e.Time, e.Role = fromMicros(at), protocol.Role(role)
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
