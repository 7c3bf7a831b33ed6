package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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

// Report applies a device's report in one transaction.
func (s *Store) Report(ctx context.Context, deviceID string, r *protocol.Report, now time.Time, match store.MatchFunc) (protocol.ReportResponse, error) {
	if err := validate(r); err != nil {
		return protocol.ReportResponse{}, fmt.Errorf("report %q of device %s: %w", r.ID, deviceID, err)
	}
	var resp protocol.ReportResponse
	err := s.db.Write(ctx, func(c Conn) error {
		resp = protocol.ReportResponse{}
		return s.report(ctx, c, deviceID, r, now, match, &resp)
	})
	if errors.Is(err, errDuplicate) {
		err = s.db.Read(ctx, func(c Conn) error {
			var stale int
			if err := c.QueryRow(ctx, `SELECT inventory_stale FROM devices WHERE id = ?`, deviceID).Scan(&stale); err != nil {
				return err
			}
			resp = protocol.ReportResponse{Duplicate: true, NeedFullInventory: stale != 0}
			return nil
		})
	}
	if err != nil {
		return protocol.ReportResponse{}, fmt.Errorf("report %q of device %s: %w", r.ID, deviceID, err)
	}
	return resp, nil
}

func (s *Store) report(ctx context.Context, c Conn, deviceID string, r *protocol.Report, now time.Time, match store.MatchFunc, resp *protocol.ReportResponse) error {
	var seen int
	if err := c.QueryRow(ctx, `SELECT COUNT(*) FROM reports WHERE device_id = ? AND id = ?`, deviceID, r.ID).Scan(&seen); err != nil {
		return err
	}
	if seen > 0 {
		return errDuplicate
	}
	// Updating the device first takes its row lock (PostgreSQL), so two
	// reports of one device apply one after the other, each to the set the
	// other left.
	var setID sql.NullInt64
	var stale, rebootWas int
	i := r.Device
	err := c.QueryRow(ctx, `UPDATE devices SET last_seen = ?, os_id = ?, os_version_id = ?, arch = ?, kernel = ?, hostname = ?, agent_version = ?
		WHERE id = ? RETURNING package_set, inventory_stale, reboot_pending`,
		micros(now), i.OSID, i.OSVersionID, i.Arch, i.Kernel, i.Hostname, i.AgentVersion, deviceID).Scan(&setID, &stale, &rebootWas)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("device %s: %w", deviceID, store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	n, err := c.Exec(ctx, `INSERT INTO reports (device_id, id, received) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, deviceID, r.ID, micros(now))
	if err != nil {
		return err
	}
	if n == 0 { // a concurrent retry won
		return errDuplicate
	}

	// Work out the device's package set after the report.
	var pkgs []protocol.Package
	newSet := false
	switch inv := r.Inventory; inv.Kind {
	case protocol.InventoryFull:
		pkgs = sorted(inv.Packages)
		if got := protocol.InventoryDigest(pkgs); got != inv.Digest {
			return fmt.Errorf("%w: inventory.digest: %s, but the packages digest to %s", store.ErrBadReport, inv.Digest, got)
		}
		newSet = true
	case protocol.InventoryDelta:
		if !setID.Valid || stale != 0 {
			resp.NeedFullInventory = true
			break
		}
		var cur string
		if err := c.QueryRow(ctx, `SELECT digest FROM package_sets WHERE id = ?`, setID.Int64).Scan(&cur); err != nil {
			return fmt.Errorf("package set %d: %w", setID.Int64, err)
		}
		if cur == inv.Digest && len(inv.Added)+len(inv.Removed) == 0 {
			break // nothing changed
		}
		prev, err := loadSet(ctx, c, setID.Int64)
		if err != nil {
			return err
		}
		pkgs = applyDelta(prev, inv.Added, inv.Removed)
		if protocol.InventoryDigest(pkgs) != inv.Digest {
			resp.NeedFullInventory = true
			break
		}
		newSet = true
	}
	if resp.NeedFullInventory {
		if _, err := c.Exec(ctx, `UPDATE devices SET inventory_stale = 1 WHERE id = ?`, deviceID); err != nil {
			return err
		}
	}
	changed := false
	if newSet {
		id, err := s.ensureSet(ctx, c, r.Inventory.Digest, pkgs, now, match)
		if err != nil {
			return err
		}
		changed = !setID.Valid || setID.Int64 != id
		setID = sql.NullInt64{Int64: id, Valid: true}
		if _, err := c.Exec(ctx, `UPDATE devices SET package_set = ?, inventory_stale = 0 WHERE id = ?`, id, deviceID); err != nil {
			return err
		}
	}

	// Record the update cycles and what they say about statuses.
	ev := events{failed: map[string]bool{}, reboot: map[string]bool{}, succeeded: map[string]bool{}}
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
				ev.succeeded[a], ev.failed[a] = true, false
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
	if setID.Valid && (changed || len(r.Cycles) > 0 || b2i(r.RebootPending) != rebootWas) {
		return refreshDevice(ctx, c, deviceID, setID.Int64, nil, ev, now)
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

// applyDelta removes one instance of each removed package from prev and
// adds the added ones. A removed package not in prev is ignored; the
// digest check that follows catches a delta made against another set.
func applyDelta(prev, added, removed []protocol.Package) []protocol.Package {
	gone := make(map[string]int, len(removed))
	for _, p := range removed {
		gone[p.Key()+" "+p.ModularityLabel]++
	}
	out := make([]protocol.Package, 0, len(prev)+len(added))
	for _, p := range prev {
		if k := p.Key() + " " + p.ModularityLabel; gone[k] > 0 {
			gone[k]--
			continue
		}
		out = append(out, p)
	}
	return sorted(append(out, added...))
}

func loadSet(ctx context.Context, c Conn, id int64) ([]protocol.Package, error) {
	var blob []byte
	if err := c.QueryRow(ctx, `SELECT packages FROM package_sets WHERE id = ?`, id).Scan(&blob); err != nil {
		return nil, fmt.Errorf("package set %d: %w", id, err)
	}
	pkgs, err := decodeSet(blob)
	if err != nil {
		return nil, fmt.Errorf("package set %d: %w", id, err)
	}
	return pkgs, nil
}

// ensureSet returns the id of the package set with the given digest,
// storing it and its findings when it is new.
func (s *Store) ensureSet(ctx context.Context, c Conn, digest string, pkgs []protocol.Package, now time.Time, match store.MatchFunc) (int64, error) {
	var id int64
	var stale int
	err := c.QueryRow(ctx, `SELECT id, stale FROM package_sets WHERE digest = ?`, digest).Scan(&id, &stale)
	if err == nil && stale == 0 {
		return id, nil
	}
	if err == nil {
		// Advisories changed while no device used the set: match it anew.
		// The guarded update lets one transaction do it.
		n, err := c.Exec(ctx, `UPDATE package_sets SET stale = 0 WHERE id = ? AND stale = 1`, id)
		if err != nil || n == 0 {
			return id, err
		}
		if _, err := c.Exec(ctx, `DELETE FROM set_findings WHERE set_id = ?`, id); err != nil {
			return 0, err
		}
		return id, s.match(ctx, c, id, digest, pkgs, match)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	blob, err := encodeSet(pkgs)
	if err != nil {
		return 0, err
	}
	err = c.QueryRow(ctx, `INSERT INTO package_sets (digest, packages, count, created) VALUES (?, ?, ?, ?)
		ON CONFLICT (digest) DO NOTHING RETURNING id`, digest, blob, len(pkgs), micros(now)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		// Another transaction stored it meanwhile, with its findings.
		err = c.QueryRow(ctx, `SELECT id FROM package_sets WHERE digest = ?`, digest).Scan(&id)
		return id, err
	}
	if err != nil {
		return 0, err
	}
	return id, s.match(ctx, c, id, digest, pkgs, match)
}

func (s *Store) match(ctx context.Context, c Conn, id int64, digest string, pkgs []protocol.Package, match store.MatchFunc) error {
	if match == nil {
		return nil
	}
	fs, err := match(pkgs)
	if err != nil {
		return fmt.Errorf("match package set %s: %w", digest, err)
	}
	return insertFindings(ctx, c, id, fs, nil)
}

// insertFindings stores findings of a set, only those of advisories in
// keep when keep is not nil, a hundred rows to a statement.
func insertFindings(ctx context.Context, c Conn, setID int64, fs []store.Finding, keep map[string]bool) error {
	const batch = 100
	args := make([]any, 0, batch*7)
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		q := `INSERT INTO set_findings (set_id, advisory_id, package, arch, installed, fixed, affected) VALUES (?, ?, ?, ?, ?, ?, ?)` +
			strings.Repeat(`, (?, ?, ?, ?, ?, ?, ?)`, len(args)/7-1) + ` ON CONFLICT DO NOTHING`
		_, err := c.Exec(ctx, q, args...)
		args = args[:0]
		if err != nil {
			return fmt.Errorf("store findings of package set %d: %w", setID, err)
		}
		return nil
	}
	for _, f := range fs {
		if keep != nil && !keep[f.Advisory] {
			continue
		}
		args = append(args, setID, f.Advisory, f.Package, f.Arch, f.Installed, f.Fixed, b2i(f.Affected))
		if len(args) == batch*7 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// events are what a report says happened to advisories on the device.
type events struct {
	failed        map[string]bool // last attempt failed (false: a later one succeeded)
	reboot        map[string]bool // applied, takes effect after a reboot
	succeeded     map[string]bool // applied, in effect
	rebootPending bool
}

// any reports whether the events can change a status beyond what the
// package set says.
func (ev events) any() bool {
	return len(ev.failed)+len(ev.reboot)+len(ev.succeeded) > 0
}

// refreshDevice brings the device's status rows in line with its package
// set's findings and the events, for the advisories in only (all when only
// is nil). Only rows whose status changes are written.
func refreshDevice(ctx context.Context, c Conn, deviceID string, setID int64, only []string, ev events, now time.Time) error {
	filter, args := inClause("advisory_id", only)
	current := map[string]protocol.Status{}
	rows, err := c.Query(ctx, `SELECT advisory_id, status FROM device_status WHERE device_id = ?`+filter, append([]any{deviceID}, args...)...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var a, st string
		if err := rows.Scan(&a, &st); err != nil {
			rows.Close()
			return err
		}
		current[a] = protocol.Status(st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(current) == 0 && !ev.any() {
		// A device new to this set (its first report): every status is
		// the set's, written in one statement.
		_, err := c.Exec(ctx, `INSERT INTO device_status (device_id, advisory_id, status, since)
			SELECT ?, advisory_id, CASE WHEN MAX(affected) = 1 THEN 'affected' ELSE 'patched' END, ?
			FROM set_findings WHERE set_id = ?`+filter+` GROUP BY advisory_id`,
			append([]any{deviceID, micros(now), setID}, args...)...)
		return err
	}
	desired := map[string]bool{} // advisory -> affected
	rows, err = c.Query(ctx, `SELECT advisory_id, MAX(affected) FROM set_findings WHERE set_id = ?`+filter+` GROUP BY advisory_id`,
		append([]any{setID}, args...)...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var a string
		var aff int
		if err := rows.Scan(&a, &aff); err != nil {
			rows.Close()
			return err
		}
		desired[a] = aff != 0
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for a, affected := range desired {
		cur, had := current[a]
		next := nextStatus(cur, affected, a, ev)
		if had && next == cur {
			continue
		}
		_, err := c.Exec(ctx, `INSERT INTO device_status (device_id, advisory_id, status, since) VALUES (?, ?, ?, ?)
			ON CONFLICT (device_id, advisory_id) DO UPDATE SET status = excluded.status, since = excluded.since`,
			deviceID, a, string(next), micros(now))
		if err != nil {
			return err
		}
	}
	for a := range current {
		if _, ok := desired[a]; ok {
			continue
		}
		if _, err := c.Exec(ctx, `DELETE FROM device_status WHERE device_id = ? AND advisory_id = ?`, deviceID, a); err != nil {
			return err
		}
	}
	return nil
}

// nextStatus is the status transition rule. The package set decides
// affected versus patched; update results refine it: an affected device
// whose last attempt failed is failed until an attempt succeeds, and a
// patched one whose fix waits for a reboot is pending-reboot until the
// device reports no reboot pending.
func nextStatus(cur protocol.Status, affected bool, adv string, ev events) protocol.Status {
	if affected {
		failed, said := ev.failed[adv]
		switch {
		case said && failed:
			return protocol.StatusFailed
		case !said && cur == protocol.StatusFailed:
			return protocol.StatusFailed
		}
		return protocol.StatusAffected
	}
	if ev.rebootPending && (ev.reboot[adv] || cur == protocol.StatusPendingReboot && !ev.succeeded[adv]) {
		return protocol.StatusPendingReboot
	}
	return protocol.StatusPatched
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
