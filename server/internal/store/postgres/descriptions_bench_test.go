package postgres_test

import (
	"context"
	"testing"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

// BenchmarkImportDescriptions: go test -run '^$' -bench ImportDescriptions -benchtime 3x ./server/internal/store/postgres/
func BenchmarkImportDescriptions(b *testing.B) {
	storetest.BenchImportDescriptions(b, storetest.Backend{
		New: pg.NewDatabase,
		Open: func(ctx context.Context, url string) (store.Store, error) {
			return postgres.Open(ctx, url)
		},
	})
}
