package sqlite

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlstore"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

// TestMigrateKeepsSetsAndDevices: a database made by the first migration,
// with a device on a package set and its findings, is rebuilt by
// 0002_sets_by_release (package_sets copied into a new table, the old one
// dropped) with its ids, its devices' pointers and its findings intact,
// keeps its status and findings through 0004 and 0005 (which move them to
// status and finding sets), and the device's next report moves it to a
// set of its release.
func TestMigrateKeepsSetsAndDevices(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleet.db")
	first, err := fs.ReadFile(migrations, "migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	d, err := open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.Migrate(ctx, d, fstest.MapFS{"m/0001_init.sql": {Data: first}}, "m", ""); err != nil {
		t.Fatal(err)
	}
	ubi, err := storetest.UBIInventory()
	if err != nil {
		t.Fatal(err)
	}
	digest := protocol.InventoryDigest(ubi)
	cred := store.HashSecret("cred")
	hash, body := storetest.LegacyAdvisory(storetest.Advisories()[0]) // ALSA-2023:3722, as stored before 0006
	err = d.Write(ctx, func(c sqlstore.Conn) error {
		stmts := []struct {
			q    string
			args []any
		}{
			{`INSERT INTO package_sets (id, digest, packages, count, created) VALUES (7, ?, ?, ?, 1)`, []any{digest, []byte("openssl-libs\t1\t3.0.1\t23.el9_0\taarch64\t\n"), 1}},
			{`INSERT INTO devices (id, name, labels, credential_hash, enrolled, package_set, inventory_stale) VALUES ('d1', 'pi', '{}', ?, 1, 7, 0)`, []any{cred[:]}},
			{`INSERT INTO advisories (id, ecosystem, type, severity, issued, updated, title, reboot_suggested, content_hash, body)
				VALUES ('ALSA-2023:3722', 'AlmaLinux:9', 'security', 2, 1, 1, 'openssl', 0, ?, ?)`, []any{hash, body}},
			{`INSERT INTO set_status (set_id, advisory_id, affected) VALUES (7, 'ALSA-2023:3722', 1)`, nil},
			{`INSERT INTO set_findings (set_id, advisory_id, package, arch, installed, fixed, affected)
				VALUES (7, 'ALSA-2023:3722', 'openssl-libs', 'aarch64', '1:3.0.1-23.el9_0', '1:3.0.7-16.el9_2', 1)`, nil},
		}
		for _, s := range stmts {
			if _, err := c.Exec(ctx, s.q, s.args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	st, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open with 0002 to apply: %v", err)
	}
	defer st.Close()
	dev, err := st.DeviceByCredential(ctx, store.HashSecret("cred"))
	if err != nil || dev.Digest != digest {
		t.Fatalf("device after the migration = %+v, %v; want it still on its set", dev, err)
	}
	got, err := st.Device(ctx, "pi")
	if err != nil || len(got.Advisories) != 1 || got.Advisories[0].Status != protocol.StatusAffected {
		t.Errorf("device statuses after the migration = %+v, %v; want the set's row kept", got.Advisories, err)
	}
	// 0004 and 0005 gave the set a status set and a finding set of its
	// own, with its rows.
	plan, err := st.DevicePlan(ctx, "d1")
	if err != nil || len(plan) != 1 || len(plan[0].Packages) != 1 || plan[0].Packages[0].Name != "openssl-libs" {
		t.Errorf("device plan after the migrations = %+v, %v; want ALSA-2023:3722 for openssl-libs", plan, err)
	}
	r := &protocol.Report{ID: "r1", Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2"},
		Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: ubi, Digest: digest}}
	if _, err := st.Report(ctx, "d1", r, time.Now(), storetest.Match(storetest.Advisories())); err != nil {
		t.Fatalf("report after the migration: %v", err)
	}
	if n, err := st.PackageSets(ctx); err != nil || n != 2 {
		t.Errorf("package sets = %d, %v; want 2, the old one and the device's almalinux:9 one", n, err)
	}
}
