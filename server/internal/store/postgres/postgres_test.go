package postgres_test

import (
	"context"
	"testing"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres/pgtest"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		New: pg.NewDatabase,
		Open: func(ctx context.Context, url string) (store.Store, error) {
			return postgres.Open(ctx, url)
		},
	})
}

// BenchmarkFleet: go test -run '^$' -bench Fleet -benchtime=10000x ./server/internal/store/postgres/
func BenchmarkFleet(b *testing.B) {
	storetest.Bench(b, storetest.Backend{
		New: pg.NewDatabase,
		Open: func(ctx context.Context, url string) (store.Store, error) {
			return postgres.Open(ctx, url)
		},
	})
}
