package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/dashboard"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/metrics"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

// BenchmarkPages10k times every dashboard page, and a /metrics scrape,
// over a real SQLite store seeded as the API's 10,000-device benchmarks
// seed theirs: the whole AlmaLinux 9 OSV database, and 10,000 devices
// reporting the real ubi9 aarch64 image manifest in 40 images (one
// package changed each) with one device in ten on a set of its own. Each
// page is fetched over HTTP with a logged-in session; the benchmark
// reports each page's 50th and 99th percentile. No figure fails it.
//
//	go test ./server/internal/dashboard -run XXX -bench Pages10k -benchtime 50x
func BenchmarkPages10k(b *testing.B) {
	const devices = 10000
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "rpmfleet.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc, err := fleet.New(ctx, st, fleet.Options{})
	if err != nil {
		b.Fatal(err)
	}
	dir, err := storetest.FixturesDir()
	if err != nil {
		b.Fatal(err)
	}
	advs, err := source.Load(ctx, filepath.Join(dir, "almalinux-osv", "almalinux9.jsonl.gz"), source.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.Import(ctx, advs); err != nil {
		b.Fatal(err)
	}
	ubi, err := storetest.UBIInventory()
	if err != nil {
		b.Fatal(err)
	}
	tok, err := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{Uses: devices})
	if err != nil {
		b.Fatal(err)
	}
	info := protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.0", Arch: "aarch64"}
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range next {
				resp, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Name: fmt.Sprintf("dev-%05d", i), Device: info})
				if err != nil {
					b.Error(err)
					continue
				}
				pkgs := append([]protocol.Package(nil), ubi...)
				p := &pkgs[(i%40)*3%len(pkgs)]
				p.Release += fmt.Sprintf(".image%d", i%40)
				if i%10 == 9 {
					q := &pkgs[(i/10)%len(pkgs)]
					q.Release += fmt.Sprintf(".own%d", i)
				}
				rep := &protocol.Report{ID: "first", Time: time.Now().UTC(), Device: info,
					Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}
				if _, err := svc.Report(ctx, resp.DeviceID, rep); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range devices {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := st.Analyze(ctx); err != nil {
		b.Fatal(err)
	}
	if b.N > 1 {
		fmt.Printf("seeded %d devices in %v\n", devices, time.Since(start).Round(time.Second))
	}
	// Thirty days of history for the chart.
	for i := 30; i >= 1; i-- {
		if err := dashboard.RecordOnce(ctx, st, st, time.Now().AddDate(0, 0, -i)); err != nil {
			b.Fatal(err)
		}
	}

	admin, err := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: "bench", Role: protocol.RoleOperator})
	if err != nil {
		b.Fatal(err)
	}
	// A rollout of ALSA-2023:3722 to the whole fleet, on its last phase:
	// its page judges 10,000 devices.
	if _, err := svc.PutGroup(ctx, "all", protocol.GroupRequest{}); err != nil {
		b.Fatal(err)
	}
	ro, err := svc.CreateRollout(ctx, protocol.RolloutRequest{Advisory: "ALSA-2023:3722", Group: "all", Phases: []string{"10%", "100%"}}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.ActRollout(ctx, ro.ID, protocol.RolloutApprove); err != nil {
		b.Fatal(err)
	}
	d, err := dashboard.New(dashboard.Options{Store: st, Revoker: svc, Rollouts: svc})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(d)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.PostForm(srv.URL+"/login", url.Values{"token": {admin.Token}})
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("login: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	m := metrics.New(metrics.Options{Fleet: st, MinRefresh: time.Nanosecond})
	msrv := httptest.NewServer(m.Handler())
	defer msrv.Close()

	pages := []struct{ name, url, want string }{
		{"overview", srv.URL + "/", "Exposure over time"},
		{"devices, by name, page 1", srv.URL + "/devices", "dev-00049"},
		{"devices, by name, page 150", srv.URL + "/devices?page=150", "dev-07499"},
		{"devices, most exposed first", srv.URL + "/devices?sort=affected", "page 1 of 200"},
		{"devices exposed to CVE-2023-2650", srv.URL + "/devices?exposed_to=CVE-2023-2650", "page 1 of 200"},
		{"device", srv.URL + "/device?name=dev-05009", "ALSA-2023:3722"},
		{"CVE-2023-2650, first 100 devices", srv.URL + "/cve?id=CVE-2023-2650", "dev-00099"},
		{"advisories", srv.URL + "/advisories", "page 1 of"},
		{"advisory ALSA-2023:3722, page 1", srv.URL + "/advisory?id=ALSA-2023:3722", "10000 affected"},
		{"rollouts", srv.URL + "/rollouts", "2 of 2 (100%)"},
		{"rollout of 10,000 devices, page 1", srv.URL + "/rollout?id=" + ro.ID, "page 1 of 200"},
		{"metrics scrape (fleet gauges read each time)", msrv.URL, `rpmfleet_devices{status="reporting"} 10000`},
	}
	lat := make([][]time.Duration, len(pages))
	b.ResetTimer()
	for range b.N {
		for i, p := range pages {
			t0 := time.Now()
			resp, err := hc.Get(p.url)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			lat[i] = append(lat[i], time.Since(t0))
			if resp.StatusCode != 200 || !strings.Contains(string(body), p.want) {
				b.Fatalf("%s: %d, want %q in\n%.2000s", p.name, resp.StatusCode, p.want, body)
			}
		}
	}
	b.StopTimer()
	if b.N == 1 {
		return // the warm-up run go test makes first
	}
	for i, p := range pages {
		l := lat[i]
		slices.Sort(l)
		fmt.Printf("%-48s p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms\n", p.name, ms(l[len(l)/2]), ms(l[len(l)*99/100]), ms(l[len(l)-1]))
	}
	b.ReportMetric(0, "ns/op")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
