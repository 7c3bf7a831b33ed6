package sqlstore

import (
	"context"
	"fmt"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// LoadAdvisories returns every stored variant of every advisory, with the
// digest it was stored with, in the database's order of id and ecosystem.
// The server reads
// them once at start to rebuild its in-memory matching index, which a
// report is matched against.
func (s *Store) LoadAdvisories(ctx context.Context) ([]store.Variant, error) {
	var vs []store.Variant
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT advisory_id, ecosystem, digest, body FROM advisory_variants ORDER BY advisory_id, ecosystem`)
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
			v, err := decodeVariant(id, eco, digest, body)
			if err != nil {
				return err
			}
			vs = append(vs, v)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("load advisories: %w", err)
	}
	return vs, nil
}
