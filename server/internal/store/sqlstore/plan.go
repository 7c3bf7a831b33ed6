package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// DevicePlan returns the advisories whose status for the device is
// affected or failed, most severe first and then by id, each with the
// device's installed packages older than its fix. A package's Location and
// SHA256 come from the stored advisory's package of the same name, arch
// (or none) and EVR, when its source gave them.
func (s *Store) DevicePlan(ctx context.Context, deviceID string) ([]protocol.PlanAdvisory, error) {
	plan := []protocol.PlanAdvisory{}
	err := s.db.Read(ctx, func(c Conn) error {
		var set sql.NullInt64
		err := c.QueryRow(ctx, `SELECT package_set FROM devices WHERE id = ?`, deviceID).Scan(&set)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if !set.Valid {
			return nil // no inventory yet: nothing applies
		}
		rows, err := c.Query(ctx, `SELECT s.advisory_id, a.type, a.severity, a.reboot_suggested, s.affected, COALESCE(o.status, '')
			FROM package_sets p
			JOIN set_status s ON s.status_set = p.status_set
			JOIN advisories a ON a.id = s.advisory_id
			LEFT JOIN device_status o ON o.device_id = ? AND o.advisory_id = s.advisory_id
			WHERE p.id = ? AND s.affected = 1
			ORDER BY a.severity DESC, s.advisory_id`, deviceID, set.Int64)
		if err != nil {
			return err
		}
		index := map[string]int{}
		for rows.Next() {
			var a protocol.PlanAdvisory
			var sev, reboot, affected int
			var override string
			if err := rows.Scan(&a.ID, &a.Type, &sev, &reboot, &affected, &override); err != nil {
				rows.Close()
				return err
			}
			a.Status = effective(affected, override)
			if a.Status != protocol.StatusAffected && a.Status != protocol.StatusFailed {
				continue
			}
			a.Severity, a.RebootSuggested, a.Packages = advisory.Severity(sev).String(), reboot != 0, []protocol.PlanPackage{}
			index[a.ID] = len(plan)
			plan = append(plan, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(plan) == 0 {
			return nil
		}
		rows, err = c.Query(ctx, `SELECT f.advisory_id, f.package, f.arch, f.installed, f.fixed
			FROM package_sets p JOIN set_findings f ON f.finding_set = p.finding_set
			WHERE p.id = ? AND f.affected = 1 ORDER BY f.advisory_id, f.package, f.arch, f.installed`, set.Int64)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var p protocol.PlanPackage
			if err := rows.Scan(&id, &p.Name, &p.Arch, &p.Installed, &p.Fixed); err != nil {
				rows.Close()
				return err
			}
			if i, ok := index[id]; ok {
				plan[i].Packages = append(plan[i].Packages, p)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return locate(ctx, c, plan)
	})
	if err != nil {
		return nil, fmt.Errorf("plan of device %s: %w", deviceID, err)
	}
	return plan, nil
}

// locate fills the Location and SHA256 of the plan's packages from the
// stored variants of their advisories, where those carry them (an import
// from a repository). A package of a variant fits a planned one when name
// and EVR agree and its arch is the same or not given; one of the same
// arch wins, and otherwise the first found, variants taken in ecosystem
// order. A variant that names no file is not decoded: most come from OSV,
// which gives none, and a plan is built on every poll.
func locate(ctx context.Context, c Conn, plan []protocol.PlanAdvisory) error {
	index := make(map[string]int, len(plan))
	ids := make([]string, len(plan))
	for i, a := range plan {
		index[a.ID], ids[i] = i, a.ID
	}
	variants := map[string]store.Variants{}
	err := eachChunk(ids, func(chunk []string) error {
		filter, args := inClause("advisory_id", chunk)
		rows, err := c.Query(ctx, `SELECT advisory_id, ecosystem, digest, body FROM advisory_variants WHERE 1 = 1`+filter, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, eco string
			var digest, body []byte
			if err := rows.Scan(&id, &eco, &digest, &body); err != nil {
				return err
			}
			if !namesFile(body) {
				continue
			}
			v, err := decodeVariant(id, eco, digest, body)
			if err != nil {
				return err
			}
			variants[id], _ = variants[id].With(v)
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("locate packages: %w", err)
	}
	for id, vs := range variants {
		a := &plan[index[id]]
		for i := range a.Packages {
			p := &a.Packages[i]
			fixed, err := rpmver.ParseEVR(p.Fixed)
			if err != nil {
				return fmt.Errorf("advisory %s: package %s: fixed %q: %w", a.ID, p.Name, p.Fixed, err)
			}
			exact := false
			for _, v := range vs {
				for _, ap := range v.Packages {
					if exact || ap.Name != p.Name || (ap.Arch != "" && ap.Arch != p.Arch) || ap.Filename == "" || rpmver.Compare(ap.EVR, fixed) != 0 {
						continue
					}
					if p.Location == "" || ap.Arch == p.Arch {
						p.Location, p.SHA256 = ap.Filename, ap.SHA256
					}
					exact = ap.Arch == p.Arch // an exact arch wins over a package without one
				}
			}
		}
	}
	return nil
}

// namesFile reports whether an advisory's JSON encoding (store.NewVariant)
// gives some package a file name. encoding/json writes every package's
// "Filename" key, empty ones as "Filename":"", and escapes a quote inside
// a string, so the keys are counted exactly.
func namesFile(body []byte) bool {
	return bytes.Count(body, []byte(`"Filename":"`)) != bytes.Count(body, []byte(`"Filename":""`))
}
