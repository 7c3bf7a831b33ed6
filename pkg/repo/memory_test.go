package repo

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// bigPrimary writes a gzip-compressed primary.xml of n packages, made by
// repeating the two real RHEL 7 entries of testdata/yummy with numbered
// names, into dir.
func bigPrimary(t testing.TB, dir string, n int) string {
	t.Helper()
	raw, err := os.ReadFile("testdata/yummy/repodata/primary.xml.gz")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(plain, []byte("<package "))
	end := bytes.LastIndex(plain, []byte("</metadata>"))
	mid := bytes.Index(plain[start+1:], []byte("<package ")) + start + 1
	entries := [][]byte{plain[start:mid], plain[mid:end]}
	path := filepath.Join(dir, fmt.Sprintf("primary-%d.xml.gz", n))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	zw.Write(plain[:start])
	for i := range n {
		e := entries[i%2]
		// A distinct name per entry: "<name>nss-devel</name>" -> "<name>nss-devel-17</name>".
		j := bytes.Index(e, []byte("</name>"))
		zw.Write(e[:j])
		fmt.Fprintf(zw, "-%d", i)
		zw.Write(e[j:])
	}
	zw.Write(plain[end:])
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

type memUse struct {
	packages   int
	peakLive   uint64 // largest live heap right after a GC, sampled
	peakInuse  uint64 // largest HeapInuse seen, sampled without forcing GC
	totalAlloc uint64
}

func measurePrimary(t testing.TB, path string, every int) memUse {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, alloc0 := ms.HeapAlloc, ms.TotalAlloc
	var u memUse
	d := NewPrimaryDecoder(f)
	defer d.Close()
	for {
		_, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		u.packages++
		if u.packages%(every/10+1) == 0 {
			runtime.ReadMemStats(&ms)
			u.peakInuse = max(u.peakInuse, ms.HeapInuse)
		}
		if u.packages%every == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			u.peakLive = max(u.peakLive, ms.HeapAlloc-min(ms.HeapAlloc, base))
		}
	}
	runtime.ReadMemStats(&ms)
	u.totalAlloc = ms.TotalAlloc - alloc0
	return u
}

// TestPrimaryMemoryFlat: ten times the packages, the same live heap.
func TestPrimaryMemoryFlat(t *testing.T) {
	dir := t.TempDir()
	small := measurePrimary(t, bigPrimary(t, dir, 500), 250)
	large := measurePrimary(t, bigPrimary(t, dir, 5000), 250)
	t.Logf("500 packages: peak live heap %d B; 5000 packages: %d B", small.peakLive, large.peakLive)
	if small.packages != 500 || large.packages != 5000 {
		t.Fatalf("decoded %d and %d packages", small.packages, large.packages)
	}
	if large.peakLive > small.peakLive+512<<10 {
		t.Errorf("live heap grew with the file: %d B for 500 packages, %d B for 5000", small.peakLive, large.peakLive)
	}
}

// BenchmarkPrimaryMemory decodes primary.xml files of 5,000 and 50,000
// packages and reports the peak live heap, the peak HeapInuse and the bytes
// allocated per package.
//
//	go test -run '^$' -bench PrimaryMemory -benchtime 1x ./pkg/repo/
func BenchmarkPrimaryMemory(b *testing.B) {
	dir := b.TempDir()
	for _, n := range []int{5000, 50000} {
		path := bigPrimary(b, dir, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var u memUse
			for b.Loop() {
				u = measurePrimary(b, path, 1000)
			}
			b.ReportMetric(float64(u.peakLive), "peak-live-B")
			b.ReportMetric(float64(u.peakInuse), "peak-heapinuse-B")
			b.ReportMetric(float64(u.totalAlloc)/float64(u.packages), "alloc-B/pkg")
		})
	}
}
