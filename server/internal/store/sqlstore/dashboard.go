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

// What the dashboard reads beyond store.Queries (store/dashboard.go).

var (
	_ store.DeviceDetails   = (*Store)(nil)
	_ store.ExposureHistory = (*Store)(nil)
)

// summaryAggregates are the per-status-set and per-device counts a
// device summary needs, each worked out once for every set and device (as
// Summary does) rather than by two subqueries per device, as Devices asks.
const summaryAggregates = `WITH x AS (SELECT s.status_set AS status_set, COUNT(*) AS n, MAX(a.severity) AS w
		FROM set_status s JOIN advisories a ON a.id = s.advisory_id
		WHERE s.affected = 1 GROUP BY s.status_set),
	r AS (SELECT device_id, COUNT(*) AS n FROM device_status WHERE status = 'pending-reboot' GROUP BY device_id)
	SELECT d.id, d.name, d.labels, d.enrolled, d.last_seen, d.revoked,
		d.os_id, d.os_version_id, d.arch, d.kernel, d.hostname, d.agent_version, COALESCE(p.count, 0),
		COALESCE(x.n, 0), COALESCE(r.n, 0), COALESCE(x.w, -1)
	FROM devices d LEFT JOIN package_sets p ON p.id = d.package_set
	LEFT JOIN x ON x.status_set = p.status_set
	LEFT JOIN r ON r.device_id = d.id`

// deviceWhere is the WHERE clause of f and a name part, on devices d.
func deviceWhere(f store.DeviceFilter, nameContains string) (string, []any) {
	q := ` WHERE 1 = 1`
	var args []any
	for _, k := range slices.Sorted(maps.Keys(f.Labels)) {
		q += ` AND EXISTS (SELECT 1 FROM device_labels l WHERE l.device_id = d.id AND l.key = ? AND l.value = ?)`
		args = append(args, k, f.Labels[k])
	}
	if f.ExposedTo != "" {
		q += ` AND d.package_set IN (SELECT p.id FROM advisory_cves v
			JOIN set_status s ON s.advisory_id = v.advisory_id AND s.affected = 1
			JOIN package_sets p ON p.status_set = s.status_set
			WHERE v.cve = ?)`
		args = append(args, strings.ToUpper(strings.TrimSpace(f.ExposedTo)))
	}
	if nameContains != "" {
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(nameContains)
		q += ` AND d.name LIKE ? ESCAPE '\'`
		args = append(args, "%"+esc+"%")
	}
	return q, args
}

// deviceOrder maps DeviceQuery.Sort to a column of summaryAggregates.
var deviceOrder = map[string]string{
	"": "d.name", "name": "d.name", "last_seen": "d.last_seen", "enrolled": "d.enrolled",
	"packages": "COALESCE(p.count, 0)", "affected": "COALESCE(x.n, 0)", "severity": "COALESCE(x.w, -1)",
}

// DeviceSummaries lists devices by name, filtered, as Devices does.
func (s *Store) DeviceSummaries(ctx context.Context, f store.DeviceFilter) ([]protocol.DeviceSummary, error) {
	where, args := deviceWhere(f, "")
	ds, err := s.summaries(ctx, summaryAggregates+where+` ORDER BY d.name`, args)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return ds, nil
}

// DevicePage returns one page of the device list, sorted in the database.
func (s *Store) DevicePage(ctx context.Context, q store.DeviceQuery) ([]protocol.DeviceSummary, int, error) {
	col, ok := deviceOrder[q.Sort]
	if !ok {
		return nil, 0, fmt.Errorf("device page: unknown sort %q", q.Sort)
	}
	dir := "ASC"
	if q.Desc {
		dir = "DESC"
	}
	where, args := deviceWhere(q.Filter, q.NameContains)
	var total int
	err := s.db.Read(ctx, func(c Conn) error {
		return c.QueryRow(ctx, `SELECT COUNT(*) FROM devices d`+where, args...).Scan(&total)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("device page: %w", err)
	}
	ds, err := s.summaries(ctx, summaryAggregates+where+` ORDER BY `+col+` `+dir+`, d.name LIMIT ? OFFSET ?`,
		append(args, q.Limit, q.Offset))
	if err != nil {
		return nil, 0, fmt.Errorf("device page: %w", err)
	}
	return ds, total, nil
}

// summaries runs a query of summaryAggregates' columns.
func (s *Store) summaries(ctx context.Context, q string, args []any) ([]protocol.DeviceSummary, error) {
	ds := []protocol.DeviceSummary{}
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanSummary(rows)
			if err != nil {
				return err
			}
			ds = append(ds, d)
		}
		return rows.Err()
	})
	return ds, err
}

// DevicePackages returns the packages of the device's set, sorted as
// stored (by name).
func (s *Store) DevicePackages(ctx context.Context, deviceID string) ([]protocol.Package, error) {
	var blob []byte
	var setID sql.NullInt64
	err := s.db.Read(ctx, func(c Conn) error {
		err := c.QueryRow(ctx, `SELECT d.package_set FROM devices d WHERE d.id = ?`, deviceID).Scan(&setID)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil || !setID.Valid {
			return err
		}
		return c.QueryRow(ctx, `SELECT packages FROM package_sets WHERE id = ?`, setID.Int64).Scan(&blob)
	})
	if err != nil {
		return nil, fmt.Errorf("packages of device %s: %w", deviceID, err)
	}
	if !setID.Valid {
		return nil, nil
	}
	pkgs, err := decodeSet(blob)
	if err != nil {
		return nil, fmt.Errorf("packages of device %s: %w", deviceID, err)
	}
	return pkgs, nil
}

// DeviceCycles returns the device's last limit cycles, latest first.
func (s *Store) DeviceCycles(ctx context.Context, deviceID string, limit int) ([]protocol.CycleResult, error) {
	var out []protocol.CycleResult
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT body FROM cycles WHERE device_id = ? ORDER BY finished DESC, report_id DESC, seq DESC LIMIT ?`,
			deviceID, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var body string
			if err := rows.Scan(&body); err != nil {
				return err
			}
			var cy protocol.CycleResult
			if err := json.Unmarshal([]byte(body), &cy); err != nil {
				return fmt.Errorf("decode cycle: %w", err)
			}
			out = append(out, cy)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("cycles of device %s: %w", deviceID, err)
	}
	return out, nil
}

// exposureSeverities are the severities exposure_days has a column for,
// in its column order.
var exposureSeverities = []advisory.Severity{advisory.SeverityNone, advisory.Low, advisory.Moderate, advisory.Important, advisory.Critical}

// PutExposureDay records d for its day and forgets days before keepFrom.
func (s *Store) PutExposureDay(ctx context.Context, d store.ExposureDay, keepFrom time.Time) error {
	day := time.Date(d.Day.Year(), d.Day.Month(), d.Day.Day(), 0, 0, 0, 0, time.UTC)
	args := []any{micros(day), d.Devices, d.FullyPatched}
	for _, sev := range exposureSeverities {
		args = append(args, d.ExposedBySeverity[sev.String()])
	}
	err := s.db.Write(ctx, func(c Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO exposure_days (day, devices, fully_patched,
				exposed_none, exposed_low, exposed_moderate, exposed_important, exposed_critical)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (day) DO UPDATE SET devices = excluded.devices, fully_patched = excluded.fully_patched,
				exposed_none = excluded.exposed_none, exposed_low = excluded.exposed_low,
				exposed_moderate = excluded.exposed_moderate, exposed_important = excluded.exposed_important,
				exposed_critical = excluded.exposed_critical`, args...)
		if err != nil {
			return err
		}
		_, err = c.Exec(ctx, `DELETE FROM exposure_days WHERE day < ?`, micros(keepFrom))
		return err
	})
	if err != nil {
		return fmt.Errorf("record exposure of %s: %w", day.Format(time.DateOnly), err)
	}
	return nil
}

// ExposureDays returns the recorded days from since on, oldest first.
func (s *Store) ExposureDays(ctx context.Context, since time.Time) ([]store.ExposureDay, error) {
	var out []store.ExposureDay
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT day, devices, fully_patched,
				exposed_none, exposed_low, exposed_moderate, exposed_important, exposed_critical
			FROM exposure_days WHERE day >= ? ORDER BY day`, micros(since))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var day int64
			var d store.ExposureDay
			n := make([]int, len(exposureSeverities))
			if err := rows.Scan(&day, &d.Devices, &d.FullyPatched, &n[0], &n[1], &n[2], &n[3], &n[4]); err != nil {
				return err
			}
			d.Day = fromMicros(day)
			d.ExposedBySeverity = map[string]int{}
			for i, sev := range exposureSeverities {
				d.ExposedBySeverity[sev.String()] = n[i]
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("exposure history: %w", err)
	}
	return out, nil
}
