package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		New: func(t testing.TB) string { return filepath.Join(t.TempDir(), "fleet.db") },
		Open: func(ctx context.Context, path string) (store.Store, error) {
			return sqlite.Open(ctx, path)
		},
	})
}

// BenchmarkFleet: go test -run '^$' -bench Fleet -benchtime=10000x ./server/internal/store/sqlite/
func BenchmarkFleet(b *testing.B) {
	storetest.Bench(b, storetest.Backend{
		New: func(t testing.TB) string { return filepath.Join(t.TempDir(), "fleet.db") },
		Open: func(ctx context.Context, path string) (store.Store, error) {
			return sqlite.Open(ctx, path)
		},
	})
}
