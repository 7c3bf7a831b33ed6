package sqlstore

import (
	"context"
	"fmt"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// advisorySummaries reads advisories matching where (a condition on a),
// with their counts and CVEs.
func advisorySummaries(ctx context.Context, c Conn, where string, args ...any) ([]protocol.AdvisorySummary, error) {
	// Counts are taken per status set and multiplied by the devices on
	// each, then corrected by the overrides: a fleet of many devices and
	// few sets costs sets times advisories, not devices times advisories.
	rows, err := c.Query(ctx, `SELECT a.id, a.type, a.severity, a.issued, a.title,
			CAST(COALESCE(x.affected, 0) - COALESCE(o.failed, 0) AS BIGINT),
			CAST(COALESCE(x.patched, 0) - COALESCE(o.pending, 0) AS BIGINT),
			CAST(COALESCE(o.pending, 0) AS BIGINT),
			CAST(COALESCE(o.failed, 0) AS BIGINT)
		FROM advisories a
		LEFT JOIN (SELECT s.advisory_id,
				SUM(CASE WHEN s.affected = 1 THEN n.c ELSE 0 END) AS affected,
				SUM(CASE WHEN s.affected = 0 THEN n.c ELSE 0 END) AS patched
			FROM set_status s
			JOIN (SELECT p.status_set, COUNT(*) AS c FROM devices d JOIN package_sets p ON p.id = d.package_set
				GROUP BY p.status_set) n
				ON n.status_set = s.status_set
			GROUP BY s.advisory_id) x ON x.advisory_id = a.id
		LEFT JOIN (SELECT advisory_id,
				SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed,
				SUM(CASE WHEN status = 'pending-reboot' THEN 1 ELSE 0 END) AS pending
			FROM device_status GROUP BY advisory_id) o ON o.advisory_id = a.id
		WHERE `+where+`
		ORDER BY a.severity DESC, a.issued DESC, a.id`, args...)
	if err != nil {
		return nil, err
	}
	out := []protocol.AdvisorySummary{}
	index := map[string]int{}
	for rows.Next() {
		var a protocol.AdvisorySummary
		var sev int
		var issued int64
		if err := rows.Scan(&a.ID, &a.Type, &sev, &issued, &a.Title, &a.Affected, &a.Patched, &a.PendingReboot, &a.Failed); err != nil {
			rows.Close()
			return nil, err
		}
		a.Severity, a.Issued = advisory.Severity(sev).String(), fromMicros(issued)
		index[a.ID] = len(out)
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = c.Query(ctx, `SELECT v.advisory_id, v.cve FROM advisory_cves v JOIN advisories a ON a.id = v.advisory_id
		WHERE `+where+` ORDER BY v.advisory_id, v.cve`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, cve string
		if err := rows.Scan(&id, &cve); err != nil {
			return nil, err
		}
		if i, ok := index[id]; ok {
			out[i].CVEs = append(out[i].CVEs, cve)
		}
	}
	return out, rows.Err()
}

// Advisories lists advisories at least as severe as min.
func (s *Store) Advisories(ctx context.Context, min advisory.Severity) ([]protocol.AdvisorySummary, error) {
	var out []protocol.AdvisorySummary
	err := s.db.Read(ctx, func(c Conn) error {
		var err error
		out, err = advisorySummaries(ctx, c, `a.severity >= ?`, int(min))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list advisories: %w", err)
	}
	return out, nil
}

// Summary returns the fleet at a glance.
func (s *Store) Summary(ctx context.Context) (protocol.Summary, error) {
	sum := protocol.Summary{ExposedBySeverity: map[string]int{}}
	err := s.db.Read(ctx, func(c Conn) error {
		if err := c.QueryRow(ctx, `SELECT COUNT(*) FROM devices`).Scan(&sum.Devices); err != nil {
			return err
		}
		rows, err := c.Query(ctx, `SELECT x.w, COUNT(*) FROM devices d
			JOIN package_sets p ON p.id = d.package_set
			JOIN (SELECT s.status_set, MAX(a.severity) AS w FROM set_status s JOIN advisories a ON a.id = s.advisory_id
				WHERE s.affected = 1 GROUP BY s.status_set) x ON x.status_set = p.status_set
			GROUP BY x.w`)
		if err != nil {
			return err
		}
		exposed := 0
		for rows.Next() {
			var sev, n int
			if err := rows.Scan(&sev, &n); err != nil {
				rows.Close()
				return err
			}
			sum.ExposedBySeverity[advisory.Severity(sev).String()] = n
			exposed += n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		sum.FullyPatched = sum.Devices - exposed
		if sum.Devices > 0 {
			sum.FullyPatchedShare = float64(sum.FullyPatched) / float64(sum.Devices)
		}
		oldest, err := advisorySummaries(ctx, c, `a.id = (SELECT o.id FROM advisories o
			WHERE o.severity = ? AND EXISTS (SELECT 1 FROM set_status e JOIN package_sets p ON p.status_set = e.status_set
				JOIN devices x ON x.package_set = p.id
				WHERE e.advisory_id = o.id AND e.affected = 1)
			ORDER BY o.issued, o.id LIMIT 1)`, int(advisory.Critical))
		if err != nil {
			return err
		}
		if len(oldest) == 1 {
			sum.OldestUnpatchedCritical = &oldest[0]
		}
		return nil
	})
	if err != nil {
		return protocol.Summary{}, fmt.Errorf("summary: %w", err)
	}
	return sum, nil
}
