package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

// BenchmarkImportDescriptions: go test -run '^$' -bench ImportDescriptions -benchtime 3x ./server/internal/store/sqlite/
func BenchmarkImportDescriptions(b *testing.B) {
	storetest.BenchImportDescriptions(b, storetest.Backend{
		New: func(t testing.TB) string { return filepath.Join(t.TempDir(), "fleet.db") },
		Open: func(ctx context.Context, path string) (store.Store, error) {
			return sqlite.Open(ctx, path)
		},
	})
}
