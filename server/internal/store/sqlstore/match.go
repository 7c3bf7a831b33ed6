package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Matching a package set against the advisories of its release, and
// storing what the match gives as finding and status sets (lists.go).

// ensureSet returns the id of the package set of release rel with the
// given digest, storing it and its findings when it is new. pre is its
// match if prepare worked it out.
func (s *Store) ensureSet(ctx context.Context, c Conn, rel, digest string, pkgs []protocol.Package, now time.Time, match store.MatchFunc, pre *matched) (int64, error) {
	var id int64
	var stale int
	err := c.QueryRow(ctx, `SELECT id, stale FROM package_sets WHERE release = ? AND digest = ?`, rel, digest).Scan(&id, &stale)
	if err == nil && stale == 0 {
		s.know(rel, digest)
		return id, nil
	}
	if err == nil {
		// Advisories changed while no device used the set: match it anew.
		// The guarded update lets one transaction do it.
		n, err := c.Exec(ctx, `UPDATE package_sets SET stale = 0 WHERE id = ? AND stale = 1`, id)
		if err != nil || n == 0 {
			return id, err
		}
		var findings, status sql.NullInt64
		err = c.QueryRow(ctx, `SELECT finding_set, status_set FROM package_sets WHERE id = ?`, id).Scan(&findings, &status)
		if err != nil {
			return 0, err
		}
		if err := s.match(ctx, c, id, rel, digest, pkgs, match, pre); err != nil {
			return 0, err
		}
		// The lists it left may be no package set's now.
		if err := findingSets.dropUnused(ctx, c, findings.Int64); err != nil {
			return 0, err
		}
		return id, statusSets.dropUnused(ctx, c, status.Int64)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	blob, err := encodeSet(pkgs)
	if err != nil {
		return 0, err
	}
	err = c.QueryRow(ctx, `INSERT INTO package_sets (release, digest, packages, count, created) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (release, digest) DO NOTHING RETURNING id`, rel, digest, blob, len(pkgs), micros(now)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		// Another transaction stored it meanwhile, with its findings.
		err = c.QueryRow(ctx, `SELECT id FROM package_sets WHERE release = ? AND digest = ?`, rel, digest).Scan(&id)
		return id, err
	}
	if err != nil {
		return 0, err
	}
	s.sets.put(digest, pkgs)
	s.know(rel, digest)
	return id, s.match(ctx, c, id, rel, digest, pkgs, match, pre)
}

// matched is what a package set's match gives, in the form its lists
// store it (lists.go).
type matched struct {
	rel, digest string // the package set's
	findings    []store.Finding
	status      []verdict
	// findingsDigest and statusDigest name the lists.
	findingsDigest, statusDigest string
}

// matchSet matches the packages of the set of release rel with the given
// digest. With no MatchFunc the set has no findings, and is not affected
// by anything.
func matchSet(rel, digest string, pkgs []protocol.Package, match store.MatchFunc) (*matched, error) {
	var fs []store.Finding
	if match != nil {
		var err error
		if fs, err = match(rel, pkgs); err != nil {
			return nil, fmt.Errorf("match package set %s of release %q: %w", digest, rel, err)
		}
	}
	m := &matched{rel: rel, digest: digest, findings: findingSets.canonical(fs, nil)}
	m.status = statusOf(m.findings, nil)
	m.findingsDigest, m.statusDigest = findingSets.digest(m.findings), statusSets.digest(m.status)
	return m, nil
}

// match points package set id at the finding set and the status set its
// packages give, storing those that are new. pre is the match prepare
// worked out, if it did, for this set.
func (s *Store) match(ctx context.Context, c Conn, id int64, rel, digest string, pkgs []protocol.Package, match store.MatchFunc, pre *matched) error {
	m := pre
	if m == nil || m.rel != rel || m.digest != digest {
		var err error
		if m, err = matchSet(rel, digest, pkgs, match); err != nil {
			return err
		}
	}
	findings, err := findingSets.ensure(ctx, c, m.findings, m.findingsDigest)
	if err != nil {
		return fmt.Errorf("findings of package set %d: %w", id, err)
	}
	status, err := statusSets.ensure(ctx, c, m.status, m.statusDigest)
	if err != nil {
		return fmt.Errorf("applicability of package set %d: %w", id, err)
	}
	if _, err := c.Exec(ctx, `UPDATE package_sets SET finding_set = ?, status_set = ? WHERE id = ?`, findings, status, id); err != nil {
		return fmt.Errorf("applicability of package set %d: %w", id, err)
	}
	return nil
}
