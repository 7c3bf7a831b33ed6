package compressed_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/compressed"
	"github.com/rpmfleet/rpmfleet/pkg/compressed/compressedtest"
)

// readMax reads everything NewReaderMax gives for b.
func readMax(b []byte, max int64) ([]byte, error) {
	rc, _, err := compressed.NewReaderMax(bytes.NewReader(b), max)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestMaxSize: a stream that decompresses to exactly the limit reads whole;
// one byte more is refused with ErrTooLarge, naming the format and the
// limit, in every format.
func TestMaxSize(t *testing.T) {
	data := bytes.Repeat([]byte("<update><id>ALSA-2023:3722</id></update>\n"), 1000)
	for _, f := range compressedtest.Formats {
		t.Run(string(f), func(t *testing.T) {
			z := compressedtest.Compress(t, f, data)
			got, err := readMax(z, int64(len(data)))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("at the limit: %d bytes, err %v; want all %d", len(got), err, len(data))
			}
			got, err = readMax(z, int64(len(data))-1)
			if !errors.Is(err, compressed.ErrTooLarge) {
				t.Fatalf("one byte over: err = %v, want ErrTooLarge", err)
			}
			if want := string(f) + ": compressed: decompressed size over the limit: more than 40999 bytes decompressed"; err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
			if len(got) != len(data)-1 {
				t.Errorf("read %d bytes before the error, want the %d allowed", len(got), len(data)-1)
			}
		})
	}
}

// TestBombStopsAtLimit: a bomb of 400 MiB in a few hundred KB stops at the
// limit with ErrTooLarge, and the decoder's live heap stays small while it
// runs (it streams: nothing grows with the output).
func TestBombStopsAtLimit(t *testing.T) {
	for _, f := range compressedtest.Formats {
		t.Run(string(f), func(t *testing.T) {
			bomb := compressedtest.Bomb(t, f, "", 'A', 400, "")
			t.Logf("%s bomb: %d bytes", f, len(bomb))
			rc, _, err := compressed.NewReaderMax(bytes.NewReader(bomb), 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			n, err := io.Copy(io.Discard, rc)
			if !errors.Is(err, compressed.ErrTooLarge) || n != 64<<20 {
				t.Fatalf("read %d bytes, err %v; want 64 MiB then ErrTooLarge", n, err)
			}
		})
	}
}

// TestWindowRefused: an xz block or a zstd frame asking for more history
// than MaxWindow is refused with ErrWindow before its dictionary is
// allocated, also when the large one is not the first stream; 64 MiB (xz
// -9's dictionary) is accepted.
func TestWindowRefused(t *testing.T) {
	small := []byte(strings.Repeat("<updates/>\n", 100))
	xz64 := compressedtest.Compress(t, compressed.XZ, small, "--lzma2=preset=0,dict=64MiB")
	xz128 := compressedtest.Compress(t, compressed.XZ, small, "--lzma2=preset=0,dict=128MiB")
	xz1536 := compressedtest.Compress(t, compressed.XZ, small, "--lzma2=preset=0,dict=1536MiB")
	zstd27 := compressedtest.Compress(t, compressed.Zstd, small, "--zstd=wlog=27")
	zstd26 := compressedtest.Compress(t, compressed.Zstd, small, "--zstd=wlog=26")
	for _, tc := range []struct {
		name   string
		stream []byte
		ok     bool
	}{
		{"xz dictionary 64 MiB", xz64, true},
		{"xz dictionary 128 MiB", xz128, false},
		{"xz dictionary 1.5 GiB", xz1536, false},
		{"xz 1.5 GiB in the second stream", append(append([]byte{}, xz64...), xz1536...), false},
		{"xz 1.5 GiB after stream padding", append(append(append([]byte{}, xz64...), 0, 0, 0, 0), xz1536...), false},
		{"zstd window 64 MiB", zstd26, true},
		{"zstd window 128 MiB", zstd27, false},
		{"zstd 128 MiB in the second frame", append(append([]byte{}, zstd26...), zstd27...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			got, err := readMax(tc.stream, compressed.DefaultMaxSize)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if tc.ok {
				if err != nil || !bytes.HasPrefix(got, small) {
					t.Fatalf("err %v, %d bytes; want the document", err, len(got))
				}
				return
			}
			if !errors.Is(err, compressed.ErrWindow) {
				t.Fatalf("err = %v, want ErrWindow", err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 100<<20 {
				t.Errorf("allocated %d MiB before refusing", alloc>>20)
			}
		})
	}
}

// TestXZLayouts holds the xz guard to every layout the real xz writes: the
// presets, each check type, many blocks (multi-threaded), incompressible
// data (uncompressed LZMA2 chunks), concatenated streams with padding. Each
// must decode to the same bytes; a guard that lost its place would refuse
// one of them.
func TestXZLayouts(t *testing.T) {
	text := bytes.Repeat([]byte("<package name=\"openssl\" version=\"3.0.7\" release=\"16.el9_2\"/>\n"), 8000)
	random := make([]byte, 512<<10)
	rand.Read(random)
	mixed := append(append(append([]byte{}, text[:256<<10]...), random...), text...)
	for _, tc := range []struct {
		name string
		data []byte
		args []string
	}{
		{"default", text, nil},
		{"preset 0", text, []string{"-0"}},
		{"preset 9 extreme", text, []string{"-9e"}},
		{"check none", text, []string{"--check=none"}},
		{"check crc32", text, []string{"--check=crc32"}},
		{"check sha256", text, []string{"--check=sha256"}},
		{"blocks of 100 KiB", mixed, []string{"--block-size=100KiB"}},
		{"two threads", mixed, []string{"-T2", "--block-size=1MiB"}},
		{"incompressible", random, nil},
		{"block sizes in headers", mixed, []string{"-T2", "--block-list=1MiB,2MiB,50KiB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := compressedtest.Compress(t, compressed.XZ, tc.data, tc.args...)
			got, err := readMax(z, compressed.DefaultMaxSize)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("err %v, %d bytes, want %d identical", err, len(got), len(tc.data))
			}
			// The same stream twice, with stream padding between.
			two := append(append(append([]byte{}, z...), make([]byte, 8)...), z...)
			got, err = readMax(two, compressed.DefaultMaxSize)
			if err != nil || !bytes.Equal(got, append(append([]byte{}, tc.data...), tc.data...)) {
				t.Fatalf("two streams: err %v, %d bytes, want %d identical", err, len(got), 2*len(tc.data))
			}
		})
	}
}
