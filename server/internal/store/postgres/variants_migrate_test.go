package postgres_test

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlstore"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

// TestMigrateAdvisoryVariants: 0006 turns each advisory row an older
// server left into its id's variant, keeping its digest, so the same data
// imported again changes nothing, and the other release's variant the row
// had lost is added by importing its file (storetest.MigrateVariants).
func TestMigrateAdvisoryVariants(t *testing.T) {
	ctx := context.Background()
	url := pg.NewDatabase(t)
	old := fstest.MapFS{}
	for _, name := range []string{"0001_init.sql", "0002_sets_by_release.sql", "0003_clustered.sql", "0004_status_sets.sql", "0005_finding_sets.sql"} {
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
	exec := func(q string, args ...any) error {
		return d.Write(ctx, func(c sqlstore.Conn) error {
			_, err := c.Exec(ctx, q, args...)
			return err
		})
	}
	storetest.MigrateVariants(t, exec, func() (store.Store, error) {
		if err := d.Close(); err != nil {
			return nil, err
		}
		return postgres.Open(ctx, url)
	})
}
