package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// The CVE question, in three queries that each follow indexes from the
// cve (plan_test.go checks that SQLite scans no table): the per-set
// applicability of the CVE's advisories (from the status sets holding
// them to the package sets pointing at those), the vulnerable packages of
// the affected sets, and the devices on those sets. The answer, devices times
// their sets' rows, is put together in Go: a join in SQL would make the
// database build and sort every one of its rows, most of them repeating a
// set's findings for each device of an image.
const (
	cveStatusQuery = `SELECT p.id, s.advisory_id, s.affected
		FROM advisory_cves v
		JOIN set_status s ON s.advisory_id = v.advisory_id
		JOIN package_sets p ON p.status_set = s.status_set
		WHERE v.cve = ?`
	cveFindingsQuery = `SELECT p.id, f.advisory_id, f.package, f.installed, f.fixed
		FROM advisory_cves v
		JOIN set_status s ON s.advisory_id = v.advisory_id AND s.affected = 1
		JOIN package_sets p ON p.status_set = s.status_set
		JOIN set_findings f ON f.finding_set = p.finding_set AND f.advisory_id = s.advisory_id AND f.affected = 1
		WHERE v.cve = ?`
	// The devices come one row per set, their names packed as
	// "<bytes>:<name>" one after the other (a name may hold any
	// character): ten thousand rows through database/sql cost more than
	// the rest of the answer. A set is listed once per advisory of the
	// CVE it has a row for; CVE keeps one.
	cveDevicesQuery = `SELECT p.id,
			(SELECT string_agg(octet_length(d.name) || ':' || d.name, '') FROM devices d WHERE d.package_set = p.id)
		FROM advisory_cves v
		JOIN set_status s ON s.advisory_id = v.advisory_id
		JOIN package_sets p ON p.status_set = s.status_set
		WHERE v.cve = ?`
	// A page: the devices on the CVE's sets named after a name, in name
	// order, walking the name index from there.
	cvePageQuery = `SELECT d.name, d.package_set
		FROM devices d
		WHERE d.name > ? AND d.package_set IN (SELECT p.id FROM advisory_cves v
			JOIN set_status s ON s.advisory_id = v.advisory_id
			JOIN package_sets p ON p.status_set = s.status_set
			WHERE v.cve = ?)
		ORDER BY d.name
		LIMIT ?`
)

// cveRow is one advisory's standing on a set: patched, or affected
// through its vulnerable packages.
type cveRow struct {
	advisory string
	affected bool
	exposed  []protocol.CVEExposure // Device left empty
}

// CVE answers which devices are exposed to a CVE and which are patched.
// Overrides do not matter here: a failed device is still exposed, and one
// pending a reboot has the fix installed.
func (s *Store) CVE(ctx context.Context, cve string) (protocol.CVEResponse, error) {
	return s.cve(ctx, cve, "", 0)
}

// CVEPage answers one page of CVE: the devices named after after, at
// most limit of them. Only the devices are paged (by name, through the
// name index); the CVE's per-set rows and findings are read whole, which
// costs a few milliseconds whatever the fleet's size.
func (s *Store) CVEPage(ctx context.Context, cve, after string, limit int) (protocol.CVEResponse, error) {
	if limit < 1 {
		return protocol.CVEResponse{}, fmt.Errorf("query cve %s: limit %d, want at least 1", cve, limit)
	}
	return s.cve(ctx, cve, after, limit)
}

// cve answers CVE, or a page of it when limit > 0.
func (s *Store) cve(ctx context.Context, cve, after string, limit int) (protocol.CVEResponse, error) {
	cve = strings.ToUpper(strings.TrimSpace(cve))
	resp := protocol.CVEResponse{CVE: cve, Exposed: []protocol.CVEExposure{}, Patched: []protocol.CVEPatched{}}
	type device struct {
		name string
		set  int64
	}
	var devices []device
	sets := map[int64][]cveRow{}
	err := s.db.Read(ctx, func(c Conn) error {
		// A page reads its devices first, and then only their sets' rows.
		filter, args := "", []any{cve}
		if limit > 0 {
			rows, err := c.Query(ctx, cvePageQuery, after, cve, limit)
			if err != nil {
				return err
			}
			ids := map[int64]bool{}
			for rows.Next() {
				var d device
				if err := rows.Scan(&d.name, &d.set); err != nil {
					rows.Close()
					return err
				}
				devices = append(devices, d)
				ids[d.set] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil || len(devices) == 0 {
				return err
			}
			filter = " AND p.id IN (?" + strings.Repeat(", ?", len(ids)-1) + ")"
			for _, id := range slices.Sorted(maps.Keys(ids)) {
				args = append(args, id)
			}
		}
		rows, err := c.Query(ctx, cveStatusQuery+filter, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var set int64
			var r cveRow
			var affected int
			if err := rows.Scan(&set, &r.advisory, &affected); err != nil {
				rows.Close()
				return err
			}
			r.affected = affected != 0
			sets[set] = append(sets[set], r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(sets) == 0 {
			return nil
		}
		rows, err = c.Query(ctx, cveFindingsQuery+filter, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var set int64
			var e protocol.CVEExposure
			if err := rows.Scan(&set, &e.Advisory, &e.Package, &e.Installed, &e.Fixed); err != nil {
				rows.Close()
				return err
			}
			for i := range sets[set] {
				if r := &sets[set][i]; r.advisory == e.Advisory {
					r.exposed = append(r.exposed, e)
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if limit > 0 {
			return nil
		}
		rows, err = c.Query(ctx, cveDevicesQuery, cve)
		if err != nil {
			return err
		}
		defer rows.Close()
		seen := map[int64]bool{}
		for rows.Next() {
			var set int64
			var names sql.NullString // NULL: no device on the set
			if err := rows.Scan(&set, &names); err != nil {
				return err
			}
			packed := names.String
			if seen[set] {
				continue
			}
			seen[set] = true
			for packed != "" {
				n, rest, ok := strings.Cut(packed, ":")
				size, err := strconv.Atoi(n)
				if !ok || err != nil || size > len(rest) {
					return fmt.Errorf("devices of package set %d: bad packed names at %q", set, packed[:min(len(packed), 20)])
				}
				devices = append(devices, device{name: rest[:size], set: set})
				packed = rest[size:]
			}
		}
		return rows.Err()
	})
	if err != nil {
		return protocol.CVEResponse{}, fmt.Errorf("query cve %s: %w", cve, err)
	}

	// Each set's rows in answer order (advisory, package, installed),
	// one package on two arches listed once; then the devices by name.
	nExposed, nPatched := 0, 0
	for set, rs := range sets {
		slices.SortFunc(rs, func(a, b cveRow) int { return strings.Compare(a.advisory, b.advisory) })
		for i := range rs {
			r := &rs[i]
			slices.SortFunc(r.exposed, func(a, b protocol.CVEExposure) int {
				return cmp.Or(strings.Compare(a.Package, b.Package), strings.Compare(a.Installed, b.Installed))
			})
			r.exposed = slices.Compact(r.exposed)
		}
		sets[set] = rs
	}
	slices.SortFunc(devices, func(a, b device) int { return strings.Compare(a.name, b.name) })
	for _, d := range devices {
		for _, r := range sets[d.set] {
			if r.affected {
				nExposed += len(r.exposed)
			} else {
				nPatched++
			}
		}
	}
	resp.Exposed = make([]protocol.CVEExposure, 0, nExposed)
	resp.Patched = make([]protocol.CVEPatched, 0, nPatched)
	if limit > 0 && len(devices) == limit {
		resp.Next = devices[len(devices)-1].name
	}
	for _, d := range devices {
		for _, r := range sets[d.set] {
			if !r.affected {
				resp.Patched = append(resp.Patched, protocol.CVEPatched{Device: d.name, Advisory: r.advisory})
				continue
			}
			for _, e := range r.exposed {
				e.Device = d.name
				resp.Exposed = append(resp.Exposed, e)
			}
		}
	}
	return resp, nil
}

// summaryColumns read a device row and its counts for a DeviceSummary.
const summaryColumns = `d.id, d.name, d.labels, d.enrolled, d.last_seen, d.revoked,
	d.os_id, d.os_version_id, d.arch, d.kernel, d.hostname, d.agent_version, COALESCE(p.count, 0),
	(SELECT COUNT(*) FROM set_status s WHERE s.status_set = p.status_set AND s.affected = 1),
	(SELECT COUNT(*) FROM device_status o WHERE o.device_id = d.id AND o.status = 'pending-reboot'),
	(SELECT COALESCE(MAX(a.severity), -1) FROM set_status s JOIN advisories a ON a.id = s.advisory_id
		WHERE s.status_set = p.status_set AND s.affected = 1)`

func scanSummary(r Row) (protocol.DeviceSummary, error) {
	var d protocol.DeviceSummary
	var labels string
	var enrolled, seen, revoked int64
	var worst int
	err := r.Scan(&d.ID, &d.Name, &labels, &enrolled, &seen, &revoked,
		&d.Info.OSID, &d.Info.OSVersionID, &d.Info.Arch, &d.Info.Kernel, &d.Info.Hostname, &d.Info.AgentVersion,
		&d.Packages, &d.Affected, &d.PendingReboot, &worst)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal([]byte(labels), &d.Labels); err != nil {
		return d, fmt.Errorf("labels of device %s: %w", d.Name, err)
	}
	if len(d.Labels) == 0 {
		d.Labels = nil
	}
	d.Enrolled, d.LastSeen = fromMicros(enrolled), fromMicros(seen)
	if revoked != 0 {
		at := fromMicros(revoked)
		d.Revoked = &at
	}
	if worst >= 0 {
		d.WorstSeverity = advisory.Severity(worst).String()
	}
	return d, nil
}

// Devices lists devices by name, filtered.
func (s *Store) Devices(ctx context.Context, f store.DeviceFilter) ([]protocol.DeviceSummary, error) {
	q := `SELECT ` + summaryColumns + ` FROM devices d LEFT JOIN package_sets p ON p.id = d.package_set WHERE 1 = 1`
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
	q += ` ORDER BY d.name`
	ds, err := s.summaries(ctx, q, args)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return ds, nil
}

// Device returns one device by name with its advisories, most severe
// first.
func (s *Store) Device(ctx context.Context, name string) (protocol.Device, error) {
	var d protocol.Device
	err := s.db.Read(ctx, func(c Conn) error {
		var err error
		d.DeviceSummary, err = scanSummary(c.QueryRow(ctx, `SELECT `+summaryColumns+`
			FROM devices d LEFT JOIN package_sets p ON p.id = d.package_set WHERE d.name = ?`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		rows, err := c.Query(ctx, `SELECT s.advisory_id, a.severity, s.affected, COALESCE(o.status, ''), COALESCE(o.since, d.set_since)
			FROM devices d
			JOIN package_sets p ON p.id = d.package_set
			JOIN set_status s ON s.status_set = p.status_set
			JOIN advisories a ON a.id = s.advisory_id
			LEFT JOIN device_status o ON o.device_id = d.id AND o.advisory_id = s.advisory_id
			WHERE d.id = ? ORDER BY a.severity DESC, s.advisory_id`, d.ID)
		if err != nil {
			return err
		}
		defer rows.Close()
		d.Advisories = []protocol.DeviceAdvisory{}
		for rows.Next() {
			var a protocol.DeviceAdvisory
			var sev, affected int
			var override string
			var since int64
			if err := rows.Scan(&a.Advisory, &sev, &affected, &override, &since); err != nil {
				return err
			}
			a.Severity, a.Status, a.Since = advisory.Severity(sev).String(), effective(affected, override), fromMicros(since)
			d.Advisories = append(d.Advisories, a)
		}
		return rows.Err()
	})
	if err != nil {
		return protocol.Device{}, fmt.Errorf("device %s: %w", name, err)
	}
	return d, nil
}

// Advisory returns an advisory with the status of every device it applies
// to.
func (s *Store) Advisory(ctx context.Context, id string) (protocol.AdvisoryStatus, error) {
	var a protocol.AdvisoryStatus
	err := s.db.Read(ctx, func(c Conn) error {
		var typ string
		var sev int
		var issued int64
		err := c.QueryRow(ctx, `SELECT id, type, severity, issued, title FROM advisories WHERE id = ?`, id).
			Scan(&a.ID, &typ, &sev, &issued, &a.Title)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		a.Type, a.Severity, a.Issued = typ, advisory.Severity(sev).String(), fromMicros(issued)
		rows, err := c.Query(ctx, `SELECT cve FROM advisory_cves WHERE advisory_id = ? ORDER BY cve`, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var cve string
			if err := rows.Scan(&cve); err != nil {
				rows.Close()
				return err
			}
			a.CVEs = append(a.CVEs, cve)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = c.Query(ctx, `SELECT d.name, s.affected, COALESCE(o.status, '')
			FROM set_status s
			JOIN package_sets p ON p.status_set = s.status_set
			JOIN devices d ON d.package_set = p.id
			LEFT JOIN device_status o ON o.device_id = d.id AND o.advisory_id = s.advisory_id
			WHERE s.advisory_id = ? ORDER BY d.name`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		a.Devices = []protocol.AdvisoryDevice{}
		for rows.Next() {
			var d protocol.AdvisoryDevice
			var affected int
			var override string
			if err := rows.Scan(&d.Device, &affected, &override); err != nil {
				return err
			}
			d.Status = effective(affected, override)
			switch d.Status {
			case protocol.StatusAffected:
				a.Affected++
			case protocol.StatusPatched:
				a.Patched++
			case protocol.StatusPendingReboot:
				a.PendingReboot++
			case protocol.StatusFailed:
				a.Failed++
			}
			a.Devices = append(a.Devices, d)
		}
		return rows.Err()
	})
	if err != nil {
		return protocol.AdvisoryStatus{}, fmt.Errorf("advisory %s: %w", id, err)
	}
	return a, nil
}

// Analyze refreshes the planner's statistics, as PostgreSQL's autovacuum
// does a while after the tables grew; the benchmark runs it after loading
// a fleet, so queries are measured with the plans a running server has.
func (s *Store) Analyze(ctx context.Context) error {
	return s.db.Write(ctx, func(c Conn) error {
		_, err := c.Exec(ctx, `ANALYZE`)
		return err
	})
}

// PackageSets returns how many distinct package sets are stored.
func (s *Store) PackageSets(ctx context.Context) (int, error) {
	var n int
	err := s.db.Read(ctx, func(c Conn) error {
		return c.QueryRow(ctx, `SELECT COUNT(*) FROM package_sets`).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("count package sets: %w", err)
	}
	return n, nil
}

// effective is a device's status from its set's applicability and its
// override, if any.
func effective(affected int, override string) protocol.Status {
	switch {
	case override != "":
		return protocol.Status(override)
	case affected != 0:
		return protocol.StatusAffected
	}
	return protocol.StatusPatched
}

// StatusSets returns how many distinct status sets are stored (lists.go).
func (s *Store) StatusSets(ctx context.Context) (int, error) { return s.count(ctx, "status_sets") }

// FindingSets returns how many distinct finding sets are stored (lists.go).
func (s *Store) FindingSets(ctx context.Context) (int, error) { return s.count(ctx, "finding_sets") }

func (s *Store) count(ctx context.Context, table string) (int, error) {
	var n int
	err := s.db.Read(ctx, func(c Conn) error {
		return c.QueryRow(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	return n, nil
}
