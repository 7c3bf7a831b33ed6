package updateinfo

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

// TestBombs: an updateinfo.xml whose <description> inflates to 400 MB, in
// each compressed format, is refused naming the line and the element,
// having allocated a few MB (on main before the limits, the same gzip
// took the server to 1.1 GB). The description is one the decoder skips, so
// this is the path that used to buffer it whole.
func TestBombs(t *testing.T) {
	const head = "<?xml version=\"1.0\"?>\n<updates>\n<update type=\"security\">\n<id>ALSA-2099:0001</id>\n<description>"
	const tail = "</description>\n</update>\n</updates>\n"
	for _, f := range compressedtest.Formats {
		t.Run(string(f), func(t *testing.T) {
			bomb := compressedtest.Bomb(t, f, head, 'A', 400, tail)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			advs, err := ReadAll(bytes.NewReader(bomb))
			runtime.ReadMemStats(&after)
			if want := "updateinfo: line 5: <description> longer than 1 MiB"; err == nil || err.Error() != want {
				t.Fatalf("%d advisories, err = %v, want %q", len(advs), err, want)
			}
			if !errors.Is(err, ErrTooLong) {
				t.Errorf("err %v does not wrap ErrTooLong", err)
			}
			// The decompressor's own buffers are most of it: xz's 8 MiB
			// dictionary, zstd's window.
			t.Logf("%s bomb of %d KB: allocated %d KiB", f, len(bomb)>>10, (after.TotalAlloc-before.TotalAlloc)>>10)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 48<<20 {
				t.Errorf("allocated %d MiB to refuse a %d KB bomb", alloc>>20, len(bomb)>>10)
			}
		})
	}
}

// TestDescriptionLimit: a description at the limit is accepted, one byte
// more is refused; the real files all read under the limits (TestGolden).
func TestDescriptionLimit(t *testing.T) {
	doc := func(n int) string {
		return "<updates>\n<update><id>X-1</id>\n<description>" + strings.Repeat("d", n) + "</description></update></updates>"
	}
	if advs, err := ReadAll(strings.NewReader(doc(1 << 20))); err != nil || len(advs) != 1 {
		t.Fatalf("a 1 MiB description: %d advisories, %v", len(advs), err)
	}
	_, err := ReadAll(strings.NewReader(doc(1<<20 + 1)))
	if want := "updateinfo: line 3: <description> longer than 1 MiB"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	// A title is kept in memory with its advisory: 64 KiB.
	_, err = ReadAll(strings.NewReader("<updates><update><id>X-1</id>\n\n<title>" + strings.Repeat("t", 64<<10+1) + "</title></update></updates>"))
	if want := "updateinfo: line 3: <title> longer than 64 KiB"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

// TestTooLargeNamesLine: decompressing past the 2 GiB default is the
// decompressor's error, placed at the line reached. Tested with a smaller
// limit through NewReaderMax, as a caller raising or lowering it would.
func TestTooLargeNamesLine(t *testing.T) {
	var doc strings.Builder
	doc.WriteString("<updates>\n")
	for range 2000 {
		doc.WriteString("<update><id>X-1</id></update>\n")
	}
	doc.WriteString("</updates>\n")
	z := compressedtest.Compress(t, compressed.Gzip, []byte(doc.String()))
	rc, _, err := compressed.NewReaderMax(bytes.NewReader(z), 10000)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = ReadAll(rc)
	if !errors.Is(err, compressed.ErrTooLarge) || !strings.HasPrefix(err.Error(), "updateinfo: line ") {
		t.Fatalf("err = %v, want ErrTooLarge at a line", err)
	}
}

// TestUpdateSizeLimit: an update with more packages than MaxUpdateSize
// holds is refused as it is read, naming it, before it is returned whole;
// the same packages spread over updates read fine.
func TestUpdateSizeLimit(t *testing.T) {
	pkgs := func(from, n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "<package name=\"p%d\" version=\"1\" release=\"1\" arch=\"x86_64\"/>\n", from+i)
		}
		return b.String()
	}
	const n = 140000 // about 18 MiB kept
	one := "<updates>\n<update><id>X-1</id><pkglist><collection>\n" + pkgs(0, n) + "</collection></pkglist></update></updates>"
	_, err := ReadAll(strings.NewReader(one))
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), `update "X-1" keeps more than 16 MiB of packages and references`) {
		t.Fatalf("err = %v, want the update refused", err)
	}
	var many strings.Builder
	many.WriteString("<updates>\n")
	for i := range 4 {
		fmt.Fprintf(&many, "<update><id>X-%d</id><pkglist><collection>\n%s</collection></pkglist></update>\n", i, pkgs(i*n/4, n/4))
	}
	many.WriteString("</updates>")
	advs, err := ReadAll(strings.NewReader(many.String()))
	if err != nil || len(advs) != 4 || len(advs[3].Packages) != n/4 {
		t.Fatalf("%d advisories, err %v; want 4 of %d packages", len(advs), err, n/4)
	}
}
