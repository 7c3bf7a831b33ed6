package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Rematch matches again, with match, every package set a device uses that
// was stored at or after since, and points it at the findings and
// applicability that match gives, as ensureSet does for a stale set. A
// server replica calls it after it reloaded its advisories because another
// replica imported: a set its reports stored while the import ran was
// matched against the advisories before the import, which the import's own
// matching did not see. It returns how many sets it matched.
func (s *Store) Rematch(ctx context.Context, since time.Time, match store.MatchFunc) (int, error) {
	n := 0
	err := s.db.Write(ctx, func(c Conn) error {
		n = 0
		type set struct {
			id               int64
			rel, digest      string
			findings, status sql.NullInt64
		}
		var sets []set
		rows, err := c.Query(ctx, `SELECT p.id, p.release, p.digest, p.finding_set, p.status_set FROM package_sets p
			WHERE p.created >= ? AND p.id IN (SELECT package_set FROM devices WHERE package_set IS NOT NULL) ORDER BY p.id`,
			micros(since))
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
		for _, st := range sets {
			pkgs, err := s.loadSet(ctx, c, st.id, st.digest)
			if err != nil {
				return err
			}
			if err := s.match(ctx, c, st.id, st.rel, st.digest, pkgs, match, nil); err != nil {
				return err
			}
			if err := findingSets.dropUnused(ctx, c, st.findings.Int64); err != nil {
				return err
			}
			if err := statusSets.dropUnused(ctx, c, st.status.Int64); err != nil {
				return err
			}
			if err := dropStaleOverrides(ctx, c, st.id, `device_id IN (SELECT id FROM devices WHERE package_set = ?)`, st.id); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rematch package sets: %w", err)
	}
	return n, nil
}
