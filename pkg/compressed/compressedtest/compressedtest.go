// Package compressedtest makes decompression bombs for tests: a few hundred
// kilobytes that inflate to hundreds of megabytes, in every format package
// compressed reads, made on the fly by the real gzip, xz, zstd and bzip2
// tools so that no large file is ever committed.
package compressedtest

import (
	"bytes"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/compressed"
)

// Formats are the compressed formats, in a fixed order.
var Formats = []compressed.Format{compressed.Gzip, compressed.XZ, compressed.Zstd, compressed.Bzip2}

// Compress compresses data with the format's real tool and the given extra
// arguments (for example "--lzma2=preset=0,dict=128MiB" for xz). Data goes
// through a pipe, so the tool does not know its size in advance (zstd then
// keeps the window it was asked for).
func Compress(t testing.TB, f compressed.Format, data []byte, args ...string) []byte {
	t.Helper()
	tool := map[compressed.Format][]string{
		compressed.Gzip:  {"gzip", "-9", "-c"},
		compressed.XZ:    {"xz", "-c"},
		compressed.Zstd:  {"zstd", "-19", "-q", "-c"},
		compressed.Bzip2: {"bzip2", "-9", "-c"},
	}[f]
	if tool == nil {
		t.Fatalf("compressedtest: no tool for format %q", f)
	}
	cmd := exec.Command(tool[0], append(tool[1:], args...)...)
	cmd.Stdin = bytes.NewReader(data)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("compressedtest: %s %s: %v: %s", tool[0], strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// Bomb returns a stream of format f that decompresses to head, then mib
// MiB of the byte fill, then tail. It is a concatenation of compressed
// streams (gzip members, xz streams, zstd frames, bzip2 streams, each of
// which the format allows one after another): head, one MiB of fill
// repeated mib times, tail. Extra arguments go to the tool for every
// stream.
func Bomb(t testing.TB, f compressed.Format, head string, fill byte, mib int, tail string, args ...string) []byte {
	t.Helper()
	var out bytes.Buffer
	out.Write(Compress(t, f, []byte(head), args...))
	chunk := Compress(t, f, bytes.Repeat([]byte{fill}, 1<<20), args...)
	for range mib {
		out.Write(chunk)
	}
	out.Write(Compress(t, f, []byte(tail), args...))
	return out.Bytes()
}

// PeakHeap runs f and returns the largest heap in use (runtime.MemStats
// HeapInuse: live objects and garbage not yet collected) seen while it
// ran, sampled every millisecond, less the heap in use before it started.
// It is what a bomb could make a process hold, within the sampling.
func PeakHeap(f func()) uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	peak := base
	done := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		p := base
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			p = max(p, ms.HeapInuse)
			select {
			case <-done:
				sampled <- p
				return
			case <-t.C:
			}
		}
	}()
	f()
	runtime.ReadMemStats(&ms)
	close(done)
	peak = max(<-sampled, ms.HeapInuse)
	return peak - base
}
