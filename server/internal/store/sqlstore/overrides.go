package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

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
// status rows are those of its status set (statusSets, lists.go).

// events are what a report says happened to advisories on the device.
type events struct {
	failed        map[string]bool // last attempt failed (false: a later one succeeded)
	reboot        map[string]bool // applied, takes effect after a reboot
	rebootPending bool
}

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
