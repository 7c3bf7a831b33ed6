package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// LockSlot takes a FleetLock slot. The group's row in fleetlock_groups is
// updated first: that row lock makes every LockSlot of one group wait for
// the one before it to commit, so on PostgreSQL (read committed) the count
// each one reads includes the slot the one before took; SQLite's write
// transactions are exclusive anyway.
func (s *Store) LockSlot(ctx context.Context, group, holder string, slots int, now, expires time.Time) (bool, error) {
	var held bool
	err := s.db.Write(ctx, func(c Conn) error {
		held = false
		if _, err := c.Exec(ctx, `INSERT INTO fleetlock_groups (grp, ops) VALUES (?, 0) ON CONFLICT (grp) DO NOTHING`, group); err != nil {
			return err
		}
		if _, err := c.Exec(ctx, `UPDATE fleetlock_groups SET ops = ops + 1 WHERE grp = ?`, group); err != nil {
			return err
		}
		if _, err := c.Exec(ctx, `DELETE FROM fleetlock_slots WHERE grp = ? AND expires <= ?`, group, micros(now)); err != nil {
			return err
		}
		n, err := c.Exec(ctx, `UPDATE fleetlock_slots SET expires = ? WHERE grp = ? AND holder = ?`, micros(expires), group, holder)
		if err != nil {
			return err
		}
		if n > 0 {
			held = true
			return nil
		}
		var taken int
		if err := c.QueryRow(ctx, `SELECT COUNT(*) FROM fleetlock_slots WHERE grp = ?`, group).Scan(&taken); err != nil {
			return err
		}
		if taken >= slots {
			return nil
		}
		if _, err := c.Exec(ctx, `INSERT INTO fleetlock_slots (grp, holder, taken, expires) VALUES (?, ?, ?, ?)`,
			group, holder, micros(now), micros(expires)); err != nil {
			return err
		}
		held = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("lock slot of %s in %s: %w", holder, group, err)
	}
	return held, nil
}

// UnlockSlot frees a holder's slot.
func (s *Store) UnlockSlot(ctx context.Context, group, holder string) (bool, error) {
	var n int64
	err := s.db.Write(ctx, func(c Conn) error {
		var err error
		n, err = c.Exec(ctx, `DELETE FROM fleetlock_slots WHERE grp = ? AND holder = ?`, group, holder)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("unlock slot of %s in %s: %w", holder, group, err)
	}
	return n > 0, nil
}

// Slots lists the slots held and not expired.
func (s *Store) Slots(ctx context.Context, now time.Time) ([]protocol.FleetLockSlot, error) {
	out := []protocol.FleetLockSlot{}
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT grp, holder, taken, expires FROM fleetlock_slots WHERE expires > ? ORDER BY grp, taken, holder`, micros(now))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var sl protocol.FleetLockSlot
			var taken, expires int64
			if err := rows.Scan(&sl.Group, &sl.ID, &taken, &expires); err != nil {
				return err
			}
			sl.Taken, sl.Expires = fromMicros(taken), fromMicros(expires)
			out = append(out, sl)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list slots: %w", err)
	}
	return out, nil
}
