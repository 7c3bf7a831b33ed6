package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlstore"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

// TestCVEQueryIsIndexed asks SQLite how it answers the CVE question on a
// small fleet (after ANALYZE, so the planner sees real statistics) and
// fails if any table is scanned rather than searched through an index:
// the answer must cost the same whatever the fleet's size, per device
// listed.
func TestCVEQueryIsIndexed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleet.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	advs := storetest.Advisories()
	if _, err := s.PutAdvisories(ctx, advs, time.Now(), storetest.Match(advs)); err != nil {
		t.Fatal(err)
	}
	ubi, err := storetest.UBIInventory()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEnrollToken(ctx, store.EnrollToken{ID: "e", Hash: store.HashSecret("e"), Expires: time.Now().Add(time.Hour), UsesLeft: 50}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		d, err := s.Enroll(ctx, store.HashSecret("e"), store.NewDevice{ID: fmt.Sprint("d", i), Name: fmt.Sprint("pi", i),
			CredentialHash: store.HashSecret(fmt.Sprint("c", i)), Enrolled: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		pkgs := ubi[i%5:] // five distinct sets
		r := &protocol.Report{ID: "r1", Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}
		if _, err := s.Report(ctx, d.ID, r, time.Now(), storetest.Match(advs)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`ANALYZE`); err != nil {
		t.Fatal(err)
	}
	for name, q := range sqlstore.CVEQueries {
		t.Run(name, func(t *testing.T) {
			args := []any{"CVE-2023-2650"}
			if name == "page" {
				args = []any{"pi1", "CVE-2023-2650", 10} // after, cve, limit
			}
			rows, err := db.Query(`EXPLAIN QUERY PLAN `+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			for _, step := range plan {
				if strings.HasPrefix(step, "SCAN") {
					t.Errorf("plan scans a table: %q\nwhole plan:\n%s", step, strings.Join(plan, "\n"))
				}
			}
			if len(plan) == 0 {
				t.Errorf("empty plan")
			}
			t.Logf("plan:\n%s", strings.Join(plan, "\n"))
		})
	}
}
