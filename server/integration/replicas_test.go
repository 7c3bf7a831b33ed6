package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rpmfleet/rpmfleet/internal/fleetsim"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres/pgtest"
)

// replicaSet is several rpmfleet-server replicas on one PostgreSQL, each
// with its embedded broker, sharing the notice key.
type replicaSet struct {
	db      string
	servers []*server
	brokers []string // tcp://addr of each one's broker
}

// startReplicas starts n replicas on the database at db, each with the
// extra flags. The first makes the notice key; the others are given a copy
// of it, as an admin provisions DATA/notice.key on each replica
// (docs/replicas.md).
func startReplicas(t *testing.T, db string, n int, extra ...string) *replicaSet {
	t.Helper()
	rs := &replicaSet{db: db}
	var key []byte
	for range n {
		data := filepath.Join(t.TempDir(), "data")
		if key != nil {
			if err := os.MkdirAll(data, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(data, "notice.key"), key, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		mqttAddr := freeAddr(t)
		s := startServer(t, data, append([]string{"--db", db, "--mqtt-listen", mqttAddr}, extra...)...)
		if key == nil {
			var err error
			if key, err = os.ReadFile(filepath.Join(data, "notice.key")); err != nil {
				t.Fatal(err)
			}
		}
		rs.servers = append(rs.servers, s)
		rs.brokers = append(rs.brokers, "tcp://"+mqttAddr)
	}
	return rs
}

func (rs *replicaSet) urls() []string {
	var out []string
	for _, s := range rs.servers {
		out = append(out, s.url)
	}
	return out
}

// simBase is the package set the simulated devices start from: the real
// UBI 9.0 aarch64 image's manifest, reported as AlmaLinux 9.0.
func simBase(t testing.TB) ([]protocol.Package, protocol.DeviceInfo) {
	t.Helper()
	pkgs, err := fleetsim.ReadManifest(filepath.Join(fixtures(t), "installed-inventory/claircore-ubi9/ubi9_ubi-aarch64-rpm-manifest.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	return pkgs, protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.0", Arch: "aarch64", Kernel: "5.14.0-70.13.1.el9_0.aarch64", AgentVersion: "fleetsim"}
}

// TestReplicaKilledDuringIngestAndPush is issue 15's "done when": three
// replicas on one PostgreSQL; 1,000 simulated devices, spread over the
// replicas' APIs and brokers, report while one replica is killed with
// SIGKILL and the AlmaLinux 9 OSV database is imported on another. Every
// report a replica acknowledged is in PostgreSQL; every device, those of
// the killed replica's broker included (they reconnect to a live one),
// accepts the import's signed feed notice within 10 s of the import's
// answer; every device's plan verifies, whichever replica serves it; and
// the CVE answer counts exactly the devices whose openssl-libs is older
// than the fix, though most sets were stored by replicas that were not
// importing (their reload matches them again).
func TestReplicaKilledDuringIngestAndPush(t *testing.T) {
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatalf("start PostgreSQL (run make deps): %v", err)
	}
	t.Cleanup(func() { pg.Stop() })
	rs := startReplicas(t, pg.NewDatabase(t), 3)
	admin := rs.servers[0].admin

	var tok protocol.EnrollTokenCreateResponse
	if code, body := call(t, "POST", rs.servers[0].url+protocol.PathEnrollTokens, admin,
		protocol.EnrollTokenCreateRequest{Uses: 1000}, &tok); code != 200 && code != 201 {
		t.Fatalf("enroll token: %d %s", code, body)
	}
	base, info := simBase(t)
	sim, err := fleetsim.New(fleetsim.Options{Servers: rs.urls(), Brokers: rs.brokers, Devices: 1000,
		Base: base, Variants: 40, Info: info, Concurrency: 32})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := sim.Enroll(ctx, tok.Token); err != nil {
		t.Fatal(err)
	}
	if err := sim.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer sim.Disconnect()
	t.Logf("1,000 devices enrolled and connected in %v", time.Since(start))

	// Reports, and meanwhile a kill and an import.
	reported := make(chan error, 1)
	var res fleetsim.Result
	go func() {
		var err error
		res, err = sim.Report(ctx)
		reported <- err
	}()
	for acked(sim) < 300 {
		select {
		case err := <-reported:
			t.Fatalf("the reports ended before the kill: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	rs.servers[1].kill()
	t.Logf("replica 1 killed after %d reports acknowledged", acked(sim))
	osv, err := os.ReadFile(filepath.Join(fixtures(t), "almalinux-osv/almalinux9.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	imp, err := fleetsim.Admin{URL: rs.servers[2].url, Token: admin}.Import(ctx, osv)
	if err != nil {
		t.Fatalf("import on replica 2: %v", err)
	}
	imported := time.Now()
	if err := <-reported; err != nil {
		t.Fatalf("reports: %v", err)
	}
	t.Logf("import: %d advisories, %d changed; reports: %d in %v", imp.Advisories, imp.Changed, res.OK, res.Took)
	if res.OK != 1000 {
		t.Errorf("%d reports acknowledged, want 1,000 (a device fails over to a live replica)", res.OK)
	}

	// Every device gets the notice within 10 s, through a live replica.
	wctx, wcancel := context.WithDeadline(ctx, imported.Add(10*time.Second))
	got := sim.WaitFeed(wctx, 0)
	wcancel()
	if got != 1000 {
		t.Errorf("%d of 1,000 devices accepted the import's feed notice within 10 s; %d sessions up", got, sim.Connected())
	}
	lat := fleetsim.Percentile(sim.FeedLatencies(0, imported), 99)
	t.Logf("feed notice p99 after the import's answer: %v", lat)

	// Every acknowledged report is in PostgreSQL.
	conn, err := pgx.Connect(ctx, rs.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT device_id, id FROM reports`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[[2]string]bool{}
	for rows.Next() {
		var dev, id string
		if err := rows.Scan(&dev, &id); err != nil {
			t.Fatal(err)
		}
		stored[[2]string{dev, id}] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, d := range sim.Devices() {
		for _, id := range d.Acked() {
			if !stored[[2]string{d.ID, id}] {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d acknowledged reports are not in PostgreSQL", missing)
	}

	// Plans verify against the one pinned key whichever replica signs.
	pres, err := sim.Plans(ctx)
	if err != nil || pres.OK != 1000 {
		t.Errorf("plans: %d verified, err %v; want 1,000", pres.OK, err)
	}

	// The CVE answer from the live replica that did not import.
	want := 0
	fix := rpmver.MustParseEVR("1:3.0.7-16.el9_2")
	for _, d := range sim.Devices() {
		for _, p := range d.Packages() {
			if p.Name == "openssl-libs" && rpmver.Compare(rpmver.EVR{Epoch: p.Epoch, Version: p.Version, Release: p.Release}, fix) < 0 {
				want++
			}
		}
	}
	var cve protocol.CVEResponse
	if code, body := call(t, "GET", rs.servers[0].url+protocol.PathCVE+"CVE-2023-2650", admin, nil, &cve); code != 200 {
		t.Fatalf("cve: %d %s", code, body)
	}
	names := map[string]bool{}
	for _, e := range cve.Exposed {
		names[e.Device] = true
	}
	if len(names) != want || want == 0 {
		t.Errorf("CVE-2023-2650: %d devices exposed, want %d (every device with openssl-libs older than 1:3.0.7-16.el9_2)", len(names), want)
	}
}

func acked(sim *fleetsim.Fleet) int {
	n := 0
	for _, d := range sim.Devices() {
		n += len(d.Acked())
	}
	return n
}

// TestReplicasSurvivePostgresRestart: two replicas and 200 connected
// simulated devices; PostgreSQL is restarted (a fast shutdown that cuts
// every session, then a start on the same port). Afterwards reports are
// acknowledged and stored (the pools reconnect), an import on replica 0
// reaches the devices on replica 1's broker within 10 s (replica 1's
// notification connection came back), and the leader-only jobs are led
// again (their advisory locks are held).
func TestReplicasSurvivePostgresRestart(t *testing.T) {
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatalf("start PostgreSQL (run make deps): %v", err)
	}
	t.Cleanup(func() { pg.Stop() })
	rs := startReplicas(t, pg.NewDatabase(t), 2)
	admin := fleetsim.Admin{URL: rs.servers[0].url, Token: rs.servers[0].admin}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tok, err := admin.EnrollToken(ctx, 200)
	if err != nil {
		t.Fatal(err)
	}
	base, info := simBase(t)
	sim, err := fleetsim.New(fleetsim.Options{Servers: rs.urls(), Brokers: rs.brokers, Devices: 200,
		Base: base, Variants: 10, Info: info, Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Enroll(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := sim.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer sim.Disconnect()
	if _, err := sim.Report(ctx); err != nil {
		t.Fatal(err)
	}

	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Log("PostgreSQL restarted")

	res, err := sim.Report(ctx)
	if err != nil || res.OK != 200 {
		t.Fatalf("reports after the restart: %d acknowledged, %v; want 200", res.OK, err)
	}
	osv, err := os.ReadFile(filepath.Join(fixtures(t), "almalinux-osv/samples/almalinux9_ALSA-2023_3722.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Replica 1 may still be waiting to listen again (2 s between
	// tries): the import's notice reaches its devices either way, live
	// or as what it missed.
	imp, err := admin.Import(ctx, osv)
	if err != nil || imp.Changed != 1 {
		t.Fatalf("import after the restart: %+v, %v; want 1 changed", imp, err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	got := sim.WaitFeed(wctx, 0)
	wcancel()
	if got != 200 {
		t.Errorf("%d of 200 devices accepted the import's feed notice within 10 s", got)
		for i, r := range rs.servers {
			t.Logf("replica %d log:\n%s", i, r.log)
		}
	}

	conn, err := pgx.Connect(ctx, rs.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var stored int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM reports`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 400 {
		t.Errorf("%d reports stored, want 400 (200 before the restart, 200 after)", stored)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var locks int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted`).Scan(&locks); err != nil {
			t.Fatal(err)
		}
		if locks >= 3 { // prune, rollouts, exposure
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d leader locks held 10 s after the restart, want 3 (prune, rollouts, exposure)", locks)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
