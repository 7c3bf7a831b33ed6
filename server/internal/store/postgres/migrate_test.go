package postgres_test

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlstore"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

// TestMigrateKeepsSetsAndDevices: a database made by the migrations before
// status and finding sets, with a device on a package set, its status row
// and its finding, keeps them through 0004 and 0005 (each set gets lists of
// its own, with its id), and new sets made afterwards get lists whose ids
// do not collide with the migrated ones (the migrated set is id 1, the
// first a fresh database gives, which a list's identity would give first
// had the migration not moved it on).
func TestMigrateKeepsSetsAndDevices(t *testing.T) {
	ctx := context.Background()
	url := pg.NewDatabase(t)
	old := fstest.MapFS{}
	for _, name := range []string{"0001_init.sql", "0002_sets_by_release.sql", "0003_clustered.sql"} {
		body, err := fs.ReadFile(postgres.Migrations, "migrations/"+name)
		if err != nil {
			t.Fatal(err)
		}
		old["m/"+name] = &fstest.MapFile{Data: body}
	}
	d, err := postgres.OpenDB(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.Migrate(ctx, d, old, "m", ""); err != nil {
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
			{`INSERT INTO package_sets (release, digest, packages, count, created) VALUES ('almalinux:9', ?, ?, ?, 1)`, []any{digest, []byte("openssl-libs\t1\t3.0.1\t23.el9_0\taarch64\t\n"), 1}},
			{`INSERT INTO devices (id, name, labels, credential_hash, enrolled, package_set, inventory_stale) VALUES ('d1', 'pi', '{}', ?, 1, 1, 0)`, []any{cred[:]}},
			{`INSERT INTO advisories (id, ecosystem, type, severity, issued, updated, title, reboot_suggested, content_hash, body)
				VALUES ('ALSA-2023:3722', 'AlmaLinux:9', 'security', 2, 1, 1, 'openssl', 0, ?, ?)`, []any{hash, body}},
			{`INSERT INTO set_status (set_id, advisory_id, affected) VALUES (1, 'ALSA-2023:3722', 1)`, nil},
			{`INSERT INTO set_findings (set_id, advisory_id, package, arch, installed, fixed, affected)
				VALUES (1, 'ALSA-2023:3722', 'openssl-libs', 'aarch64', '1:3.0.1-23.el9_0', '1:3.0.7-16.el9_2', 1)`, nil},
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

	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatalf("open with 0004 and 0005 to apply: %v", err)
	}
	defer st.Close()
	got, err := st.Device(ctx, "pi")
	if err != nil || len(got.Advisories) != 1 || got.Advisories[0].Status != protocol.StatusAffected {
		t.Errorf("device statuses after the migrations = %+v, %v; want the set's row kept", got.Advisories, err)
	}
	plan, err := st.DevicePlan(ctx, "d1")
	if err != nil || len(plan) != 1 || len(plan[0].Packages) != 1 || plan[0].Packages[0].Name != "openssl-libs" {
		t.Errorf("device plan after the migrations = %+v, %v; want ALSA-2023:3722 for openssl-libs", plan, err)
	}
	// A report with other packages makes a new set, and new lists.
	pkgs := ubi[1:]
	r := &protocol.Report{ID: "r1", Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2"},
		Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}
	if _, err := st.Report(ctx, "d1", r, time.Now(), storetest.Match(storetest.Advisories())); err != nil {
		t.Fatalf("report after the migrations: %v", err)
	}
	for name, count := range map[string]func(context.Context) (int, error){"status": st.StatusSets, "finding": st.FindingSets} {
		if n, err := count(ctx); err != nil || n != 2 {
			t.Errorf("%s sets = %d, %v; want 2, the migrated set's and the new one's", name, n, err)
		}
	}
	dev, err := st.DeviceByCredential(ctx, cred)
	if err != nil || dev.Digest != r.Inventory.Digest {
		t.Errorf("device after its report = %+v, %v; want it on its new set", dev, err)
	}
	// Only ALSA-2023:3722 is stored, so it is the only status shown.
	if got, err := st.Device(ctx, "pi"); err != nil || len(got.Advisories) != 1 || got.Advisories[0].Status != protocol.StatusAffected {
		t.Errorf("device statuses after its report = %+v, %v; want ALSA-2023:3722 affected, from its new set", got.Advisories, err)
	}
}
