package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
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

// Advisories are kept as variants (store.Variant): a row of
// advisory_variants per (id, ecosystem) holding the advisory's JSON
// encoding and its SHA-256, and a row of advisories per id with what
// queries list and sort by (store.Variants.Summary) and its CVEs in
// advisory_cves. Statuses, findings and overrides name the id.

// PutAdvisories stores advisories and updates the statuses they change.
// Each advisory is its id's variant for its ecosystem; an id has changed
// when one of its variants is new or supersedes the one stored
// (store.Stamp.Supersedes), and only a changed id has its row, CVEs and
// applicability written again. It returns how many ids changed.
//
// Each variant's description (Advisory.Description) is kept in its own
// column, beside the variant and outside its digest (store.NewVariant). It
// is written with a new or superseding variant, and over the stored one of
// an unchanged variant when they differ (a variant stored before migration
// 0014 has none): that fills descriptions in on the next import of the
// same data without counting the advisory as changed, since no device's
// exposure moves.
func (s *Store) PutAdvisories(ctx context.Context, advs []advisory.Advisory, now time.Time, match store.MatchFunc) (int, error) {
	in, bodies, descs, err := incoming(advs)
	if err != nil {
		return 0, fmt.Errorf("put advisories: %w", err)
	}
	var changed []string
	err = s.db.Write(ctx, func(c Conn) error {
		var err error
		if changed, err = putVariants(ctx, c, in, bodies, descs); err != nil {
			return err
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

// incoming takes advs in by the variant rule, as putting them one at a
// time would: per id, the variants that win among advs, and by digest the
// encoding and the description of each (a digest names one id and
// ecosystem, since the encoding holds both).
func incoming(advs []advisory.Advisory) (map[string]store.Variants, map[[32]byte][]byte, map[[32]byte]string, error) {
	in := map[string]store.Variants{}
	bodies := map[[32]byte][]byte{}
	descs := map[[32]byte]string{}
	for i := range advs {
		if advs[i].ID == "" {
			return nil, nil, nil, fmt.Errorf("advisory %d of %d: empty id", i+1, len(advs))
		}
		v, body, err := store.NewVariant(advs[i])
		if err != nil {
			return nil, nil, nil, err
		}
		vs, ok := in[v.ID].With(v)
		if ok {
			in[v.ID] = vs
			bodies[v.Digest] = body
			descs[v.Digest] = advisory.BoundDescription(advs[i].Description)
		}
	}
	return in, bodies, descs, nil
}

// putVariants writes the variants of in that are new or supersede the
// stored ones, with their ids' rows and CVEs, and returns those ids,
// sorted.
func putVariants(ctx context.Context, c Conn, in map[string]store.Variants, bodies map[[32]byte][]byte, descs map[[32]byte]string) ([]string, error) {
	ids := slices.Sorted(maps.Keys(in))
	stored := map[string]map[string]store.Stamp{}
	storedDesc := map[[32]byte]sql.NullString{} // by digest
	err := eachChunk(ids, func(chunk []string) error {
		filter, args := inClause("advisory_id", chunk)
		rows, err := c.Query(ctx, `SELECT advisory_id, ecosystem, updated, digest, description FROM advisory_variants WHERE 1 = 1`+filter, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, eco string
			var updated int64
			var digest []byte
			var desc sql.NullString
			if err := rows.Scan(&id, &eco, &updated, &digest, &desc); err != nil {
				return err
			}
			st := store.Stamp{Updated: fromMicros(updated)}
			if len(digest) != len(st.Digest) {
				return fmt.Errorf("advisory %s: stored variant %q: digest of %d bytes", id, eco, len(digest))
			}
			copy(st.Digest[:], digest)
			storedDesc[st.Digest] = desc
			if stored[id] == nil {
				stored[id] = map[string]store.Stamp{}
			}
			stored[id][eco] = st
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read stored variants: %w", err)
	}

	// What to write, and the changed ids whose stored variants of other
	// ecosystems their rows must be summed up with.
	var changed, others []string
	write := map[string]store.Variants{}
	var redescribe []store.Variant // unchanged, with another description
	for _, id := range ids {
		var w store.Variants
		for _, v := range in[id] {
			old, ok := stored[id][v.Ecosystem]
			switch {
			case !ok || v.Stamp().Supersedes(old):
				w = append(w, v)
			case old.Digest == v.Digest:
				if d := storedDesc[v.Digest]; !d.Valid || d.String != descs[v.Digest] {
					redescribe = append(redescribe, v)
				}
			}
		}
		if len(w) == 0 {
			continue
		}
		changed = append(changed, id)
		write[id] = w
		if len(stored[id]) > 0 {
			others = append(others, id)
		}
	}
	all := maps.Clone(write)
	err = eachChunk(others, func(chunk []string) error {
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
			if slices.ContainsFunc(write[id], func(v store.Variant) bool { return v.Ecosystem == eco }) {
				continue // replaced
			}
			v, err := decodeVariant(id, eco, digest, body)
			if err != nil {
				return err
			}
			all[id], _ = all[id].With(v)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read stored variants: %w", err)
	}

	// Rows, then variants (which name their row), many to a statement.
	summary := make(map[string]advisory.Advisory, len(changed))
	up := newUpserter(ctx, c, `INSERT INTO advisories (id, type, severity, issued, updated, title, reboot_suggested) VALUES `,
		` ON CONFLICT (id) DO UPDATE SET type = excluded.type, severity = excluded.severity, issued = excluded.issued,
			updated = excluded.updated, title = excluded.title, reboot_suggested = excluded.reboot_suggested`, 7)
	for _, id := range changed {
		a := all[id].Summary()
		summary[id] = a
		if err := up.add(id, string(a.Type), int(a.Severity), micros(a.Issued), micros(a.Updated), a.Title, b2i(a.RebootSuggested)); err != nil {
			return nil, fmt.Errorf("advisories: %w", err)
		}
	}
	if err := up.flush(); err != nil {
		return nil, fmt.Errorf("advisories: %w", err)
	}
	up = newUpserter(ctx, c, `INSERT INTO advisory_variants (advisory_id, ecosystem, updated, digest, body, description) VALUES `,
		` ON CONFLICT (advisory_id, ecosystem) DO UPDATE SET updated = excluded.updated, digest = excluded.digest, body = excluded.body,
			description = excluded.description`, 6)
	for _, id := range changed {
		for _, v := range write[id] {
			if err := up.add(id, v.Ecosystem, micros(v.Updated), v.Digest[:], bodies[v.Digest], descs[v.Digest]); err != nil {
				return nil, fmt.Errorf("advisory variants: %w", err)
			}
		}
	}
	if err := up.flush(); err != nil {
		return nil, fmt.Errorf("advisory variants: %w", err)
	}
	for _, v := range redescribe {
		_, err := c.Exec(ctx, `UPDATE advisory_variants SET description = ? WHERE advisory_id = ? AND ecosystem = ? AND digest = ?`,
			descs[v.Digest], v.ID, v.Ecosystem, v.Digest[:])
		if err != nil {
			return nil, fmt.Errorf("advisory %s: variant %q: description: %w", v.ID, v.Ecosystem, err)
		}
	}
	err = eachChunk(changed, func(chunk []string) error {
		filter, args := inClause("advisory_id", chunk)
		_, err := c.Exec(ctx, `DELETE FROM advisory_cves WHERE 1 = 1`+filter, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("advisory cves: %w", err)
	}
	ins := newInserter(ctx, c, `INSERT INTO advisory_cves (cve, advisory_id) VALUES `, 2)
	for _, id := range changed {
		for _, cve := range summary[id].CVEs {
			if err := ins.add(strings.ToUpper(cve), id); err != nil {
				return nil, fmt.Errorf("advisory %s: cves: %w", id, err)
			}
		}
	}
	if err := ins.flush(); err != nil {
		return nil, fmt.Errorf("advisory cves: %w", err)
	}
	return changed, nil
}

// decodeVariant reads a stored variant, checking it is the one its row
// says.
func decodeVariant(id, eco string, digest, body []byte) (store.Variant, error) {
	var v store.Variant
	if err := json.Unmarshal(body, &v.Advisory); err != nil {
		return v, fmt.Errorf("advisory %s: stored variant %q: %w", id, eco, err)
	}
	if v.ID != id || v.Ecosystem != eco {
		return v, fmt.Errorf("advisory %s: stored variant %q holds advisory %s of ecosystem %q", id, eco, v.ID, v.Ecosystem)
	}
	if len(digest) != len(v.Digest) {
		return v, fmt.Errorf("advisory %s: stored variant %q: digest of %d bytes", id, eco, len(digest))
	}
	copy(v.Digest[:], digest)
	return v, nil
}

// upserter writes rows of cols values, insertBatch to a statement: prefix,
// the rows, then suffix (the ON CONFLICT clause). No two rows it is given
// may share a key: PostgreSQL refuses a statement that updates a row
// twice.
type upserter struct {
	ctx            context.Context
	c              Conn
	prefix, suffix string
	cols           int
	args           []any
}

func newUpserter(ctx context.Context, c Conn, prefix, suffix string, cols int) *upserter {
	return &upserter{ctx: ctx, c: c, prefix: prefix, suffix: suffix, cols: cols}
}

func (u *upserter) add(row ...any) error {
	u.args = append(u.args, row...)
	if len(u.args) == insertBatch*u.cols {
		return u.flush()
	}
	return nil
}

func (u *upserter) flush() error {
	if len(u.args) == 0 {
		return nil
	}
	row := "(?" + strings.Repeat(", ?", u.cols-1) + ")"
	_, err := u.c.Exec(u.ctx, u.prefix+row+strings.Repeat(", "+row, len(u.args)/u.cols-1)+u.suffix, u.args...)
	u.args = u.args[:0]
	return err
}

// eachChunk calls fn with ids in chunks of at most filterLimit.
func eachChunk(ids []string, fn func(chunk []string) error) error {
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), filterLimit)]
		ids = ids[len(chunk):]
		if err := fn(chunk); err != nil {
			return err
		}
	}
	return nil
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
