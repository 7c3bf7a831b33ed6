package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

// TestBatchFailsAlone: in one group commit, a report whose matcher fails
// after it changed the device is undone alone (the batch is written again
// with savepoints), a duplicate and a report of an unknown device are
// answered as such, and the good reports around them commit.
func TestBatchFailsAlone(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	advs := storetest.Advisories()
	good := storetest.Match(advs)
	boom := errors.New("matcher crashed")
	bad := func(string, []protocol.Package) ([]store.Finding, error) { return nil, boom }
	if err := s.CreateEnrollToken(ctx, store.EnrollToken{ID: "e", Hash: store.HashSecret("e"), Expires: time.Now().Add(time.Hour), UsesLeft: 3}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.Enroll(ctx, store.HashSecret("e"), store.NewDevice{ID: fmt.Sprint("d", i), Name: fmt.Sprint("pi", i),
			CredentialHash: store.HashSecret(fmt.Sprint("c", i)), Enrolled: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	ubi, err := storetest.UBIInventory()
	if err != nil {
		t.Fatal(err)
	}
	report := func(id string, pkgs []protocol.Package) *protocol.Report {
		return &protocol.Report{ID: id, Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.0"},
			Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}
	}
	// d1's set is new, so its matcher runs, fails, and must take back the
	// device update and report id it wrote.
	resps, errs := s.WriteBatch(ctx,
		[]string{"d0", "d1", "d0", "nobody", "d2"},
		[]*protocol.Report{report("r1", ubi), report("r1", ubi[1:]), report("r1", ubi), report("r1", ubi), report("r1", ubi[2:])},
		time.Now(), []store.MatchFunc{good, bad, good, good, good})
	if errs[0] != nil || resps[0].Duplicate {
		t.Errorf("d0's report: %+v, %v; want applied", resps[0], errs[0])
	}
	if !errors.Is(errs[1], boom) {
		t.Errorf("d1's report: %v, want the matcher's error", errs[1])
	}
	if errs[2] != nil || !resps[2].Duplicate {
		t.Errorf("d0's report again in the same batch: %+v, %v; want a duplicate", resps[2], errs[2])
	}
	if !errors.Is(errs[3], store.ErrNotFound) {
		t.Errorf("unknown device's report: %v, want ErrNotFound", errs[3])
	}
	if errs[4] != nil || resps[4].Duplicate {
		t.Errorf("d2's report: %+v, %v; want applied", resps[4], errs[4])
	}
	for i, want := range []string{protocol.InventoryDigest(ubi), "", protocol.InventoryDigest(ubi[2:])} {
		d, err := s.DeviceByCredential(ctx, store.HashSecret(fmt.Sprint("c", i)))
		if err != nil || d.Digest != want || d.LastSeen.IsZero() != (want == "") {
			t.Errorf("device d%d after the batch: digest %q, last seen %v, %v; want digest %q", i, d.Digest, d.LastSeen, err, want)
		}
	}
	// d1's id was not kept: its retry applies.
	if resp, err := s.Report(ctx, "d1", report("r1", ubi[1:]), time.Now(), good); err != nil || resp.Duplicate {
		t.Errorf("d1's retry: %+v, %v; want applied", resp, err)
	}
}
