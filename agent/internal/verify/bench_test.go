package verify

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
)

// bigSigned builds and signs a package whose payload is about size bytes of
// incompressible data (the same bytes every run, so rpmtest's cache serves it).
func bigSigned(tb testing.TB, size int) (string, *Keyring) {
	tb.Helper()
	key := rpmtest.NewKey(tb, rpmtest.KeyRSA4096, "rpmtest-rsa4096")
	data := make([]byte, size)
	r := rand.NewChaCha8([32]byte{'r', 'p', 'm', 'f', 'l', 'e', 'e', 't'})
	r.Read(data)
	paths, err := rpmtest.Build(tb.TempDir(), rpmtest.Package{
		Name: "big", Version: fmt.Sprint(size), Release: "1", Arch: "x86_64",
		Files: map[string]string{"/usr/share/big/blob": string(data)},
	})
	if err != nil {
		tb.Fatalf("build: %v (run make deps)", err)
	}
	if err := rpmtest.Sign(key, paths[0]); err != nil {
		tb.Fatal(err)
	}
	kr, err := LoadKeyring(key.PublicKeyFile)
	if err != nil {
		tb.Fatal(err)
	}
	return paths[0], kr
}

// TestMemoryFlat verifies a 1 MB and a 5 MB package and checks that the bytes
// allocated do not grow with the payload: only the headers are held.
func TestMemoryFlat(t *testing.T) {
	var allocs []uint64
	for _, size := range []int{1 << 20, 5 << 20} {
		file, kr := bigSigned(t, size)
		File(file, kr, nil) // warm the buffer pool
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := File(file, kr, nil); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		a := after.TotalAlloc - before.TotalAlloc
		t.Logf("%d-byte payload: %d bytes allocated", size, a)
		if a > 512<<10 {
			t.Errorf("%d-byte payload: %d bytes allocated, want < 512 KiB", size, a)
		}
		allocs = append(allocs, a)
	}
	if allocs[1] > allocs[0]+64<<10 {
		t.Errorf("allocations grow with the payload: %d bytes for 1 MB, %d for 5 MB", allocs[0], allocs[1])
	}
}

// BenchmarkFile verifies a signed ~5 MB package (RSA-4096, header-only
// signature, SHA-256 header and payload digests, MD5).
func BenchmarkFile(b *testing.B) {
	file, kr := bigSigned(b, 5<<20)
	fi, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := File(file, kr, nil); err != nil {
			b.Fatal(err)
		}
	}
}
