package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// AdvisoryVariants returns every stored release (ecosystem) of one
// advisory, sorted by ecosystem, each with its description (empty when
// the source gave none or it was stored before migration 0014 and not
// imported since); none for an unknown id.
func (s *Store) AdvisoryVariants(ctx context.Context, id string) ([]store.Variant, error) {
	var vs []store.Variant
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT advisory_id, ecosystem, digest, body, description FROM advisory_variants WHERE advisory_id = ? ORDER BY ecosystem`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var aid, eco string
			var digest, body []byte
			var desc sql.NullString
			if err := rows.Scan(&aid, &eco, &digest, &body, &desc); err != nil {
				return err
			}
			v, err := decodeVariant(aid, eco, digest, body)
			if err != nil {
				return err
			}
			v.Description = desc.String
			vs = append(vs, v)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("advisory %s: variants: %w", id, err)
	}
	return vs, nil
}
