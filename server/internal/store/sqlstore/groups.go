package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Labels set by admins, groups and their policies, hand approvals, and
// the queries narrowed to a label selection (issue 13).

// marks returns n '?' placeholders separated by commas.
func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// labelWhere is a condition on devices d: they carry every label.
func labelWhere(labels map[string]string) (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString("1 = 1")
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString(` AND EXISTS (SELECT 1 FROM device_labels l WHERE l.device_id = d.id AND l.key = ? AND l.value = ?)`)
		args = append(args, k, labels[k])
	}
	return b.String(), args
}

// SetDeviceLabels replaces a device's labels, in its row and in the label
// index, in one transaction.
func (s *Store) SetDeviceLabels(ctx context.Context, name string, labels map[string]string) (string, error) {
	js, err := json.Marshal(orEmpty(labels))
	if err != nil {
		return "", fmt.Errorf("set labels of %s: %w", name, err)
	}
	var id string
	err = s.db.Write(ctx, func(c Conn) error {
		err := c.QueryRow(ctx, `UPDATE devices SET labels = ? WHERE name = ? RETURNING id`, string(js), name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := c.Exec(ctx, `DELETE FROM device_labels WHERE device_id = ?`, id); err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(labels)) {
			if _, err := c.Exec(ctx, `INSERT INTO device_labels (device_id, key, value) VALUES (?, ?, ?)`, id, k, labels[k]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("set labels of %s: %w", name, err)
	}
	return id, nil
}

// PutGroup creates a group or replaces its selector.
func (s *Store) PutGroup(ctx context.Context, g store.Group) error {
	sel, err := json.Marshal(orEmpty(g.Selector))
	if err != nil {
		return fmt.Errorf("put group %s: %w", g.Name, err)
	}
	return s.db.Write(ctx, func(c Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO device_groups (name, selector, policy, created, updated) VALUES (?, ?, '', ?, ?)
			ON CONFLICT (name) DO UPDATE SET selector = excluded.selector, updated = excluded.updated`,
			g.Name, string(sel), micros(g.Created), micros(g.Updated))
		if err != nil {
			return fmt.Errorf("put group %s: %w", g.Name, err)
		}
		return nil
	})
}

// SetGroupPolicy attaches or detaches a group's policy.
func (s *Store) SetGroupPolicy(ctx context.Context, name string, p *protocol.Policy, at time.Time) error {
	body := ""
	if p != nil {
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("set policy of %s: %w", name, err)
		}
		body = string(b)
	}
	return s.db.Write(ctx, func(c Conn) error {
		n, err := c.Exec(ctx, `UPDATE device_groups SET policy = ?, updated = ? WHERE name = ?`, body, micros(at), name)
		if err != nil {
			return fmt.Errorf("set policy of %s: %w", name, err)
		}
		if n == 0 {
			return fmt.Errorf("set policy of group %s: %w", name, store.ErrNotFound)
		}
		return nil
	})
}

const groupColumns = `name, selector, policy, created, updated`

func scanGroup(r Row) (store.Group, error) {
	var g store.Group
	var sel, pol string
	var created, updated int64
	if err := r.Scan(&g.Name, &sel, &pol, &created, &updated); err != nil {
		return g, err
	}
	if err := json.Unmarshal([]byte(sel), &g.Selector); err != nil {
		return g, fmt.Errorf("selector of group %s: %w", g.Name, err)
	}
	if pol != "" {
		g.Policy = &protocol.Policy{}
		if err := json.Unmarshal([]byte(pol), g.Policy); err != nil {
			return g, fmt.Errorf("policy of group %s: %w", g.Name, err)
		}
	}
	g.Created, g.Updated = fromMicros(created), fromMicros(updated)
	return g, nil
}

// Group returns one group.
func (s *Store) Group(ctx context.Context, name string) (store.Group, error) {
	var g store.Group
	err := s.db.Read(ctx, func(c Conn) error {
		var err error
		g, err = scanGroup(c.QueryRow(ctx, `SELECT `+groupColumns+` FROM device_groups WHERE name = ?`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.Group{}, fmt.Errorf("group %s: %w", name, err)
	}
	return g, nil
}

// Groups lists every group by name.
func (s *Store) Groups(ctx context.Context) ([]store.Group, error) {
	var gs []store.Group
	err := s.db.Read(ctx, func(c Conn) error {
		var err error
		gs, err = groups(ctx, c)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return gs, nil
}

func groups(ctx context.Context, c Conn) ([]store.Group, error) {
	rows, err := c.Query(ctx, `SELECT `+groupColumns+` FROM device_groups ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var gs []store.Group
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, rows.Err()
}

// DeleteGroup deletes a group no live rollout goes to.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	err := s.db.Write(ctx, func(c Conn) error {
		var n int
		if err := c.QueryRow(ctx, `SELECT COUNT(*) FROM rollouts WHERE group_name = ? AND state IN ('running', 'paused')`, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %d running or paused rollouts go to it; abort them first", store.ErrConflict, n)
		}
		m, err := c.Exec(ctx, `DELETE FROM device_groups WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if m == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete group %s: %w", name, err)
	}
	return nil
}

// AdvisoriesFor lists the advisories that apply to at least one device
// of the selection, with counts over those devices alone.
func (s *Store) AdvisoriesFor(ctx context.Context, min advisory.Severity, labels map[string]string) ([]protocol.AdvisorySummary, error) {
	where, args := labelWhere(labels)
	out := []protocol.AdvisorySummary{}
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT a.id, a.type, a.severity, a.issued, a.title,
				CAST(x.affected AS BIGINT), CAST(x.patched AS BIGINT), CAST(x.pending AS BIGINT), CAST(x.failed AS BIGINT)
			FROM advisories a
			JOIN (SELECT s.advisory_id,
					SUM(CASE WHEN s.affected = 1 AND COALESCE(o.status, '') <> 'failed' THEN 1 ELSE 0 END) AS affected,
					SUM(CASE WHEN s.affected = 0 AND COALESCE(o.status, '') <> 'pending-reboot' THEN 1 ELSE 0 END) AS patched,
					SUM(CASE WHEN s.affected = 0 AND o.status = 'pending-reboot' THEN 1 ELSE 0 END) AS pending,
					SUM(CASE WHEN s.affected = 1 AND o.status = 'failed' THEN 1 ELSE 0 END) AS failed
				FROM devices d
				JOIN package_sets p ON p.id = d.package_set
				JOIN set_status s ON s.status_set = p.status_set
				LEFT JOIN device_status o ON o.device_id = d.id AND o.advisory_id = s.advisory_id
				WHERE `+where+`
				GROUP BY s.advisory_id) x ON x.advisory_id = a.id
			WHERE a.severity >= ?
			ORDER BY a.severity DESC, a.issued DESC, a.id`, append(args, int(min))...)
		if err != nil {
			return err
		}
		index := map[string]int{}
		for rows.Next() {
			var a protocol.AdvisorySummary
			var sev int
			var issued int64
			if err := rows.Scan(&a.ID, &a.Type, &sev, &issued, &a.Title, &a.Affected, &a.Patched, &a.PendingReboot, &a.Failed); err != nil {
				rows.Close()
				return err
			}
			a.Severity, a.Issued = advisory.Severity(sev).String(), fromMicros(issued)
			index[a.ID] = len(out)
			out = append(out, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = c.Query(ctx, `SELECT v.advisory_id, v.cve FROM advisory_cves v JOIN advisories a ON a.id = v.advisory_id
			WHERE a.severity >= ? ORDER BY v.advisory_id, v.cve`, int(min))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, cve string
			if err := rows.Scan(&id, &cve); err != nil {
				return err
			}
			if i, ok := index[id]; ok {
				out[i].CVEs = append(out[i].CVEs, cve)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list advisories of a selection: %w", err)
	}
	return out, nil
}

// Exposed lists the devices of a selection, not revoked, exposed to any of
// the advisories.
func (s *Store) Exposed(ctx context.Context, labels map[string]string, advisories []string) ([]store.DeviceRef, error) {
	if len(advisories) == 0 {
		return nil, nil
	}
	where, args := labelWhere(labels)
	var out []store.DeviceRef
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT d.id, d.name FROM devices d
			JOIN package_sets p ON p.id = d.package_set
			WHERE d.revoked = 0 AND `+where+` AND EXISTS (SELECT 1 FROM set_status s
				WHERE s.status_set = p.status_set AND s.affected = 1 AND s.advisory_id IN (`+marks(len(advisories))+`))
			ORDER BY d.name`, append(args, anys(advisories)...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d store.DeviceRef
			if err := rows.Scan(&d.ID, &d.Name); err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("exposed devices: %w", err)
	}
	return out, nil
}

// Approve approves an advisory by hand; approving it again keeps the
// first approval.
func (s *Store) Approve(ctx context.Context, a protocol.Approval) error {
	return s.db.Write(ctx, func(c Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO advisory_approvals (advisory_id, approved, by_name) VALUES (?, ?, ?) ON CONFLICT (advisory_id) DO NOTHING`,
			a.Advisory, micros(a.Approved), a.By)
		if err != nil {
			return fmt.Errorf("approve %s: %w", a.Advisory, err)
		}
		return nil
	})
}

// Unapprove withdraws a hand approval.
func (s *Store) Unapprove(ctx context.Context, id string) error {
	return s.db.Write(ctx, func(c Conn) error {
		n, err := c.Exec(ctx, `DELETE FROM advisory_approvals WHERE advisory_id = ?`, id)
		if err != nil {
			return fmt.Errorf("withdraw approval of %s: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("withdraw approval of %s: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// Approvals lists the hand approvals by advisory.
func (s *Store) Approvals(ctx context.Context) ([]protocol.Approval, error) {
	out := []protocol.Approval{}
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT advisory_id, approved, by_name FROM advisory_approvals ORDER BY advisory_id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a protocol.Approval
			var at int64
			if err := rows.Scan(&a.Advisory, &at, &a.By); err != nil {
				return err
			}
			a.Approved = fromMicros(at)
			out = append(out, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	return out, nil
}

// PlanGate gathers, in one read transaction, what gates a device's plan.
func (s *Store) PlanGate(ctx context.Context, deviceID string, advs []string) (store.PlanGate, error) {
	g := store.PlanGate{Labels: map[string]string{}, Approved: map[string]bool{}, Issued: map[string]time.Time{}}
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT key, value FROM device_labels WHERE device_id = ?`, deviceID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return err
			}
			g.Labels[k] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(advs) == 0 {
			return nil
		}
		in := marks(len(advs))
		rows, err = c.Query(ctx, `SELECT advisory_id FROM advisory_approvals WHERE advisory_id IN (`+in+`)`, anys(advs)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			g.Approved[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = c.Query(ctx, `SELECT id, issued, updated FROM advisories WHERE id IN (`+in+`)`, anys(advs)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var issued, updated int64
			if err := rows.Scan(&id, &issued, &updated); err != nil {
				rows.Close()
				return err
			}
			if issued == 0 {
				issued = updated
			}
			if issued != 0 {
				g.Issued[id] = fromMicros(issued)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = c.Query(ctx, `SELECT r.id, r.group_name, r.state, a.advisory_id,
				CASE WHEN EXISTS (SELECT 1 FROM rollout_devices m WHERE m.rollout_id = r.id AND m.device_id = ?) THEN 1 ELSE 0 END
			FROM rollouts r JOIN rollout_advisories a ON a.rollout_id = r.id
			WHERE a.advisory_id IN (`+in+`)
			ORDER BY r.created DESC, r.id, a.advisory_id`, append([]any{deviceID}, anys(advs)...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		index := map[string]int{}
		for rows.Next() {
			var id, grp, state, adv string
			var released int
			if err := rows.Scan(&id, &grp, &state, &adv, &released); err != nil {
				return err
			}
			i, ok := index[id]
			if !ok {
				i = len(g.Rollouts)
				index[id] = i
				g.Rollouts = append(g.Rollouts, store.GateRollout{ID: id, Group: grp, State: protocol.RolloutState(state), Released: released == 1})
			}
			g.Rollouts[i].Advisories = append(g.Rollouts[i].Advisories, adv)
		}
		return rows.Err()
	})
	if err != nil {
		return store.PlanGate{}, fmt.Errorf("plan gate of %s: %w", deviceID, err)
	}
	return g, nil
}
