package postgres_test

import (
	"context"
	"io/fs"
	"path"
	"testing"
	"testing/fstest"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlstore"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

// TestMigrateAdvisoryDescriptions: after 0014 the variants an older server
// stored have no description, and the next import of the same data fills
// them in without counting a change (storetest.MigrateDescriptions).
func TestMigrateAdvisoryDescriptions(t *testing.T) {
	ctx := context.Background()
	url := pg.NewDatabase(t)
	old := fstest.MapFS{}
	names, err := fs.Glob(postgres.Migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if path.Base(name) >= "0014" {
			continue
		}
		body, err := fs.ReadFile(postgres.Migrations, name)
		if err != nil {
			t.Fatal(err)
		}
		old["m/"+path.Base(name)] = &fstest.MapFile{Data: body}
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
	storetest.MigrateDescriptions(t, exec, func() (store.Store, error) {
		if err := d.Close(); err != nil {
			return nil, err
		}
		return postgres.Open(ctx, url)
	})
}
