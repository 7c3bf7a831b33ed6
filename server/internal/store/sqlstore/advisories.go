package sqlstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// filterLimit is the most advisories one statement names in an IN list.
const filterLimit = 200

// PutAdvisories stores advisories and updates the statuses they change.
func (s *Store) PutAdvisories(ctx context.Context, advs []advisory.Advisory, now time.Time, match store.MatchFunc) (int, error) {
	var changed []string
	err := s.db.Write(ctx, func(c Conn) error {
		changed = changed[:0]
		for i := range advs {
			ok, err := putAdvisory(ctx, c, &advs[i])
			if err != nil {
				return err
			}
			if ok {
				changed = append(changed, advs[i].ID)
			}
		}
		if len(changed) == 0 || match == nil {
			return nil
		}
		return s.reapply(ctx, c, changed, now, match)
	})
	if err != nil {
		return 0, fmt.Errorf("put advisories: %w", err)
	}
	return len(changed), nil
}

// putAdvisory upserts one advisory and its CVEs, reporting whether it was
// new or changed.
func putAdvisory(ctx context.Context, c Conn, a *advisory.Advisory) (bool, error) {
	if a.ID == "" {
		return false, errors.New("advisory with an empty id")
	}
	body, err := json.Marshal(a)
	if err != nil {
		return false, fmt.Errorf("advisory %s: %w", a.ID, err)
	}
	sum := sha256.Sum256(body)
	var old []byte
	err = c.QueryRow(ctx, `SELECT content_hash FROM advisories WHERE id = ?`, a.ID).Scan(&old)
	switch {
	case err == nil && bytes.Equal(old, sum[:]):
		return false, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("advisory %s: %w", a.ID, err)
	}
	_, err = c.Exec(ctx, `INSERT INTO advisories (id, ecosystem, type, severity, issued, updated, title, reboot_suggested, content_hash, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET ecosystem = excluded.ecosystem, type = excluded.type, severity = excluded.severity,
			issued = excluded.issued, updated = excluded.updated, title = excluded.title,
			reboot_suggested = excluded.reboot_suggested, content_hash = excluded.content_hash, body = excluded.body`,
		a.ID, a.Ecosystem, string(a.Type), int(a.Severity), micros(a.Issued), micros(a.Updated), a.Title,
		b2i(a.RebootSuggested), sum[:], body)
	if err != nil {
		return false, fmt.Errorf("advisory %s: %w", a.ID, err)
	}
	if _, err := c.Exec(ctx, `DELETE FROM advisory_cves WHERE advisory_id = ?`, a.ID); err != nil {
		return false, fmt.Errorf("advisory %s: %w", a.ID, err)
	}
	for _, cve := range a.CVEs {
		_, err := c.Exec(ctx, `INSERT INTO advisory_cves (cve, advisory_id) VALUES (?, ?) ON CONFLICT DO NOTHING`,
			strings.ToUpper(cve), a.ID)
		if err != nil {
			return false, fmt.Errorf("advisory %s: cve %s: %w", a.ID, cve, err)
		}
	}
	return true, nil
}

// reapply recomputes, for every package set in use, the findings and
// applicability of the changed advisories, and drops the device overrides
// that no longer hold. It touches sets, not devices: a thousand devices of
// one image cost one match, and the lists package sets share are brought
// up to date once each (lists.go).
func (s *Store) reapply(ctx context.Context, c Conn, changed []string, now time.Time, match store.MatchFunc) error {
	keep := make(map[string]bool, len(changed))
	for _, a := range changed {
		keep[a] = true
	}
	changed = slices.Sorted(maps.Keys(keep))
	type set struct {
		id               int64
		rel, digest      string
		findings, status sql.NullInt64 // NULL only for a set never matched: no rows
	}
	var sets []set
	rows, err := c.Query(ctx, `SELECT p.id, p.release, p.digest, p.finding_set, p.status_set FROM package_sets p
		WHERE p.id IN (SELECT package_set FROM devices WHERE package_set IS NOT NULL) ORDER BY p.id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var st set
		if err := rows.Scan(&st.id, &st.rel, &st.digest, &st.findings, &st.status); err != nil {
			rows.Close()
			return err
		}
		sets = append(sets, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// Sets no device uses now are not matched; they are marked stale and
	// matched afresh if a device comes back to one (ensureSet).
	if _, err := c.Exec(ctx, `UPDATE package_sets SET stale = 1
		WHERE stale = 0 AND id NOT IN (SELECT package_set FROM devices WHERE package_set IS NOT NULL)`); err != nil {
		return err
	}
	findings := make([]relist[store.Finding], 0, len(sets))
	status := make([]relist[verdict], 0, len(sets))
	for _, st := range sets {
		pkgs, err := s.loadSet(ctx, c, st.id, st.digest)
		if err != nil {
			return err
		}
		fs, err := match(st.rel, pkgs)
		if err != nil {
			return fmt.Errorf("match package set %d of release %q: %w", st.id, st.rel, err)
		}
		fs = findingSets.canonical(fs, keep)
		findings = append(findings, relist[store.Finding]{set: st.id, from: st.findings.Int64, now: fs})
		status = append(status, relist[verdict]{set: st.id, from: st.status.Int64, now: statusOf(fs, nil)})
	}
	if err := findingSets.update(ctx, c, changed, findings); err != nil {
		return fmt.Errorf("findings: %w", err)
	}
	if err := statusSets.update(ctx, c, changed, status); err != nil {
		return fmt.Errorf("applicability: %w", err)
	}
	for _, st := range sets {
		err = dropStaleOverrides(ctx, c, st.id, `device_id IN (SELECT id FROM devices WHERE package_set = ?)`, st.id)
		if err != nil {
			return err
		}
	}
	return nil
}
