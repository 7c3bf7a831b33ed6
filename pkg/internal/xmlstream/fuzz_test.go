package xmlstream

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
)

// FuzzReader holds the Reader to encoding/xml read directly: with the
// default limits, on any input too small to reach them but for nesting, the
// same tokens and an error exactly where encoding/xml has one; with tiny
// limits, no token or text past them, and every refusal an ErrTooLong.
func FuzzReader(f *testing.F) {
	for _, p := range []string{"updateinfo/rocky8/updateinfo.xml", "updateinfo/amazon/updateinfo_2_items.xml.gz", "repodata/yummy-rhel7-subset/primary.xml.gz"} {
		b, err := os.ReadFile(filepath.Join(fixtures.Path(f, "."), p))
		if err != nil {
			f.Fatal(err)
		}
		if rc, _, err := compressed.NewReader(bytes.NewReader(b)); err == nil {
			b, _ = io.ReadAll(io.LimitReader(rc, 32<<10))
			rc.Close()
		}
		f.Add(b)
	}
	f.Add([]byte("<u><title>a<!--c-->b<![CDATA[c]]></title><description>&amp;&#65;</description></u>"))
	f.Add([]byte("<!DOCTYPE u [<!ENTITY x 'y'>]><?pi x?><u a='1' xmlns:p='q'><p:v/></u>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Against encoding/xml.
		r := New(bytes.NewReader(data), "x")
		x := xml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			got, err := r.Token()
			want, werr := x.Token()
			if err != nil {
				if errors.Is(err, ErrTooLong) {
					if len(r.stack) < DefaultLimits().Depth && len(data) < 64<<10 {
						t.Fatalf("token %d: %v on a %d-byte input nested %d deep", i, err, len(data), len(r.stack))
					}
					break
				}
				if (err == io.EOF) != (werr == io.EOF) || werr == nil {
					t.Fatalf("token %d: error %v, encoding/xml %v, %T", i, err, werr, want)
				}
				break
			}
			if werr != nil {
				t.Fatalf("token %d: %T, encoding/xml error %v", i, got, werr)
			}
			if !reflect.DeepEqual(xml.CopyToken(got), xml.CopyToken(want)) {
				t.Fatalf("token %d: %#v, encoding/xml %#v", i, got, want)
			}
		}

		// With tiny limits.
		lim := Limits{Text: map[string]int{"description": 40}, DefaultText: 16, Markup: 64, Depth: 4}
		r = NewLimits(bytes.NewReader(data), "x", lim)
		for {
			tok, err := r.Token()
			if err != nil {
				return
			}
			switch t2 := tok.(type) {
			case xml.CharData:
				if len(t2) > 40+13 {
					t.Fatalf("a %d-byte text run passed limits of at most 40", len(t2))
				}
			case xml.StartElement:
				if len(r.stack) > lim.Depth {
					t.Fatalf("nested %d deep, limit %d", len(r.stack), lim.Depth)
				}
				if t2.Name.Local == "title" || t2.Name.Local == "description" {
					s, err := r.Text()
					if err == nil && len(s) > lim.text(t2.Name.Local) {
						t.Fatalf("<%s> text of %d bytes, limit %d", t2.Name.Local, len(s), lim.text(t2.Name.Local))
					}
				}
			}
		}
	})
}
