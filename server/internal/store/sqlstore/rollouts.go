package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// rolloutSpec is what rollouts.spec holds: what was asked.
type rolloutSpec struct {
	Advisories []string `json:"advisories"`
	Phases     []string `json:"phases"`
	SoakMicros int64    `json:"soak_us"`
	MaxFailure float64  `json:"max_failure"`
}

// CreateRollout stores a rollout, its advisories and its first phase's
// devices.
func (s *Store) CreateRollout(ctx context.Context, r store.Rollout, first []string) error {
	spec, err := json.Marshal(rolloutSpec{Advisories: r.Advisories, Phases: r.Phases, SoakMicros: r.Soak.Microseconds(), MaxFailure: r.MaxFailure})
	if err != nil {
		return fmt.Errorf("create rollout %s: %w", r.ID, err)
	}
	err = s.db.Write(ctx, func(c Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO rollouts (id, group_name, spec, state, phase, total, phase_started, reason, created_by, created, updated)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Group, string(spec), string(r.State), r.Phase, r.Total, micros(r.PhaseStarted), r.Reason, r.CreatedBy, micros(r.Created), micros(r.Updated))
		if err != nil {
			return err
		}
		for _, a := range slices.Compact(slices.Sorted(slices.Values(r.Advisories))) {
			if _, err := c.Exec(ctx, `INSERT INTO rollout_advisories (rollout_id, advisory_id) VALUES (?, ?)`, r.ID, a); err != nil {
				return err
			}
		}
		return addMembers(ctx, c, r.ID, r.Phase, first, r.Updated)
	})
	if err != nil {
		return fmt.Errorf("create rollout %s: %w", r.ID, err)
	}
	return nil
}

func addMembers(ctx context.Context, c Conn, id string, phase int, devices []string, at time.Time) error {
	for _, d := range devices {
		_, err := c.Exec(ctx, `INSERT INTO rollout_devices (rollout_id, device_id, phase, added) VALUES (?, ?, ?, ?)
			ON CONFLICT (rollout_id, device_id) DO NOTHING`, id, d, phase, micros(at))
		if err != nil {
			return err
		}
	}
	return nil
}

const rolloutColumns = `id, group_name, spec, state, phase, total, phase_started, reason, created_by, created, updated`

func scanRollout(r Row) (store.Rollout, error) {
	var ro store.Rollout
	var spec, state string
	var started, created, updated int64
	if err := r.Scan(&ro.ID, &ro.Group, &spec, &state, &ro.Phase, &ro.Total, &started, &ro.Reason, &ro.CreatedBy, &created, &updated); err != nil {
		return ro, err
	}
	var sp rolloutSpec
	if err := json.Unmarshal([]byte(spec), &sp); err != nil {
		return ro, fmt.Errorf("spec of rollout %s: %w", ro.ID, err)
	}
	ro.Advisories, ro.Phases, ro.Soak, ro.MaxFailure = sp.Advisories, sp.Phases, time.Duration(sp.SoakMicros)*time.Microsecond, sp.MaxFailure
	ro.State = protocol.RolloutState(state)
	ro.PhaseStarted, ro.Created, ro.Updated = fromMicros(started), fromMicros(created), fromMicros(updated)
	return ro, nil
}

// Rollout returns one rollout.
func (s *Store) Rollout(ctx context.Context, id string) (store.Rollout, error) {
	var r store.Rollout
	err := s.db.Read(ctx, func(c Conn) error {
		var err error
		r, err = scanRollout(c.QueryRow(ctx, `SELECT `+rolloutColumns+` FROM rollouts WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.Rollout{}, fmt.Errorf("rollout %s: %w", id, err)
	}
	return r, nil
}

// Rollouts lists rollouts, newest first, in the given states (all when
// none is given).
func (s *Store) Rollouts(ctx context.Context, states ...protocol.RolloutState) ([]store.Rollout, error) {
	q := `SELECT ` + rolloutColumns + ` FROM rollouts`
	var args []any
	if len(states) > 0 {
		q += ` WHERE state IN (` + marks(len(states)) + `)`
		for _, st := range states {
			args = append(args, string(st))
		}
	}
	q += ` ORDER BY created DESC, id`
	var out []store.Rollout
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRollout(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	return out, nil
}

// UpdateRollout moves a rollout on, if nobody else did since prev.
func (s *Store) UpdateRollout(ctx context.Context, r store.Rollout, prev time.Time, add []string) error {
	err := s.db.Write(ctx, func(c Conn) error {
		n, err := c.Exec(ctx, `UPDATE rollouts SET state = ?, phase = ?, phase_started = ?, reason = ?, updated = ? WHERE id = ? AND updated = ?`,
			string(r.State), r.Phase, micros(r.PhaseStarted), r.Reason, micros(r.Updated), r.ID, micros(prev))
		if err != nil {
			return err
		}
		if n == 0 {
			var one int
			err := c.QueryRow(ctx, `SELECT 1 FROM rollouts WHERE id = ?`, r.ID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrNotFound
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: it changed since it was read", store.ErrConflict)
		}
		return addMembers(ctx, c, r.ID, r.Phase, add, r.Updated)
	})
	if err != nil {
		return fmt.Errorf("update rollout %s: %w", r.ID, err)
	}
	return nil
}

// RolloutMembers lists the devices a rollout released to.
func (s *Store) RolloutMembers(ctx context.Context, id string) ([]store.RolloutMember, error) {
	var out []store.RolloutMember
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT m.device_id, d.name, m.phase, m.added FROM rollout_devices m JOIN devices d ON d.id = m.device_id
			WHERE m.rollout_id = ? ORDER BY m.phase, d.name`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m store.RolloutMember
			var added int64
			if err := rows.Scan(&m.DeviceID, &m.Name, &m.Phase, &added); err != nil {
				return err
			}
			m.Added = fromMicros(added)
			out = append(out, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("devices of rollout %s: %w", id, err)
	}
	return out, nil
}

// RolloutsReaching returns the ids of the rollouts a device was released
// to.
func (s *Store) RolloutsReaching(ctx context.Context, deviceID string) (map[string]bool, error) {
	out := map[string]bool{}
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT rollout_id FROM rollout_devices WHERE device_id = ?`, deviceID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			out[id] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("rollouts reaching device %s: %w", deviceID, err)
	}
	return out, nil
}

// Cycles returns the cycles the devices reported since a time, by when
// the server received them: the device's own clock says when a cycle
// finished, and a device's clock is not the server's.
func (s *Store) Cycles(ctx context.Context, deviceIDs []string, since time.Time) ([]store.CycleRecord, error) {
	var out []store.CycleRecord
	err := s.db.Read(ctx, func(c Conn) error {
		for chunk := range slices.Chunk(deviceIDs, 500) {
			rows, err := c.Query(ctx, `SELECT c.device_id, r.received, c.body FROM cycles c
				JOIN reports r ON r.device_id = c.device_id AND r.id = c.report_id
				WHERE c.device_id IN (`+marks(len(chunk))+`) AND r.received >= ?
				ORDER BY r.received, c.device_id, c.seq`, append(anys(chunk), micros(since))...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var rec store.CycleRecord
				var received int64
				var body string
				if err := rows.Scan(&rec.DeviceID, &received, &body); err != nil {
					rows.Close()
					return err
				}
				if err := json.Unmarshal([]byte(body), &rec.Cycle); err != nil {
					rows.Close()
					return fmt.Errorf("cycle of %s: %w", rec.DeviceID, err)
				}
				rec.Received = fromMicros(received)
				out = append(out, rec)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read cycles: %w", err)
	}
	slices.SortStableFunc(out, func(a, b store.CycleRecord) int { return a.Received.Compare(b.Received) })
	return out, nil
}
