package fleet

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// announcements counts what a Service tells the other replicas.
type announcements struct {
	n       int
	started time.Time
}

func (a *announcements) AdvisoriesChanged(_ context.Context, started time.Time) error {
	a.n++
	a.started = started
	return nil
}

// TestReplicaReloadsAfterAnotherImports: two services (two replicas) on one
// store. Replica A imports and tells the others once, with the import's
// start, and not for an import that changed nothing; replica B, which
// loaded before the import, matches a new package set against no advisory
// until it reloads (a report that raced the import); its reload matches
// that set again, and later sets are matched against the import: what a
// replica does on A's notification.
func TestReplicaReloadsAfterAnotherImports(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	told := &announcements{}
	before := time.Now()
	a, err := New(ctx, st, Options{Replicas: told})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Import(ctx, loadTestdata(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Import(ctx, loadTestdata(t)); err != nil {
		t.Fatal(err)
	}
	if told.n != 1 || told.started.Before(before) || told.started.After(time.Now()) {
		t.Errorf("replica A told the others %d times, last of an import started at %v; want once (the second import changed nothing), started in the test", told.n, told.started)
	}
	report := func(svc *Service, name string, pkgs []protocol.Package) {
		t.Helper()
		tok, err := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{})
		if err != nil {
			t.Fatal(err)
		}
		dev, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Report(ctx, dev.DeviceID, &protocol.Report{ID: "r1", Inventory: protocol.Inventory{
			Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}); err != nil {
			t.Fatal(err)
		}
	}
	// The stale index: what a replica that missed the notification would
	// store for a set no device had before.
	report(b, "stale", []protocol.Package{alma9, oldSSL})
	if got, _ := st.CVE(ctx, "CVE-2023-2650"); len(got.Exposed) != 0 {
		t.Fatalf("before the reload, B found %+v; the test no longer shows a stale index", got.Exposed)
	}
	if err := b.ReloadAdvisories(ctx, before.Add(-RematchMargin)); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.CVE(ctx, "CVE-2023-2650"); len(got.Exposed) != 1 || got.Exposed[0].Device != "stale" {
		t.Fatalf("after the reload, exposed = %+v, want stale (its set matched again)", got.Exposed)
	}
	bash := protocol.Package{Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "aarch64"}
	report(b, "fresh", []protocol.Package{alma9, oldSSL, bash})
	got, err := st.CVE(ctx, "CVE-2023-2650")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Exposed) != 2 || got.Exposed[0].Device != "fresh" || got.Exposed[1].Device != "stale" {
		t.Errorf("after the reload and a new report, exposed = %+v, want fresh (matched by B's reloaded index) and stale", got.Exposed)
	}
	if _, err := b.Command(ctx, "fresh", protocol.Command{Verb: protocol.CommandApply, Advisories: []string{"ALSA-2023:3722"}}); err != ErrNoBroker {
		t.Errorf("B's apply of A's advisory: err = %v, want ErrNoBroker (the advisory is known after the reload)", err)
	}
}
