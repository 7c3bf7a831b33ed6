package api

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
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

// report posts device i's first full report: the ubi set with one package
// made older by i, so the sets differ.
func (f *benchFleet) report(b *testing.B, i int) {
	pkgs := append([]protocol.Package(nil), f.ubi...)
	p := &pkgs[i%len(pkgs)]
	p.Release = fmt.Sprintf("%s.bench%d", p.Release, i)
	body, _ := json.Marshal(protocol.Report{ID: "first", Time: time.Now().UTC(),
		Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}})
	w, e := do(b, f.h, "POST", protocol.PathReport, f.creds[i], "", string(body))
	if w.Code != 200 {
		b.Fatalf("report: %d %+v", w.Code, e)
	}
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

// BenchmarkCVE asks for CVE-2023-2650 in a fleet of 1,000 reported devices
// and reports the 99th percentile.
func BenchmarkCVE(b *testing.B) {
	const devices = 1000
	f := newBenchFleet(b, devices)
	for i := range devices {
		f.report(b, i)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		req := httptest.NewRequest("GET", protocol.PathCVE+"CVE-2023-2650", nil)
		req.Header.Set("Authorization", "Bearer "+f.admin)
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, req)
		lat = append(lat, time.Since(start))
		if w.Code != 200 || !strings.Contains(w.Body.String(), "exposed") {
			b.Fatalf("cve: %d %s", w.Code, w.Body)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
