package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// maxReportID bounds a report id's length.
const maxReportID = 128

// validate checks what the store relies on, naming the field at fault.
func validate(r *protocol.Report) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", store.ErrBadReport, field, fmt.Sprintf(format, args...))
	}
	if r.ID == "" {
		return bad("id", "empty")
	}
	if len(r.ID) > maxReportID {
		return bad("id", "%d bytes, at most %d allowed", len(r.ID), maxReportID)
	}
	checkPkgs := func(field string, ps []protocol.Package) error {
		for i, p := range ps {
			switch {
			case p.Name == "":
				return bad(fmt.Sprintf("%s[%d].name", field, i), "empty")
			case p.Version == "":
				return bad(fmt.Sprintf("%s[%d].version", field, i), "empty")
			case p.Arch == "":
				return bad(fmt.Sprintf("%s[%d].arch", field, i), "empty")
			case strings.ContainsAny(p.Name+p.Epoch+p.Version+p.Release+p.Arch+p.ModularityLabel, "\t\n"):
				return bad(fmt.Sprintf("%s[%d]", field, i), "tab or newline in a field")
			}
			for _, c := range p.Epoch {
				if c < '0' || c > '9' {
					return bad(fmt.Sprintf("%s[%d].epoch", field, i), "%q is not a number", p.Epoch)
				}
			}
		}
		return nil
	}
	inv := &r.Inventory
	switch inv.Kind {
	case protocol.InventoryFull:
		if len(inv.Added)+len(inv.Removed) > 0 {
			return bad("inventory", "a full inventory carries no added or removed")
		}
		if err := checkPkgs("inventory.packages", inv.Packages); err != nil {
			return err
		}
	case protocol.InventoryDelta:
		if len(inv.Packages) > 0 {
			return bad("inventory.packages", "a delta inventory carries added and removed, not packages")
		}
		if err := checkPkgs("inventory.added", inv.Added); err != nil {
			return err
		}
		if err := checkPkgs("inventory.removed", inv.Removed); err != nil {
			return err
		}
	default:
		return bad("inventory.kind", "%q, want %q or %q", inv.Kind, protocol.InventoryFull, protocol.InventoryDelta)
	}
	if b, err := hex.DecodeString(inv.Digest); err != nil || len(b) != sha256.Size || strings.ToLower(inv.Digest) != inv.Digest {
		return bad("inventory.digest", "%q is not 64 lower-case hex digits", inv.Digest)
	}
	for i, cy := range r.Cycles {
		switch cy.Outcome {
		case protocol.OutcomeApplied, protocol.OutcomeRolledBack, protocol.OutcomeFailed, protocol.OutcomeAbandoned:
		default:
			return bad(fmt.Sprintf("cycles[%d].outcome", i), "unknown outcome %q", cy.Outcome)
		}
	}
	return nil
}

// Report applies a device's report in one transaction, shared with the
// reports that arrived with it (batch.go), and answers once it committed.
func (s *Store) Report(ctx context.Context, deviceID string, r *protocol.Report, now time.Time, match store.MatchFunc) (protocol.ReportResponse, error) {
	q, err := s.prepare(ctx, deviceID, r, now, match)
	if err != nil {
		return protocol.ReportResponse{}, fmt.Errorf("report %q of device %s: %w", r.ID, deviceID, err)
	}
	select {
	case s.queue <- q:
	case <-s.stop:
		return protocol.ReportResponse{}, fmt.Errorf("report %q of device %s: %w", r.ID, deviceID, errClosed)
	case <-ctx.Done():
		return protocol.ReportResponse{}, fmt.Errorf("report %q of device %s: %w", r.ID, deviceID, ctx.Err())
	}
	// Once queued, the report is waited for even if ctx ends: the writer
	// skips it if it has not started it, and otherwise the answer says
	// whether it committed.
	res := <-q.done
	if res.err != nil {
		return protocol.ReportResponse{}, fmt.Errorf("report %q of device %s: %w", r.ID, deviceID, res.err)
	}
	return res.resp, nil
}

// report applies q's report in c. Its full inventory, if it has one, is
// q.full, sorted and checked against the digest.
// prepare checks a report and does, in the caller's goroutine, what can be
// done before the writer takes it: a full inventory is sorted and checked
// against its digest, a delta is predicted (predict).
func (s *Store) prepare(ctx context.Context, deviceID string, r *protocol.Report, now time.Time, match store.MatchFunc) (*reportReq, error) {
	if err := validate(r); err != nil {
		return nil, err
	}
	q := &reportReq{ctx: ctx, deviceID: deviceID, r: r, now: now, match: match, done: make(chan reportResult, 1)}
	pkgs := q.after
	switch r.Inventory.Kind {
	case protocol.InventoryDelta:
		s.predict(q)
		pkgs = q.after
	case protocol.InventoryFull:
		q.full = sorted(r.Inventory.Packages)
		if got := protocol.InventoryDigest(q.full); got != r.Inventory.Digest {
			return nil, fmt.Errorf("%w: inventory.digest: %s, but the packages digest to %s", store.ErrBadReport, r.Inventory.Digest, got)
		}
		pkgs = q.full
	}
	// A set the store has not seen is matched here, in the caller's
	// goroutine, not by the writer. The caller holds the MatchFunc it
	// would have handed the writer; a failed match is left to the writer
	// to find again and answer.
	if rel := store.Release(r.Device); pkgs != nil && !s.known(rel, r.Inventory.Digest) {
		q.pre, _ = matchSet(rel, r.Inventory.Digest, pkgs, match)
	}
	return q, nil
}

func (s *Store) report(ctx context.Context, c Conn, q *reportReq, resp *protocol.ReportResponse) error {
	deviceID, r, now, match := q.deviceID, q.r, q.now, q.match
	// The report's id first: a duplicate, or a device unknown, is found
	// before anything changed (batch.go relies on it). Then updating the
	// device takes its row lock (PostgreSQL), so two reports of one device
	// apply one after the other, each to the set the other left; the same
	// statement reads what the rest needs: the device's set, its digest
	// and release, and whether it has overrides.
	n, err := c.Exec(ctx, `INSERT INTO reports (device_id, id, received) SELECT ?, ?, ?
		WHERE EXISTS (SELECT 1 FROM devices WHERE id = ?) ON CONFLICT DO NOTHING`, deviceID, r.ID, micros(now), deviceID)
	if err != nil {
		return err
	}
	if n == 0 { // already applied, a concurrent retry won, or no such device
		var known int
		if err := c.QueryRow(ctx, `SELECT COUNT(*) FROM devices WHERE id = ?`, deviceID).Scan(&known); err != nil {
			return err
		}
		if known == 0 {
			return fmt.Errorf("device %s: %w", deviceID, store.ErrNotFound)
		}
		return errDuplicate
	}
	q.touched = true
	var setID sql.NullInt64
	var stale, rebootWas, overrides int
	var curDigest, curRelease string
	i := r.Device
	err = c.QueryRow(ctx, `UPDATE devices SET last_seen = ?, os_id = ?, os_version_id = ?, arch = ?, kernel = ?, hostname = ?, agent_version = ?
		WHERE id = ? RETURNING package_set, inventory_stale, reboot_pending,
			COALESCE((SELECT p.digest FROM package_sets p WHERE p.id = devices.package_set), ''),
			COALESCE((SELECT p.release FROM package_sets p WHERE p.id = devices.package_set), ''),
			(SELECT COUNT(*) FROM device_status o WHERE o.device_id = devices.id)`,
		micros(now), i.OSID, i.OSVersionID, i.Arch, i.Kernel, i.Hostname, i.AgentVersion, deviceID).
		Scan(&setID, &stale, &rebootWas, &curDigest, &curRelease, &overrides)
	if err != nil {
		return err
	}

	// Work out the device's package set after the report. Sets are keyed
	// by the device's release as well as by digest.
	rel := store.Release(r.Device)
	var pkgs []protocol.Package
	newSet := false
	switch inv := r.Inventory; inv.Kind {
	case protocol.InventoryFull:
		pkgs = q.full
		newSet = true
	case protocol.InventoryDelta:
		if !setID.Valid || stale != 0 {
			resp.NeedFullInventory = true
			break
		}
		unchanged := curDigest == inv.Digest && len(inv.Added)+len(inv.Removed) == 0
		if unchanged && curRelease == rel {
			break // nothing changed
		}
		if !unchanged && q.from == curDigest {
			pkgs, newSet = q.after, true // worked out by predict, against this set
			break
		}
		prev, err := s.loadSet(ctx, c, setID.Int64, curDigest)
		if err != nil {
			return err
		}
		if unchanged {
			// Same packages, another release (the device changed
			// distribution, or the set predates release keys).
			pkgs = prev
			newSet = true
			break
		}
		pkgs = applyDelta(prev, inv.Added, inv.Removed)
		if protocol.InventoryDigest(pkgs) != inv.Digest {
			resp.NeedFullInventory = true
			break
		}
		newSet = true
	}
	if resp.NeedFullInventory && stale == 0 {
		if _, err := c.Exec(ctx, `UPDATE devices SET inventory_stale = 1 WHERE id = ?`, deviceID); err != nil {
			return err
		}
	}
	q.digest = curDigest
	if newSet {
		q.digest = r.Inventory.Digest
	}
	changed := false
	if newSet {
		id, err := s.ensureSet(ctx, c, rel, r.Inventory.Digest, pkgs, now, match, q.pre)
		if err != nil {
			return err
		}
		changed = !setID.Valid || setID.Int64 != id
		setID = sql.NullInt64{Int64: id, Valid: true}
		switch {
		case changed:
			_, err = c.Exec(ctx, `UPDATE devices SET package_set = ?, set_since = ?, inventory_stale = 0 WHERE id = ?`, id, micros(now), deviceID)
		case stale != 0:
			_, err = c.Exec(ctx, `UPDATE devices SET inventory_stale = 0 WHERE id = ?`, deviceID)
		}
		if err != nil {
			return err
		}
	}

	// Record the update cycles and what they say about statuses.
	ev := events{failed: map[string]bool{}, reboot: map[string]bool{}}
	for k, cy := range r.Cycles {
		body, err := json.Marshal(cy)
		if err != nil {
			return err
		}
		_, err = c.Exec(ctx, `INSERT INTO cycles (device_id, report_id, seq, outcome, finished, body) VALUES (?, ?, ?, ?, ?, ?)`,
			deviceID, r.ID, k, string(cy.Outcome), micros(cy.Finished), string(body))
		if err != nil {
			return err
		}
		for _, a := range cy.Advisories {
			switch {
			case cy.Outcome == protocol.OutcomeApplied && cy.RebootNeeded:
				ev.reboot[a], ev.failed[a] = true, false
			case cy.Outcome == protocol.OutcomeApplied:
				ev.failed[a] = false
			default:
				ev.failed[a] = true
			}
		}
	}
	ev.rebootPending = r.RebootPending
	if b2i(r.RebootPending) != rebootWas {
		if _, err := c.Exec(ctx, `UPDATE devices SET reboot_pending = ? WHERE id = ?`, b2i(r.RebootPending), deviceID); err != nil {
			return err
		}
	}
	// A device with no overrides that reports no cycle has none to drop
	// or add: most reports of a quiet fleet stop here.
	if setID.Valid && (len(r.Cycles) > 0 || overrides > 0) && (changed || len(r.Cycles) > 0 || b2i(r.RebootPending) != rebootWas) {
		return applyEvents(ctx, c, deviceID, setID.Int64, ev, now)
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sorted returns a sorted copy of pkgs, the order a set is stored in.
// Repeated packages are kept: the digest counts them, so the stored set
// must too.
func sorted(pkgs []protocol.Package) []protocol.Package {
	out := slices.Clone(pkgs)
	sortPackages(out)
	return out
}

// predict works out, in the caller's goroutine, the set a delta report
// makes, from the set the device's last report left (if the store
// remembers it; from the cache, or read through a reader), so the writer
// only has to check that the device is still on that set. A delta that
// does not add up is left to the writer.
func (s *Store) predict(q *reportReq) {
	s.mu.Lock()
	from, ok := s.digests[q.deviceID]
	s.mu.Unlock()
	if !ok {
		return
	}
	inv := &q.r.Inventory
	if from == inv.Digest && len(inv.Added)+len(inv.Removed) == 0 {
		return
	}
	prev, ok := s.sets.get(from)
	if !ok {
		// Read through a reader rather than leave it to the writer.
		var err error
		if prev, err = s.readSet(q.ctx, store.Release(q.r.Device), from); err != nil {
			return
		}
	}
	after := applyDelta(prev, inv.Added, inv.Removed)
	if protocol.InventoryDigest(after) == inv.Digest {
		q.from, q.after = from, after
	}
}

// remember notes the digest of the set a device's committed report left
// it on, for predict.
func (s *Store) remember(deviceID, digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.digests[deviceID] = digest
}

// maxKnown bounds the package sets Store.known remembers; past it, it
// starts again.
const maxKnown = 1 << 16

// known reports whether the package set of release rel with the digest
// was stored, as far as this Store saw: a hint (its transaction may have
// rolled back since) that spares prepare matching a set the writer will
// find.
func (s *Store) known(rel, digest string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.knownSets[rel+"\x00"+digest]
}

// know notes a package set stored or found, for known.
func (s *Store) know(rel, digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.knownSets) >= maxKnown {
		clear(s.knownSets)
	}
	s.knownSets[rel+"\x00"+digest] = true
}

// applyDelta removes one instance of each removed package from prev, which
// is sorted, and merges in the added ones, so the result is sorted too. A
// removed package not in prev is ignored; the digest check that follows
// catches a delta made against another set.
func applyDelta(prev, added, removed []protocol.Package) []protocol.Package {
	// An empty epoch is epoch 0, as in the digest.
	key := func(p protocol.Package) protocol.Package {
		if p.Epoch == "" {
			p.Epoch = "0"
		}
		return p
	}
	gone := make(map[protocol.Package]int, len(removed))
	for _, p := range removed {
		gone[key(p)]++
	}
	add := sorted(added)
	out := make([]protocol.Package, 0, len(prev)+len(added))
	for _, p := range prev {
		if len(gone) > 0 {
			if k := key(p); gone[k] > 0 {
				gone[k]--
				continue
			}
		}
		for len(add) > 0 && comparePackages(add[0], p) < 0 {
			out = append(out, add[0])
			add = add[1:]
		}
		out = append(out, p)
	}
	return append(out, add...)
}

// loadSet returns the packages of set id, whose digest is given, from the
// cache or the database.
func (s *Store) loadSet(ctx context.Context, c Conn, id int64, digest string) ([]protocol.Package, error) {
	if pkgs, ok := s.sets.get(digest); ok {
		return pkgs, nil
	}
	var blob []byte
	if err := c.QueryRow(ctx, `SELECT packages FROM package_sets WHERE id = ?`, id).Scan(&blob); err != nil {
		return nil, fmt.Errorf("package set %d: %w", id, err)
	}
	pkgs, err := decodeSet(blob)
	if err != nil {
		return nil, fmt.Errorf("package set %d: %w", id, err)
	}
	s.sets.put(digest, pkgs)
	return pkgs, nil
}

// readSet reads the packages of the set of release rel with the digest
// in a read transaction, and caches them.
func (s *Store) readSet(ctx context.Context, rel, digest string) ([]protocol.Package, error) {
	var blob []byte
	err := s.db.Read(ctx, func(c Conn) error {
		return c.QueryRow(ctx, `SELECT packages FROM package_sets WHERE release = ? AND digest = ?`, rel, digest).Scan(&blob)
	})
	if err != nil {
		return nil, fmt.Errorf("package set %s: %w", digest, err)
	}
	pkgs, err := decodeSet(blob)
	if err != nil {
		return nil, fmt.Errorf("package set %s: %w", digest, err)
	}
	s.sets.put(digest, pkgs)
	return pkgs, nil
}

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

// inserter writes rows with multi-row INSERTs, a hundred rows to a
// statement, ignoring rows already there.
type inserter struct {
	ctx    context.Context
	c      Conn
	prefix string
	cols   int
	args   []any
}

const insertBatch = 100

func newInserter(ctx context.Context, c Conn, prefix string, cols int) *inserter {
	return &inserter{ctx: ctx, c: c, prefix: prefix, cols: cols, args: make([]any, 0, insertBatch*cols)}
}

func (in *inserter) add(row ...any) error {
	in.args = append(in.args, row...)
	if len(in.args) == insertBatch*in.cols {
		return in.flush()
	}
	return nil
}

func (in *inserter) flush() error {
	if len(in.args) == 0 {
		return nil
	}
	row := "(?" + strings.Repeat(", ?", in.cols-1) + ")"
	q := in.prefix + row + strings.Repeat(", "+row, len(in.args)/in.cols-1) + ` ON CONFLICT DO NOTHING`
	_, err := in.c.Exec(in.ctx, q, in.args...)
	in.args = in.args[:0]
	return err
}

// events are what a report says happened to advisories on the device.
type events struct {
	failed        map[string]bool // last attempt failed (false: a later one succeeded)
	reboot        map[string]bool // applied, takes effect after a reboot
	rebootPending bool
}

// Status rules. A device's status for an advisory is its package set's
// (affected or patched; not affected when the set has no row), except
// where a device_status row overrides it:
//
//   - failed: the last attempt to apply the advisory failed or was rolled
//     back, and the set is still affected. It holds until an attempt
//     succeeds or the set stops being affected.
//   - pending-reboot: the advisory was applied with a reboot needed, the
//     set is patched, and the device still reports a reboot pending. It
//     holds until the device reports none pending or the set is no longer
//     patched.
//
// Only overrides are stored, so a device of a known image costs no status
// rows, and an advisory's arrival touches sets, not devices. A set's
// status rows are those of its status set (status.go).

// dropStaleOverrides deletes overrides that no longer hold for the
// devices in where (a condition on device_id), whose package set is set.
func dropStaleOverrides(ctx context.Context, c Conn, set int64, where string, args ...any) error {
	_, err := c.Exec(ctx, `DELETE FROM device_status WHERE `+where+` AND (
		(status = 'failed' AND advisory_id NOT IN (SELECT s.advisory_id FROM package_sets p
			JOIN set_status s ON s.status_set = p.status_set AND s.affected = 1 WHERE p.id = ?))
		OR (status = 'pending-reboot' AND advisory_id NOT IN (SELECT s.advisory_id FROM package_sets p
			JOIN set_status s ON s.status_set = p.status_set AND s.affected = 0 WHERE p.id = ?)))`,
		append(args, set, set)...)
	return err
}

// applyEvents brings the device's overrides in line with its set and what
// the report says happened.
func applyEvents(ctx context.Context, c Conn, deviceID string, set int64, ev events, now time.Time) error {
	if err := dropStaleOverrides(ctx, c, set, `device_id = ?`, deviceID); err != nil {
		return err
	}
	if !ev.rebootPending {
		if _, err := c.Exec(ctx, `DELETE FROM device_status WHERE device_id = ? AND status = 'pending-reboot'`, deviceID); err != nil {
			return err
		}
	}
	setStatus := func(adv string) (affected, known bool, err error) {
		var a int
		err = c.QueryRow(ctx, `SELECT s.affected FROM package_sets p JOIN set_status s ON s.status_set = p.status_set
			WHERE p.id = ? AND s.advisory_id = ?`, set, adv).Scan(&a)
		if errors.Is(err, sql.ErrNoRows) {
			return false, false, nil
		}
		return a != 0, err == nil, err
	}
	override := func(adv string, st protocol.Status) error {
		_, err := c.Exec(ctx, `INSERT INTO device_status (device_id, advisory_id, status, since) VALUES (?, ?, ?, ?)
			ON CONFLICT (device_id, advisory_id) DO UPDATE SET status = excluded.status, since = excluded.since`,
			deviceID, adv, string(st), micros(now))
		return err
	}
	for _, adv := range slices.Sorted(maps.Keys(ev.failed)) {
		affected, known, err := setStatus(adv)
		if err != nil {
			return err
		}
		switch {
		case ev.failed[adv] && known && affected:
			err = override(adv, protocol.StatusFailed)
		case !ev.failed[adv]:
			_, err = c.Exec(ctx, `DELETE FROM device_status WHERE device_id = ? AND advisory_id = ? AND status = 'failed'`, deviceID, adv)
		}
		if err != nil {
			return err
		}
	}
	if ev.rebootPending {
		for _, adv := range slices.Sorted(maps.Keys(ev.reboot)) {
			affected, known, err := setStatus(adv)
			if err != nil {
				return err
			}
			if known && !affected {
				if err := override(adv, protocol.StatusPendingReboot); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// inClause returns " AND col IN (?, ...)" and its arguments, or nothing
// when vals is nil.
func inClause(col string, vals []string) (string, []any) {
	if vals == nil {
		return "", nil
	}
	if len(vals) == 0 {
		return " AND 1 = 0", nil
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return " AND " + col + " IN (?" + strings.Repeat(", ?", len(vals)-1) + ")", args
}
