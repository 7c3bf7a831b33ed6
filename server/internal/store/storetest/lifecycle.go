package storetest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// testLifecycle: a device in service is revoked (its credential stops
// finding it, it stays listed with its history) and another is deleted
// (it, its labels, overrides, report ids and cycles go; its name is free
// again); enrolment tokens are listed without their secrets and revoked.
func testLifecycle(t *testing.T, b Backend) {
	f := newFleet(t, b)
	ctx := t.Context()
	const ssl = "ALSA-2023:3722"
	failed := func(id string) *protocol.Report {
		r := full(id, f.ubi)
		r.Cycles = []protocol.CycleResult{{Advisories: []string{ssl}, Outcome: protocol.OutcomeFailed, Error: "rpm: transaction failed"}}
		return r
	}
	lost := f.enroll("pi-lost")
	gone := f.enroll("pi-gone")
	kept := f.enroll("pi-kept")
	for _, d := range []store.Device{lost, gone, kept} {
		f.report(d.ID, failed("r-"+d.Name))
	}

	t.Run("revoke", func(t *testing.T) {
		at := t0.Add(time.Hour)
		id, revoked, err := f.s.RevokeDevice(ctx, "pi-lost", at)
		if err != nil || id != lost.ID || !revoked.Equal(at) {
			t.Fatalf("RevokeDevice = %s, %v, %v; want %s at %v", id, revoked, err, lost.ID, at)
		}
		if _, err := f.s.DeviceByCredential(ctx, store.HashSecret("cred-pi-lost")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the revoked credential still finds a device: %v", err)
		}
		if d, err := f.s.DeviceByCredential(ctx, store.HashSecret("cred-pi-kept")); err != nil || d.ID != kept.ID {
			t.Errorf("another device's credential: %+v, %v", d, err)
		}
		// Revoking again keeps the first time.
		if _, again, err := f.s.RevokeDevice(ctx, "pi-lost", at.Add(time.Hour)); err != nil || !again.Equal(at) {
			t.Errorf("revoking twice: %v, %v; want the first time %v kept", again, err, at)
		}
		if _, _, err := f.s.RevokeDevice(ctx, "pi-never", at); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoking an unknown device: %v, want ErrNotFound", err)
		}
		for _, d := range mustDevices(t, f.s) {
			switch {
			case d.Name == "pi-lost" && (d.Revoked == nil || !d.Revoked.Equal(at)):
				t.Errorf("the revoked device is listed revoked at %v, want %v", d.Revoked, at)
			case d.Name != "pi-lost" && d.Revoked != nil:
				t.Errorf("%s is listed revoked at %v", d.Name, d.Revoked)
			}
		}
		if d, err := f.s.Device(ctx, "pi-lost"); err != nil || d.Revoked == nil || !d.Revoked.Equal(at) {
			t.Errorf("Device(pi-lost).Revoked = %v, %v; want %v", d.Revoked, err, at)
		}
		// Still listed, with its history: its failed override stays.
		if got := f.statuses("pi-lost"); got[ssl] != protocol.StatusFailed {
			t.Errorf("revoked device's %s = %q, want its failed status kept", ssl, got[ssl])
		}
		if names := deviceNames(mustDevices(t, f.s)); !slices.Contains(names, "pi-lost") {
			t.Errorf("devices %v: the revoked one is not listed", names)
		}
		// Its name stays taken.
		f.n++
		if err := f.s.CreateEnrollToken(ctx, store.EnrollToken{ID: "et-again", Hash: store.HashSecret("again"), Expires: t0.Add(time.Hour), UsesLeft: 1, Created: t0}); err != nil {
			t.Fatal(err)
		}
		_, err = f.s.Enroll(ctx, store.HashSecret("again"), store.NewDevice{ID: "dev-lost-2", Name: "pi-lost", CredentialHash: store.HashSecret("cred-2"), Enrolled: t0})
		if !errors.Is(err, store.ErrNameTaken) {
			t.Errorf("enrolling a revoked device's name: %v, want ErrNameTaken", err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		before := deviceRows(t, f.s, gone.ID)
		for _, table := range []string{"devices", "device_labels", "device_status", "reports", "cycles"} {
			if before[table] == 0 {
				t.Fatalf("before the delete, %s holds no row of the device (%v): the test proves nothing", table, before)
			}
		}
		id, err := f.s.DeleteDevice(ctx, "pi-gone")
		if err != nil || id != gone.ID {
			t.Fatalf("DeleteDevice = %s, %v", id, err)
		}
		if rows := deviceRows(t, f.s, gone.ID); slices.ContainsFunc(slices.Collect(maps.Values(rows)), func(n int) bool { return n != 0 }) {
			t.Errorf("rows left after the delete: %v", rows)
		}
		if _, err := f.s.Device(ctx, "pi-gone"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Device(pi-gone) after the delete: %v, want ErrNotFound", err)
		}
		if _, err := f.s.DeviceByCredential(ctx, store.HashSecret("cred-pi-gone")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the deleted device's credential: %v, want ErrNotFound", err)
		}
		if names := deviceNames(mustDevices(t, f.s)); !slices.Equal(names, []string{"pi-kept", "pi-lost"}) {
			t.Errorf("devices after the delete = %v", names)
		}
		cve, err := f.s.CVE(ctx, "CVE-2023-2650")
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range cve.Exposed {
			if x.Device == "pi-gone" {
				t.Errorf("the CVE answer still names the deleted device: %+v", x)
			}
		}
		if len(cve.Exposed) == 0 {
			t.Errorf("the CVE answer lost the other devices too")
		}
		// A report still in flight for it is refused.
		if _, err := f.s.Report(ctx, gone.ID, full("late", f.ubi), t0.Add(time.Hour), f.match); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a report from the deleted device: %v, want ErrNotFound", err)
		}
		if _, err := f.s.DeleteDevice(ctx, "pi-gone"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleting twice: %v, want ErrNotFound", err)
		}
		// The name is free: a new device takes it, with no history.
		again := f.enroll("pi-gone")
		f.report(again.ID, full("r-new", f.ubi))
		if got := f.statuses("pi-gone"); got[ssl] != protocol.StatusAffected {
			t.Errorf("the new pi-gone's %s = %q, want affected (not the old one's failed)", ssl, got[ssl])
		}
		// The kept device is untouched.
		if got := f.statuses("pi-kept"); got[ssl] != protocol.StatusFailed {
			t.Errorf("pi-kept's %s = %q, want failed", ssl, got[ssl])
		}
	})

	t.Run("enrolment tokens", func(t *testing.T) {
		s := open(t, b)
		for i, tok := range []store.EnrollToken{
			{ID: "et-a", Hash: store.HashSecret("a"), Labels: map[string]string{"site": "barn"}, Expires: t0.Add(time.Hour), UsesLeft: 3, Created: t0},
			{ID: "et-b", Hash: store.HashSecret("b"), Expires: t0.Add(2 * time.Hour), UsesLeft: 1, Created: t0.Add(time.Minute)},
		} {
			if err := s.CreateEnrollToken(ctx, tok); err != nil {
				t.Fatalf("token %d: %v", i, err)
			}
		}
		if _, err := s.Enroll(ctx, store.HashSecret("a"), store.NewDevice{ID: "d1", Name: "n1", CredentialHash: store.HashSecret("c1"), Enrolled: t0}); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeEnrollToken(ctx, "et-a", t0.Add(5*time.Minute)); err != nil {
			t.Fatalf("RevokeEnrollToken: %v", err)
		}
		_, err := s.Enroll(ctx, store.HashSecret("a"), store.NewDevice{ID: "d2", Name: "n2", CredentialHash: store.HashSecret("c2"), Enrolled: t0.Add(6 * time.Minute)})
		if !errors.Is(err, store.ErrTokenRevoked) {
			t.Errorf("enrolling with a revoked token (2 uses were left): %v, want ErrTokenRevoked", err)
		}
		for _, id := range []string{"et-a", "et-unknown"} {
			if err := s.RevokeEnrollToken(ctx, id, t0); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("RevokeEnrollToken(%s): %v, want ErrNotFound", id, err)
			}
		}
		ts, err := s.ListEnrollTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.EnrollToken{
			{ID: "et-a", Labels: map[string]string{"site": "barn"}, Expires: t0.Add(time.Hour), UsesLeft: 0, Created: t0, Revoked: t0.Add(5 * time.Minute)},
			{ID: "et-b", Labels: map[string]string{}, Expires: t0.Add(2 * time.Hour), UsesLeft: 1, Created: t0.Add(time.Minute)},
		}
		if len(ts) != len(want) {
			t.Fatalf("ListEnrollTokens = %+v, want %+v", ts, want)
		}
		for i := range want {
			g, w := ts[i], want[i]
			if g.ID != w.ID || !maps.Equal(g.Labels, w.Labels) || !g.Expires.Equal(w.Expires) || g.UsesLeft != w.UsesLeft ||
				!g.Created.Equal(w.Created) || !g.Revoked.Equal(w.Revoked) || g.Hash != (store.Hash{}) {
				t.Errorf("token %d = %+v, want %+v (and no hash)", i, g, w)
			}
		}
	})
}

func mustDevices(t *testing.T, s store.Store) []protocol.DeviceSummary {
	t.Helper()
	ds, err := s.Devices(t.Context(), store.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// deviceRows counts the rows kept about a device, by table, through the
// method the SQL stores give the suite.
func deviceRows(t *testing.T, s store.Store, deviceID string) map[string]int {
	t.Helper()
	c, ok := s.(interface {
		DeviceRows(context.Context, string) (map[string]int, error)
	})
	if !ok {
		t.Fatalf("%T has no DeviceRows(ctx, id) to count a device's rows", s)
	}
	rows, err := c.DeviceRows(t.Context(), deviceID)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
