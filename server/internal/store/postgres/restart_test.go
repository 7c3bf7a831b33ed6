package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres/pgtest"
)

// TestFirstRequestsAfterRestart: PostgreSQL restarted (a fast shutdown
// ends every session) under a store and a cluster whose pools hold several
// open connections. The first requests after it (a store write, a notice
// sequence number, a replica message, an import's notification) succeed:
// each pool drops its dead connections and begins again, instead of
// failing one request per dead connection. Its own server, since it
// restarts it.
func TestFirstRequestsAfterRestart(t *testing.T) {
	srv, err := pgtest.Start()
	if err != nil {
		t.Fatalf("start PostgreSQL (run make deps): %v", err)
	}
	t.Cleanup(func() { srv.Stop() })
	ctx := context.Background()
	url := srv.NewDatabase(t)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cl, err := postgres.OpenCluster(ctx, url, "r0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	n := 0
	token := func() error {
		n++
		return st.CreateToken(ctx, store.Token{ID: fmt.Sprintf("t%d", n), Name: fmt.Sprintf("admin-%d", n),
			Role: protocol.RoleAdmin, Hash: store.Hash{byte(n)}, Created: time.Now()})
	}
	// Open several connections in each pool: used at once, they stay.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := st.ListTokens(ctx); err != nil {
				t.Error(err)
			}
			if _, err := cl.NextSeq(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := token(); err != nil {
		t.Fatal(err)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := token(); err != nil {
		t.Errorf("store write after the restart: %v", err)
	}
	if _, err := st.ListTokens(ctx); err != nil {
		t.Errorf("store read after the restart: %v", err)
	}
	if _, err := cl.NextSeq(ctx); err != nil {
		t.Errorf("notice sequence after the restart: %v", err)
	}
	if _, err := cl.Publish(ctx, "rpmfleet/v1/feed", []byte("x"), true, time.Now()); err != nil {
		t.Errorf("replica message after the restart: %v", err)
	}
	if err := cl.AdvisoriesChanged(ctx, time.Now()); err != nil {
		t.Errorf("import notification after the restart: %v", err)
	}
	toks, err := st.ListTokens(ctx)
	if err != nil || len(toks) != 2 {
		t.Errorf("tokens after the restart: %d, %v; want both writes", len(toks), err)
	}
}
