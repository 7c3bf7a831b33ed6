package sqlstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Status sets. A package set's applicability, one (advisory, affected)
// row per advisory that names one of its packages, is stored once per
// distinct list, as a status set, and package sets point at it
// (package_sets.status_set). The list is what set_status holds and what
// the advisory-ordered index the CVE question reads is built from; it is
// the same for package sets that differ only in packages no advisory
// names, or in versions on the same side of every fix, as the copies of
// an image do. Findings, which name installed versions, stay per package
// set.
//
// A status set is named by the SHA-256 of its rows (statusDigest), so a
// package set joins one only with the exact list its own findings give:
// no device's report can change what another device's set says. When an
// advisory changes (reapply), the package sets of one status set may come
// to disagree: each moves to the status set of its new list, found by
// digest or made; the status set is updated in place only when all the
// package sets in use on it move together.

// verdict is one row of a status set.
type verdict struct {
	advisory string
	affected bool
}

// statusOf returns the applicability findings make, in advisory order:
// per advisory, affected when any of its findings is. Only findings of
// advisories in keep count, when keep is not nil.
func statusOf(fs []store.Finding, keep map[string]bool) []verdict {
	m := map[string]bool{}
	for _, f := range fs {
		if keep == nil || keep[f.Advisory] {
			m[f.Advisory] = m[f.Advisory] || f.Affected
		}
	}
	vs := make([]verdict, 0, len(m))
	for _, a := range slices.Sorted(maps.Keys(m)) {
		vs = append(vs, verdict{a, m[a]})
	}
	return vs
}

// statusDigest names a status set by its rows, which must be in advisory
// order: each advisory id with its length, so no two lists encode alike.
func statusDigest(vs []verdict) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64 + 1]byte
	for _, v := range vs {
		k := binary.PutUvarint(n[:], uint64(len(v.advisory)))
		n[k] = byte(b2i(v.affected))
		h.Write(n[:k])
		h.Write([]byte(v.advisory))
		h.Write(n[k : k+1])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ensureStatusSet returns the status set holding exactly vs (in advisory
// order), storing it when there is none.
func ensureStatusSet(ctx context.Context, c Conn, vs []verdict) (int64, error) {
	digest := statusDigest(vs)
	var id int64
	err := c.QueryRow(ctx, `SELECT id FROM status_sets WHERE digest = ?`, digest).Scan(&id)
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return id, err
	}
	err = c.QueryRow(ctx, `INSERT INTO status_sets (digest) VALUES (?) ON CONFLICT (digest) DO NOTHING RETURNING id`, digest).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		// Another transaction stored it meanwhile, with its rows.
		err = c.QueryRow(ctx, `SELECT id FROM status_sets WHERE digest = ?`, digest).Scan(&id)
		return id, err
	}
	if err != nil {
		return 0, err
	}
	return id, insertStatus(ctx, c, id, vs)
}

// insertStatus adds rows to a status set; it must have none for their
// advisories.
func insertStatus(ctx context.Context, c Conn, id int64, vs []verdict) error {
	ins := newInserter(ctx, c, `INSERT INTO set_status (status_set, advisory_id, affected) VALUES `, 3)
	for _, v := range vs {
		if err := ins.add(id, v.advisory, b2i(v.affected)); err != nil {
			return fmt.Errorf("store status set %d: %w", id, err)
		}
	}
	if err := ins.flush(); err != nil {
		return fmt.Errorf("store status set %d: %w", id, err)
	}
	return nil
}

// readStatus returns the rows of a status set, in advisory order.
func readStatus(ctx context.Context, c Conn, id int64) ([]verdict, error) {
	rows, err := c.Query(ctx, `SELECT advisory_id, affected FROM set_status WHERE status_set = ? ORDER BY advisory_id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var vs []verdict
	for rows.Next() {
		var v verdict
		var affected int
		if err := rows.Scan(&v.advisory, &affected); err != nil {
			return nil, err
		}
		v.affected = affected != 0
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read status set %d: %w", id, err)
	}
	return vs, nil
}

// replaced returns old with the rows of the advisories in changed replaced
// by now (both in advisory order; now holds only changed advisories).
func replaced(old []verdict, changed map[string]bool, now []verdict) []verdict {
	out := make([]verdict, 0, len(old)+len(now))
	for _, v := range old {
		if !changed[v.advisory] {
			out = append(out, v)
		}
	}
	out = append(out, now...)
	slices.SortFunc(out, func(a, b verdict) int { return strings.Compare(a.advisory, b.advisory) })
	return out
}

// restatus is a package set in use whose applicability for the changed
// advisories an advisory import recomputed.
type restatus struct {
	set  int64     // the package set
	from int64     // its status set
	now  []verdict // its rows for the changed advisories, in advisory order
}

// restatusSets brings the status sets of the package sets in use up to
// date with the changed advisories; sets must hold every package set in
// use. A status set whose package sets in use all change alike is updated
// in place (unless the list they need is already stored: then they move
// to it); otherwise those that change move to the status set of their
// new list, found or made.
func restatusSets(ctx context.Context, c Conn, changed map[string]bool, sets []restatus) error {
	changedList := slices.Sorted(maps.Keys(changed))
	byFrom := map[int64][]restatus{}
	for _, r := range sets {
		byFrom[r.from] = append(byFrom[r.from], r)
	}
	for _, from := range slices.Sorted(maps.Keys(byFrom)) {
		old, err := readStatus(ctx, c, from)
		if err != nil {
			return err
		}
		var oldChanged []verdict
		for _, v := range old {
			if changed[v.advisory] {
				oldChanged = append(oldChanged, v)
			}
		}
		// The package sets whose rows for the changed advisories differ
		// from the status set's, grouped by the list they now need.
		moves := map[string][]restatus{}
		lists := map[string][]verdict{}
		stay := 0
		for _, r := range byFrom[from] {
			if slices.Equal(r.now, oldChanged) {
				stay++
				continue
			}
			list := replaced(old, changed, r.now)
			d := statusDigest(list)
			moves[d] = append(moves[d], r)
			lists[d] = list
		}
		for _, d := range slices.Sorted(maps.Keys(moves)) {
			var to int64
			err := c.QueryRow(ctx, `SELECT id FROM status_sets WHERE digest = ?`, d).Scan(&to)
			switch {
			case err == nil:
			case !errors.Is(err, sql.ErrNoRows):
				return err
			case stay == 0 && len(moves) == 1:
				// Every package set in use on it changes alike: change it.
				if err := updateStatusSet(ctx, c, from, d, changedList, moves[d][0].now); err != nil {
					return err
				}
				continue
			default:
				if to, err = ensureStatusSet(ctx, c, lists[d]); err != nil {
					return err
				}
			}
			ids := make([]any, 0, len(moves[d]))
			for _, r := range moves[d] {
				ids = append(ids, r.set)
			}
			for len(ids) > 0 {
				chunk := ids[:min(len(ids), filterLimit)]
				ids = ids[len(chunk):]
				_, err := c.Exec(ctx, `UPDATE package_sets SET status_set = ? WHERE id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)`,
					append([]any{to}, chunk...)...)
				if err != nil {
					return err
				}
			}
		}
		// A status set no package set points at any more is dropped.
		_, err = c.Exec(ctx, `DELETE FROM status_sets WHERE id = ? AND NOT EXISTS (SELECT 1 FROM package_sets WHERE status_set = ?)`, from, from)
		if err != nil {
			return err
		}
	}
	return nil
}

// updateStatusSet replaces the rows of the changed advisories in status
// set id by now, and its digest by digest, the new rows' whole list's.
func updateStatusSet(ctx context.Context, c Conn, id int64, digest string, changed []string, now []verdict) error {
	if _, err := c.Exec(ctx, `UPDATE status_sets SET digest = ? WHERE id = ?`, digest, id); err != nil {
		return err
	}
	for advs := changed; len(advs) > 0; {
		chunk := advs[:min(len(advs), filterLimit)]
		advs = advs[len(chunk):]
		filter, args := inClause("advisory_id", chunk)
		if _, err := c.Exec(ctx, `DELETE FROM set_status WHERE status_set = ?`+filter, append([]any{id}, args...)...); err != nil {
			return err
		}
	}
	return insertStatus(ctx, c, id, now)
}

// compareFindings is the order findings are stored in.
func compareFindings(a, b store.Finding) int {
	return cmp.Or(strings.Compare(a.Advisory, b.Advisory), strings.Compare(a.Package, b.Package),
		strings.Compare(a.Arch, b.Arch), strings.Compare(a.Installed, b.Installed))
}
