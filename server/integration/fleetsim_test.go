package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/fleetsim"
)

// TestFleetsimPartialSessionsAndDeltas checks the simulator's knobs for
// 100,000 devices against a real server: EnrollSome enrols the fleet in
// batches of one token each; with Sessions 30 of 100 devices
// only 30 hold an MQTT session and an import's notice is awaited from
// those; after Transact, ReportChanged sends exactly the changed tenth,
// and a second ReportChanged sends none; PlansOf fetches only the first n.
func TestFleetsimPartialSessionsAndDeltas(t *testing.T) {
	srv, mqttAddr := startPushServer(t, filepath.Join(t.TempDir(), "data"))
	admin := fleetsim.Admin{URL: srv.url, Token: srv.admin}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base, info := simBase(t)
	sim, err := fleetsim.New(fleetsim.Options{Servers: []string{srv.url}, Brokers: []string{"tcp://" + mqttAddr},
		Devices: 100, Sessions: 30, Base: base, Variants: 5, Info: info, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	// Two tokens, as past protocol.MaxEnrollTokenUses devices: each
	// enrols its share; a used-up token would fail the second batch.
	for _, n := range []int{60, 40} {
		tok, err := admin.EnrollToken(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.EnrollSome(ctx, tok, n); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range sim.Devices() {
		if d.ID == "" {
			t.Fatalf("%s not enrolled", d.Name)
		}
	}
	if err := sim.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer sim.Disconnect()
	if n := sim.Connected(); n != 30 {
		t.Errorf("%d sessions up, want 30", n)
	}
	if res, err := sim.Report(ctx); err != nil || res.OK != 100 {
		t.Fatalf("first round: %d acknowledged, %v; want 100", res.OK, err)
	}
	changed := sim.Transact(3)
	res, err := sim.ReportChanged(ctx)
	if err != nil || res.OK != changed || changed != 10 {
		t.Errorf("delta round: %d acknowledged of %d changed, %v; want 10 of 10", res.OK, changed, err)
	}
	if res, err := sim.ReportChanged(ctx); err != nil || res.OK != 0 {
		t.Errorf("a second delta round with nothing changed sent %d, %v; want 0", res.OK, err)
	}
	if res, err := sim.PlansOf(ctx, 7); err != nil || res.OK != 7 {
		t.Errorf("PlansOf(7): %d, %v", res.OK, err)
	}
	osv, err := os.ReadFile(filepath.Join(fixtures(t), "almalinux-osv/samples/almalinux9_ALSA-2023_3722.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Import(ctx, osv); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if got := sim.WaitFeed(wctx, 0); got != 30 {
		t.Errorf("%d devices accepted the feed notice, want the 30 with a session", got)
	}
	if wctx.Err() != nil {
		t.Errorf("WaitFeed waited for devices without a session")
	}
}
