package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlstore"
)

// Migrations are the embedded migrations, for migrate_test.go.
var Migrations = migrations

// OpenDB connects to url without migrating, for migrate_test.go.
func OpenDB(ctx context.Context, url string) (sqlstore.DB, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	return &db{pool: pool}, nil
}
