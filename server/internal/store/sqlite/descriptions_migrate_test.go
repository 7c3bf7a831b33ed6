package sqlite

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlstore"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

// TestMigrateAdvisoryDescriptions: after 0014 the variants an older server
// stored have no description, and the next import of the same data fills
// them in without counting a change (storetest.MigrateDescriptions).
func TestMigrateAdvisoryDescriptions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleet.db")
	old := fstest.MapFS{}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if filepath.Base(name) >= "0014" {
			continue
		}
		body, err := fs.ReadFile(migrations, name)
		if err != nil {
			t.Fatal(err)
		}
		old["m/"+filepath.Base(name)] = &fstest.MapFile{Data: body}
	}
	d, err := open(path)
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
		return Open(ctx, path)
	})
}
