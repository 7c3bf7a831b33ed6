package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// KnownCVE says whether an imported advisory names a CVE: the difference
// between a CVE no device is exposed to and one the server has never heard
// of (a typing error, or advisories not imported yet). One index lookup.
func (s *Store) KnownCVE(ctx context.Context, cve string) (bool, error) {
	cve = strings.ToUpper(strings.TrimSpace(cve))
	var one int
	err := s.db.Read(ctx, func(c Conn) error {
		return c.QueryRow(ctx, `SELECT 1 FROM advisory_cves WHERE cve = ? LIMIT 1`, cve).Scan(&one)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("query cve %s: %w", cve, err)
	}
	return true, nil
}
