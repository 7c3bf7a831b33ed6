package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// LoadAdvisories returns every stored advisory, as PutAdvisories stored it.
// The server reads them once at start to rebuild its in-memory matching
// index, which a report is matched against.
func (s *Store) LoadAdvisories(ctx context.Context) ([]advisory.Advisory, error) {
	var advs []advisory.Advisory
	err := s.db.Read(ctx, func(c Conn) error {
		rows, err := c.Query(ctx, `SELECT id, body FROM advisories ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var body []byte
			if err := rows.Scan(&id, &body); err != nil {
				return err
			}
			var a advisory.Advisory
			if err := json.Unmarshal(body, &a); err != nil {
				return fmt.Errorf("advisory %s: %w", id, err)
			}
			advs = append(advs, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("load advisories: %w", err)
	}
	return advs, nil
}
