package api

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store/storetest"
)

// The benchmarks run the API in process over a real SQLite store, with the
// whole AlmaLinux 9 OSV database and devices whose package sets are the
// real ubi9 aarch64 image manifest, each perturbed by one package so every
// device has a set of its own (the worst case for the store's dedup).
//
//	go test ./server/internal/api -run XXX -bench "ReportFull|CVE" -benchtime 200x
//	go test ./server/internal/api -run XXX -bench Import -benchtime 3x

func osvPath(b *testing.B) string {
	dir, err := storetest.FixturesDir()
	if err != nil {
		b.Fatal(err)
	}
	return filepath.Join(dir, "almalinux-osv", "almalinux9.jsonl.gz")
}

func importOSV(b *testing.B, h *Server, admin string) {
	body, err := os.ReadFile(osvPath(b))
	if err != nil {
		b.Fatal(err)
	}
	w, e := do(b, h, "POST", protocol.PathImport, admin, "application/octet-stream", string(body))
	if w.Code != 200 {
		b.Fatalf("import: %d %+v", w.Code, e)
	}
}

// BenchmarkImportAlmaLinux9 uploads and imports the whole AlmaLinux 9 OSV
// database into an empty server.
func BenchmarkImportAlmaLinux9(b *testing.B) {
	for range b.N {
		b.StopTimer()
		h, admin := newTestServer(b)
		h.opts.MaxImport = 64 << 20
		b.StartTimer()
		importOSV(b, h, admin)
	}
}

type benchFleet struct {
	h     *Server
	admin string
	creds []string
	ubi   []protocol.Package
}

func newBenchFleet(b *testing.B, devices int) *benchFleet {
	h, admin := newTestServer(b)
	h.opts.MaxImport = 64 << 20
	importOSV(b, h, admin)
	ubi, err := storetest.UBIInventory()
	if err != nil {
		b.Fatal(err)
	}
	f := &benchFleet{h: h, admin: admin, ubi: ubi}
	f.enroll(b, devices)
	return f
}

func (f *benchFleet) enroll(b *testing.B, n int) {
	var tok protocol.EnrollTokenCreateResponse
	body, _ := json.Marshal(protocol.EnrollTokenCreateRequest{Uses: n})
	w, _ := do(b, f.h, "POST", protocol.PathEnrollTokens, f.admin, "", string(body))
	json.Unmarshal(w.Body.Bytes(), &tok)
	for i := range n {
		body, _ := json.Marshal(protocol.EnrollRequest{Token: tok.Token, Name: fmt.Sprintf("dev-%d-%d", len(f.creds), i)})
		w, e := do(b, f.h, "POST", protocol.PathEnroll, "", "", string(body))
		if w.Code != 200 {
			b.Fatalf("enroll: %d %+v", w.Code, e)
		}
		var resp protocol.EnrollResponse
		json.Unmarshal(w.Body.Bytes(), &resp)
		f.creds = append(f.creds, resp.Credential)
	}
}

// alma9 is the os-release the benchmark devices report: the UBI image's
// packages hold redhat-release, and the server matches a set against its
// devices' os-release, so without it they would match no AlmaLinux
// advisory and the CVE answer would be empty.
var alma9 = protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.0", Arch: "aarch64"}

// post posts device i's first full report of pkgs.
func (f *benchFleet) post(b *testing.B, i int, pkgs []protocol.Package) {
	body, _ := json.Marshal(protocol.Report{ID: "first", Time: time.Now().UTC(), Device: alma9,
		Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}})
	w, e := do(b, f.h, "POST", protocol.PathReport, f.creds[i], "", string(body))
	if w.Code != 200 {
		b.Fatalf("report: %d %+v", w.Code, e)
	}
}

// report posts device i's first full report: the ubi set with one package
// made older by i, so the sets differ.
func (f *benchFleet) report(b *testing.B, i int) {
	pkgs := append([]protocol.Package(nil), f.ubi...)
	p := &pkgs[i%len(pkgs)]
	p.Release = fmt.Sprintf("%s.bench%d", p.Release, i)
	f.post(b, i, pkgs)
}

// BenchmarkReportFull measures first full reports of distinct sets.
func BenchmarkReportFull(b *testing.B) {
	f := newBenchFleet(b, b.N)
	b.ResetTimer()
	for i := range b.N {
		f.report(b, i)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}

// BenchmarkCVE asks for CVE-2023-2650 in a fleet of 10,000 devices, all
// exposed, reported over the API from four goroutines: 40 images (the ubi
// set with one package changed), and one device in ten with a set of its
// own (a second package changed), as the store's benchmark shapes its
// fleet. It reports the 99th percentile of the store call and of the whole
// HTTP answer (the store call plus JSON), and the answer's size.
//
//	go test ./server/internal/api -run XXX -bench CVE -benchtime 100x
func BenchmarkCVE(b *testing.B) {
	const devices = 10000
	f := newBenchFleet(b, devices)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range next {
				pkgs := append([]protocol.Package(nil), f.ubi...)
				p := &pkgs[(i%40)*3%len(pkgs)]
				p.Release += fmt.Sprintf(".image%d", i%40)
				if i%10 == 9 {
					q := &pkgs[(i/10)%len(pkgs)]
					q.Release += fmt.Sprintf(".own%d", i)
				}
				f.post(b, i, pkgs)
			}
		})
	}
	for i := range devices {
		next <- i
	}
	close(next)
	wg.Wait()

	var store, answer []time.Duration
	size := 0
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, err := f.h.st.CVE(b.Context(), "CVE-2023-2650")
		store = append(store, time.Since(start))
		if err != nil || len(resp.Exposed) < devices {
			b.Fatalf("store: %d exposed, %v; want every device", len(resp.Exposed), err)
		}
		start = time.Now()
		req := httptest.NewRequest("GET", protocol.PathCVE+"CVE-2023-2650", nil)
		req.Header.Set("Authorization", "Bearer "+f.admin)
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, req)
		answer = append(answer, time.Since(start))
		if w.Code != 200 {
			b.Fatalf("cve: %d %s", w.Code, w.Body)
		}
		size = w.Body.Len()
	}
	b.StopTimer()
	p99 := func(lat []time.Duration) float64 {
		slices.Sort(lat)
		return float64(lat[len(lat)*99/100].Microseconds()) / 1000
	}
	b.ReportMetric(p99(store), "store-p99-ms")
	b.ReportMetric(p99(answer), "http-p99-ms")
	b.ReportMetric(float64(size)/1e6, "answer-MB")
	b.ReportMetric(0, "ns/op")
}
