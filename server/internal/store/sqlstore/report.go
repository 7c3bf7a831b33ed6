package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

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
	if err := res.err; err != nil {
		if f, ok := s.db.(Fuller); ok && !errors.Is(err, store.ErrStorageFull) && f.Full(err) {
			err = fmt.Errorf("%w: %w", store.ErrStorageFull, err)
		}
		return protocol.ReportResponse{}, fmt.Errorf("report %q of device %s: %w", r.ID, deviceID, err)
	}
	return res.resp, nil
}

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

// report applies q's report in c, in the writer (batch.go). Its full
// inventory, if it has one, is q.full, which prepare sorted and checked
// against the digest.
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
		if cy.ID > 0 {
			// A cycle the device numbered is kept once, whichever report
			// carries it again (an agent killed between queueing a cycle's
			// report and noting it queued reports it anew under another
			// id); what it says about statuses was applied the first time,
			// and applying it again could undo what a later cycle said.
			var n int
			err := c.QueryRow(ctx, `SELECT COUNT(*) FROM cycles WHERE device_id = ? AND cycle_id = ?`, deviceID, cy.ID).Scan(&n)
			if err != nil {
				return err
			}
			if n > 0 {
				continue
			}
		}
		body, err := json.Marshal(cy)
		if err != nil {
			return err
		}
		_, err = c.Exec(ctx, `INSERT INTO cycles (device_id, report_id, seq, outcome, finished, body, cycle_id) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			deviceID, r.ID, k, string(cy.Outcome), micros(cy.Finished), string(body), cy.ID)
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
