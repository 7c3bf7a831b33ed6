package osv

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/compressed"
	"github.com/rpmfleet/rpmfleet/pkg/compressed/compressedtest"
)

// object writes one OSV object with the given extra members before
// "affected", and n fixed versions of one package.
func object(extra string, fixed int) string {
	var ev strings.Builder
	for i := range fixed {
		if i > 0 {
			ev.WriteByte(',')
		}
		fmt.Fprintf(&ev, `{"fixed":"1.%d-1"}`, i)
	}
	return `{"id":"ALSA-2099:1",` + extra + `"affected":[{"package":{"ecosystem":"AlmaLinux:9","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[` + ev.String() + `]}]}]}`
}

// list writes a JSON array of n strings s.
func list(n int, s string) string {
	return "[" + strings.Repeat(`"`+s+`",`, n-1) + `"` + s + `"]`
}

// TestLimits: each kept string and list is held to its limit, at the limit
// accepted, past it refused naming the line and the field.
func TestLimits(t *testing.T) {
	t.Parallel()
	x := strings.Repeat
	for _, tc := range []struct {
		name, in, want string
	}{
		{"summary at the limit", object(`"summary":"`+x("s", MaxFieldSize)+`",`, 1), ""},
		{"summary over", "\n" + object(`"summary":"`+x("s", MaxFieldSize+1)+`",`, 1), "osv: line 2: summary: longer than 64 KiB"},
		{"escaped summary over as written", object(`"summary":"`+x(`\n`, MaxFieldSize/2+1)+`",`, 1), "osv: line 1: summary: longer than 64 KiB"},
		{"package name over", strings.Replace(object("", 1), `"name":"a"`, `"name":"`+x("n", MaxFieldSize+1)+`"`, 1), "osv: line 1: affected[0].package.name: longer than 64 KiB"},
		{"details are not kept: no field limit", object(`"details":"`+x("d", 4*MaxFieldSize)+`",`, 1), ""},
		{"related at the limit", object(`"related":`+list(MaxItems, "CVE-1")+`,`, 1), ""},
		{"related over", object(`"related":`+list(MaxItems+1, "CVE-1")+`,`, 1), "osv: line 1: related: more than 65536 elements"},
		{"references over", object(`"references":[`+x(`{},`, MaxItems)+`{}],`, 1), "osv: line 1: references: more than 65536 elements"},
		{"fixed versions at the limit", object("", MaxItems), ""},
		{"fixed versions over", object("", MaxItems+1), "osv: line 1: affected[0].ranges[0].events[65536]: more than 65536 fixed versions in the object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeAll(strings.NewReader(tc.in), Options{})
			if tc.want == "" {
				if err != nil || len(got) != 1 {
					t.Fatalf("%d advisories, err %v; want one", len(got), err)
				}
				return
			}
			var e *Error
			if err == nil || err.Error() != tc.want || !errors.As(err, &e) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestBombs: an OSV object whose details inflate to 400 MB, in each
// compressed format, is refused as ErrTooLarge at MaxObjectSize, the heap
// staying at about that much (the buffer, the decompressor's window).
func TestBombs(t *testing.T) {
	// Not parallel: PeakHeap sees the whole process's heap, and CI once
	// counted another test's 68 MiB as the bomb's.
	for _, f := range compressedtest.Formats {
		t.Run(string(f), func(t *testing.T) {
			bomb := compressedtest.Bomb(t, f, `{"id":"ALSA-2099:1","details":"`, 'A', 400, `"}`)
			var err error
			peak := compressedtest.PeakHeap(func() { _, err = decodeAll(bytes.NewReader(bomb), Options{}) })
			if !errors.Is(err, ErrTooLarge) || err.Error() != "osv: line 1: object too large: over 8 MiB" {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			t.Logf("%s bomb of %d KB: peak heap %d MiB", f, len(bomb)>>10, peak>>20)
			if peak > 64<<20 {
				t.Errorf("heap reached %d MiB to refuse a %d KB bomb", peak>>20, len(bomb)>>10)
			}
		})
	}
}

// TestManyLargeObjectsFlat: objects just under MaxObjectSize one after
// another, their details skipped, keep the live heap at about one object:
// nothing is kept from one to the next but the small advisory.
func TestManyLargeObjectsFlat(t *testing.T) {
	one := object(`"details":"`+strings.Repeat("d", MaxObjectSize-1<<20)+`",`, 1) + "\n"
	z := compressedtest.Compress(t, compressed.Gzip, []byte(strings.Repeat(one, 10)))
	d := NewDecoder(bytes.NewReader(z), Options{})
	defer d.Close()
	var peak uint64
	var ms runtime.MemStats
	n := 0
	for {
		_, err := d.Next()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatal(err)
			}
			break
		}
		n++
		runtime.GC()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	}
	if n != 10 {
		t.Fatalf("%d advisories, want 10", n)
	}
	if peak > 3*MaxObjectSize {
		t.Errorf("live heap reached %d MiB for objects of 7 MiB", peak>>20)
	}
}
