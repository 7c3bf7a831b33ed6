package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
	"github.com/rpmfleet/rpmfleet/pkg/compressed/compressedtest"
)

// manyUpdates is an updateinfo.xml of n small updates, each with one
// package.
func manyUpdates(n int) string {
	var b strings.Builder
	b.WriteString("<updates>\n")
	for i := range n {
		fmt.Fprintf(&b, "<update><id>X-%d</id><pkglist><collection><package name=\"p\" version=\"1\" release=\"1\" arch=\"x86_64\"/></collection></pkglist></update>\n", i)
	}
	b.WriteString("</updates>\n")
	return b.String()
}

// TestLoadHeldLimit: many small advisories, each under every parser
// limit, are refused by Load once they hold more than MaxHeld, naming the
// source and where it stopped; the real AlmaLinux 8 database loads under
// the default with room to spare.
func TestLoadHeldLimit(t *testing.T) {
	dir := t.TempDir()
	src := write(t, dir, "updateinfo.xml.gz", compressedtest.Compress(t, compressed.Gzip, []byte(manyUpdates(20000))))
	advs, err := Load(context.Background(), src, Options{})
	if err != nil || len(advs) != 20000 {
		t.Fatalf("under the default: %d advisories, %v", len(advs), err)
	}
	var held int64
	for i := range advs {
		held += Held(&advs[i])
	}
	_, err = Load(context.Background(), src, Options{MaxHeld: held / 2})
	if !errors.Is(err, ErrTooLarge) || !strings.HasPrefix(err.Error(), src+": source: advisories over the limit: the ") {
		t.Fatalf("err = %v, want ErrTooLarge naming %s", err, src)
	}

	alma, err := Load(context.Background(), fixtures.Path(t, "almalinux-osv/almalinux8.jsonl.gz"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	held = 0
	for i := range alma {
		held += Held(&alma[i])
	}
	t.Logf("AlmaLinux 8 OSV: %d advisories hold %d KB by Held", len(alma), held>>10)
	if held < 4<<20 || held > DefaultMaxHeld/8 {
		t.Errorf("AlmaLinux 8 holds %d bytes by Held: want a few MB, far under DefaultMaxHeld", held)
	}
}

// TestMaxSize: a file that decompresses past MaxSize is refused, and so is
// a plain file fetched over HTTP that goes on past it (the decompressor
// passes plain input through, so the fetch itself is held).
func TestMaxSize(t *testing.T) {
	doc := manyUpdates(2000)
	dir := t.TempDir()
	gz := write(t, dir, "u.gz", compressedtest.Compress(t, compressed.Gzip, []byte(doc)))
	if _, err := Load(context.Background(), gz, Options{MaxSize: int64(len(doc))}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	_, err := Load(context.Background(), gz, Options{MaxSize: int64(len(doc)) - 1})
	if !errors.Is(err, compressed.ErrTooLarge) || !strings.HasPrefix(err.Error(), gz+": updateinfo: line ") {
		t.Fatalf("err = %v, want ErrTooLarge at a line of %s", err, gz)
	}

	// A server that sends updates for ever.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<updates>\n")
		for {
			if _, err := io.WriteString(w, "<update><id>X-1</id></update>\n"); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	u := srv.URL + "/updateinfo.xml"
	_, err = Load(context.Background(), u, Options{MaxSize: 4 << 20})
	if !errors.Is(err, compressed.ErrTooLarge) || !strings.Contains(err.Error(), "more than 4194304 bytes fetched") || !strings.HasPrefix(err.Error(), u+": ") {
		t.Fatalf("err = %v, want ErrTooLarge naming %s", err, u)
	}
}

// TestBombNamesFile: the 400 MB description bomb read as a file is refused
// naming the file, the line and the element.
func TestBombNamesFile(t *testing.T) {
	bomb := compressedtest.Bomb(t, compressed.Zstd, "<updates>\n<update>\n<id>X-1</id>\n<description>", 'A', 400, "</description></update></updates>")
	src := write(t, t.TempDir(), "updateinfo.xml.zst", bomb)
	_, err := Load(context.Background(), src, Options{})
	if want := filepath.Clean(src) + ": updateinfo: line 4: <description> longer than 1 MiB"; err == nil || err.Error() != want || !errors.Is(err, updateinfo.ErrTooLong) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
