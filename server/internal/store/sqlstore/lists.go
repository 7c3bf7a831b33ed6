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
	"hash"
	"maps"
	"slices"
	"strings"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Shared lists. What a package set's match gives is stored as two lists,
// each once per distinct content and pointed at by every package set that
// gives it:
//
//   - a finding set (finding_sets, rows in set_findings): the findings,
//     one row per installed package an advisory names. Package sets that
//     differ only in packages no advisory names share one: a device
//     missing an unrelated package, or with another version of it.
//   - a status set (status_sets, rows in set_status): the applicability,
//     one (advisory, affected) row per advisory. It is what the
//     advisory-ordered index the CVE question reads is built from, and is
//     shared more widely still: by package sets whose findings differ only
//     in versions on the same side of every fix.
//
// So a new package set, as a delta report makes, costs a row of its own
// and seldom any row of findings or status: those writes were most of what
// a report that made a new set cost.
//
// A list is named by the SHA-256 of its rows (digest), so a package set
// joins one only with the exact rows its own match gives: no device's
// report can change what another device's set says. When an advisory
// changes (reapply), the package sets on one list may come to disagree:
// each moves to the list of its new content, found by digest or made; the
// list is changed in place only when all the package sets in use on it
// change alike. A list no package set points at is dropped.

// listKind describes one kind of shared list and its rows R, which must be
// sortable into a canonical order with one row per key.
type listKind[R comparable] struct {
	what  string // for errors: "status set"
	table string // the lists: id, digest
	rows  string // their rows
	col   string // the rows' column naming their list, and package_sets' pointer
	// columns are the rows' other columns, as values and scan give them.
	columns  string
	values   func(R) []any
	scan     func(Row) (R, error)
	advisory func(R) string
	// compare orders rows by key; of rows with one key only the first in
	// compare-then-tie order is stored (a match may name a package twice).
	compare func(a, b R) int
	tie     func(a, b R) int
	write   func(h hash.Hash, r R)
}

// verdict is one row of a status set.
type verdict struct {
	advisory string
	affected bool
}

var statusSets = listKind[verdict]{
	what: "status set", table: "status_sets", rows: "set_status", col: "status_set",
	columns: "advisory_id, affected",
	values:  func(v verdict) []any { return []any{v.advisory, b2i(v.affected)} },
	scan: func(r Row) (verdict, error) {
		var v verdict
		var affected int
		err := r.Scan(&v.advisory, &affected)
		v.affected = affected != 0
		return v, err
	},
	advisory: func(v verdict) string { return v.advisory },
	compare:  func(a, b verdict) int { return strings.Compare(a.advisory, b.advisory) },
	tie:      func(a, b verdict) int { return cmp.Compare(b2i(a.affected), b2i(b.affected)) },
	write: func(h hash.Hash, v verdict) {
		writeField(h, v.advisory)
		h.Write([]byte{byte(b2i(v.affected))})
	},
}

var findingSets = listKind[store.Finding]{
	what: "finding set", table: "finding_sets", rows: "set_findings", col: "finding_set",
	columns: "advisory_id, package, arch, installed, fixed, affected",
	values: func(f store.Finding) []any {
		return []any{f.Advisory, f.Package, f.Arch, f.Installed, f.Fixed, b2i(f.Affected)}
	},
	scan: func(r Row) (store.Finding, error) {
		var f store.Finding
		var affected int
		err := r.Scan(&f.Advisory, &f.Package, &f.Arch, &f.Installed, &f.Fixed, &affected)
		f.Affected = affected != 0
		return f, err
	},
	advisory: func(f store.Finding) string { return f.Advisory },
	compare:  compareFindings,
	tie: func(a, b store.Finding) int {
		return cmp.Or(strings.Compare(a.Fixed, b.Fixed), cmp.Compare(b2i(a.Affected), b2i(b.Affected)))
	},
	write: func(h hash.Hash, f store.Finding) {
		for _, s := range [...]string{f.Advisory, f.Package, f.Arch, f.Installed, f.Fixed} {
			writeField(h, s)
		}
		h.Write([]byte{byte(b2i(f.Affected))})
	},
}

// compareFindings is the order findings are stored in, by their key.
func compareFindings(a, b store.Finding) int {
	return cmp.Or(strings.Compare(a.Advisory, b.Advisory), strings.Compare(a.Package, b.Package),
		strings.Compare(a.Arch, b.Arch), strings.Compare(a.Installed, b.Installed))
}

// writeField hashes s with its length first, so no two lists of fields
// hash alike.
func writeField(h hash.Hash, s string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	h.Write([]byte(s))
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

// canonical returns rows sorted, the first of each key kept, and only
// those of advisories in keep when keep is not nil: what the list stores.
func (k *listKind[R]) canonical(rows []R, keep map[string]bool) []R {
	out := make([]R, 0, len(rows))
	for _, r := range rows {
		if keep == nil || keep[k.advisory(r)] {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b R) int { return cmp.Or(k.compare(a, b), k.tie(a, b)) })
	return slices.CompactFunc(out, func(a, b R) bool { return k.compare(a, b) == 0 })
}

// digest names a list by its canonical rows.
func (k *listKind[R]) digest(rows []R) string {
	h := sha256.New()
	for _, r := range rows {
		k.write(h, r)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ensure returns the list holding exactly rows (canonical), whose digest
// is given ("": to be computed), storing it when there is none.
func (k *listKind[R]) ensure(ctx context.Context, c Conn, rows []R, digest string) (int64, error) {
	if digest == "" {
		digest = k.digest(rows)
	}
	var id int64
	err := c.QueryRow(ctx, `SELECT id FROM `+k.table+` WHERE digest = ?`, digest).Scan(&id)
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return id, err
	}
	err = c.QueryRow(ctx, `INSERT INTO `+k.table+` (digest) VALUES (?) ON CONFLICT (digest) DO NOTHING RETURNING id`, digest).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		// Another transaction stored it meanwhile, with its rows.
		err = c.QueryRow(ctx, `SELECT id FROM `+k.table+` WHERE digest = ?`, digest).Scan(&id)
		return id, err
	}
	if err != nil {
		return 0, err
	}
	return id, k.insert(ctx, c, id, rows)
}

// insert adds rows, in key order, to list id; it must have none of their
// keys.
func (k *listKind[R]) insert(ctx context.Context, c Conn, id int64, rows []R) error {
	n := strings.Count(k.columns, ",") + 2
	ins := newInserter(ctx, c, `INSERT INTO `+k.rows+` (`+k.col+`, `+k.columns+`) VALUES `, n)
	for _, r := range rows {
		if err := ins.add(append([]any{id}, k.values(r)...)...); err != nil {
			return fmt.Errorf("store %s %d: %w", k.what, id, err)
		}
	}
	if err := ins.flush(); err != nil {
		return fmt.Errorf("store %s %d: %w", k.what, id, err)
	}
	return nil
}

// read returns the rows of list id of the advisories in advs (all of them
// when advs is nil), in key order.
func (k *listKind[R]) read(ctx context.Context, c Conn, id int64, advs []string) ([]R, error) {
	var out []R
	for first := true; first || len(advs) > 0; first = false {
		var chunk []string
		if advs != nil {
			chunk = advs[:min(len(advs), filterLimit)]
			advs = advs[len(chunk):]
		}
		filter, args := inClause("advisory_id", chunk)
		rows, err := c.Query(ctx, `SELECT `+k.columns+` FROM `+k.rows+` WHERE `+k.col+` = ?`+filter, append([]any{id}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("read %s %d: %w", k.what, id, err)
		}
		for rows.Next() {
			r, err := k.scan(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("read %s %d: %w", k.what, id, err)
			}
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read %s %d: %w", k.what, id, err)
		}
	}
	slices.SortFunc(out, k.compare)
	return out, nil
}

// relist is a package set in use whose rows for the changed advisories an
// advisory import recomputed.
type relist[R comparable] struct {
	set  int64 // the package set
	from int64 // the list it points at
	now  []R   // its rows for the changed advisories, canonical
}

// update brings the lists of the package sets in use up to date with the
// changed advisories; sets must hold every package set in use. A list
// whose package sets in use all change alike is changed in place (unless
// the content they need is already stored: then they move to it);
// otherwise those that change move to the list of their new content,
// found or made.
func (k *listKind[R]) update(ctx context.Context, c Conn, changed []string, sets []relist[R]) error {
	isChanged := make(map[string]bool, len(changed))
	for _, a := range changed {
		isChanged[a] = true
	}
	byFrom := map[int64][]relist[R]{}
	for _, r := range sets {
		byFrom[r.from] = append(byFrom[r.from], r)
	}
	for _, from := range slices.Sorted(maps.Keys(byFrom)) {
		was, err := k.read(ctx, c, from, changed)
		if err != nil {
			return err
		}
		var old []R // the whole list, read once one package set differs
		moves := map[string][]relist[R]{}
		lists := map[string][]R{}
		stay := 0
		for _, r := range byFrom[from] {
			if slices.Equal(r.now, was) {
				stay++
				continue
			}
			if old == nil {
				if old, err = k.read(ctx, c, from, nil); err != nil {
					return err
				}
			}
			list := make([]R, 0, len(old)+len(r.now))
			for _, x := range old {
				if !isChanged[k.advisory(x)] {
					list = append(list, x)
				}
			}
			list = append(list, r.now...)
			slices.SortFunc(list, k.compare)
			d := k.digest(list)
			moves[d] = append(moves[d], r)
			lists[d] = list
		}
		if len(moves) == 0 {
			continue
		}
		for _, d := range slices.Sorted(maps.Keys(moves)) {
			var to int64
			err := c.QueryRow(ctx, `SELECT id FROM `+k.table+` WHERE digest = ?`, d).Scan(&to)
			switch {
			case err == nil:
			case !errors.Is(err, sql.ErrNoRows):
				return err
			case stay == 0 && len(moves) == 1:
				// Every package set in use on it changes alike: change it.
				if err := k.change(ctx, c, from, d, changed, moves[d][0].now); err != nil {
					return err
				}
				continue
			default:
				if to, err = k.ensure(ctx, c, lists[d], d); err != nil {
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
				_, err := c.Exec(ctx, `UPDATE package_sets SET `+k.col+` = ? WHERE id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)`,
					append([]any{to}, chunk...)...)
				if err != nil {
					return err
				}
			}
		}
		if err := k.dropUnused(ctx, c, from); err != nil {
			return err
		}
	}
	return nil
}

// change replaces the rows of the changed advisories in list id by now,
// and its digest by digest, the whole new content's.
func (k *listKind[R]) change(ctx context.Context, c Conn, id int64, digest string, changed []string, now []R) error {
	if _, err := c.Exec(ctx, `UPDATE `+k.table+` SET digest = ? WHERE id = ?`, digest, id); err != nil {
		return err
	}
	for advs := changed; len(advs) > 0; {
		chunk := advs[:min(len(advs), filterLimit)]
		advs = advs[len(chunk):]
		filter, args := inClause("advisory_id", chunk)
		if _, err := c.Exec(ctx, `DELETE FROM `+k.rows+` WHERE `+k.col+` = ?`+filter, append([]any{id}, args...)...); err != nil {
			return err
		}
	}
	return k.insert(ctx, c, id, now)
}

// dropUnused deletes list id, and its rows, if no package set points at
// it.
func (k *listKind[R]) dropUnused(ctx context.Context, c Conn, id int64) error {
	_, err := c.Exec(ctx, `DELETE FROM `+k.table+` WHERE id = ? AND NOT EXISTS (SELECT 1 FROM package_sets WHERE `+k.col+` = ?)`, id, id)
	return err
}
