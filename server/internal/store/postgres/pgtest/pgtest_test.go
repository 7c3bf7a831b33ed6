package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestServer starts a server, creates two databases and checks they are
// separate and reachable, and that Stop removes everything.
func TestServer(t *testing.T) {
	start := time.Now()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started in %v", time.Since(start))
	t.Run("databases", func(t *testing.T) {
		ctx := context.Background()
		for i := range 2 {
			begin := time.Now()
			url := s.NewDatabase(t)
			t.Logf("database %d created in %v", i, time.Since(begin))
			c, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, `CREATE TABLE only_here (x int)`); err != nil {
				t.Fatalf("create a table in the new database: %v", err)
			}
			var tables int
			err = c.QueryRow(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()`).Scan(&tables)
			c.Close(ctx)
			if err != nil || tables != 1 {
				t.Errorf("new database has %d tables, %v; want just the one made", tables, err)
			}
		}
	})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(context.Background(), s.url("postgres")); err == nil {
		t.Errorf("server still answers after Stop")
	}
}
