package updateinfo

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// repeated writes the Fedora Core 6 updateinfo.xml (676 updates) with its
// <update> elements repeated n times, gzip-compressed, into dir, and returns
// the path.
func repeated(t testing.TB, dir string, n int) string {
	t.Helper()
	f, err := os.Open(filepath.Join(sharedFixtures(t), "updateinfo/fedora-epel-historical/fedora-linux-core-updates-6-i386-updateinfo.xml.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(raw, []byte("<update "))
	end := bytes.LastIndex(raw, []byte("</updates>"))
	if start < 0 || end < start {
		t.Fatal("fixture has no <update> elements")
	}
	path := filepath.Join(dir, "x.xml.gz")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(out, gzip.BestSpeed)
	zw.Write(raw[:start])
	for range n {
		zw.Write(raw[start:end])
	}
	zw.Write(raw[end:])
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

type memUse struct {
	updates    int
	peakLive   uint64 // largest heap in use right after a GC, sampled
	peakInuse  uint64 // largest HeapInuse seen without forcing GC, sampled
	totalAlloc uint64 // bytes allocated while decoding
}

// measure decodes path, keeping nothing, and samples the heap every
// `every` updates.
func measure(t testing.TB, path string, every int) memUse {
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
	sample := func(gc bool) {
		if gc {
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		if gc && ms.HeapAlloc-min(ms.HeapAlloc, base) > u.peakLive {
			u.peakLive = ms.HeapAlloc - min(ms.HeapAlloc, base)
		}
		if ms.HeapInuse > u.peakInuse {
			u.peakInuse = ms.HeapInuse
		}
	}
	d := NewDecoder(f)
	defer d.Close()
	for {
		_, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		u.updates++
		if u.updates%(every/10+1) == 0 {
			sample(false)
		}
		if u.updates%every == 0 {
			sample(true)
		}
	}
	runtime.ReadMemStats(&ms)
	u.totalAlloc = ms.TotalAlloc - alloc0
	return u
}

// TestMemoryFlat: decoding ten times the updates keeps the same live heap.
// The decoder holds one <update> at a time, so the live heap after a GC,
// sampled every 200 updates, must not grow with the file.
func TestMemoryFlat(t *testing.T) {
	dir := t.TempDir()
	one := measure(t, repeated(t, dir, 1), 200)
	ten := measure(t, repeated(t, dir, 10), 200)
	t.Logf("1x: %d updates, peak live heap %d B; 10x: %d updates, peak live heap %d B", one.updates, one.peakLive, ten.updates, ten.peakLive)
	if one.updates != 676 || ten.updates != 6760 {
		t.Fatalf("decoded %d and %d updates, want 676 and 6760", one.updates, ten.updates)
	}
	// Slack for the GC's own bookkeeping and buffers; a decoder that kept
	// even 100 bytes per update would exceed it at 10x.
	if ten.peakLive > one.peakLive+512<<10 {
		t.Errorf("live heap grew with the file: %d B at 1x, %d B at 10x", one.peakLive, ten.peakLive)
	}
}

// BenchmarkDecodeMemory reports, for the Fedora Core 6 file and ten times
// it: the peak live heap (after GC, sampled every 100 updates), the peak
// HeapInuse seen, and bytes allocated per update.
//
//	go test -run '^$' -bench DecodeMemory -benchtime 1x ./pkg/advisory/updateinfo/
func BenchmarkDecodeMemory(b *testing.B) {
	dir := b.TempDir()
	for _, n := range []int{1, 10} {
		path := repeated(b, dir, n)
		b.Run(map[int]string{1: "x1", 10: "x10"}[n], func(b *testing.B) {
			var u memUse
			for b.Loop() {
				u = measure(b, path, 100)
			}
			b.ReportMetric(float64(u.updates), "updates")
			b.ReportMetric(float64(u.peakLive), "peak-live-B")
			b.ReportMetric(float64(u.peakInuse), "peak-heapinuse-B")
			b.ReportMetric(float64(u.totalAlloc)/float64(u.updates), "alloc-B/update")
		})
	}
}

// BenchmarkDecode is plain decoding speed on the Fedora Core 6 file.
func BenchmarkDecode(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join(sharedFixtures(b), "updateinfo/fedora-epel-historical/fedora-linux-core-updates-6-i386-updateinfo.xml.gz"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := ReadAll(bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
	}
}
