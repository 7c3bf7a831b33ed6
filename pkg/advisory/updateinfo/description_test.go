package updateinfo

import (
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// descriptions reads each update's <description> the slow, independent
// way: encoding/xml unmarshalling the whole file.
func descriptions(t testing.TB, raw []byte) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Updates []struct {
			ID          string `xml:"id"`
			Description string `xml:"description"`
		} `xml:"update"`
	}
	if err := xml.NewDecoder(zr).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, u := range doc.Updates {
		out[strings.TrimSpace(u.ID)] = u.Description
	}
	return out
}

func decodeAll(t testing.TB, raw []byte, keep bool) []*advisory.Advisory {
	t.Helper()
	d := NewDecoder(bytes.NewReader(raw))
	defer d.Close()
	if keep {
		d.KeepDescriptions()
	}
	var out []*advisory.Advisory
	for {
		a, err := d.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
}

// TestKeepDescriptions: with KeepDescriptions every update of the real
// Rocky 8 and EPEL 4 files carries its <description> as an independent
// reading finds it, bounded: EPEL 4's longest, 18 KB, is cut to 16 KiB
// with a closing line naming its size. Without it (the agent) none is
// kept, and the rest of each advisory is the same.
func TestKeepDescriptions(t *testing.T) {
	for _, tt := range []struct {
		file      string
		id, start string // one advisory and how its description starts
		truncated int    // descriptions over advisory.MaxDescription
	}{
		{"testdata/rocky8-updateinfo.xml.gz", "RLBA-2021:2580", "For more information visit https://errata.rockylinux.org/RLBA-2021:2580", 0},
		{"updateinfo/fedora-epel-historical/epel-4-SRPMS-updateinfo.xml.gz", "", "", 1},
	} {
		t.Run(tt.file, func(t *testing.T) {
			path := tt.file
			if !strings.HasPrefix(path, "testdata/") {
				path = filepath.Join(sharedFixtures(t), path)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := descriptions(t, raw)
			kept, plain := decodeAll(t, raw, true), decodeAll(t, raw, false)
			if len(kept) != len(want) || len(plain) != len(want) {
				t.Fatalf("%d and %d advisories, want %d", len(kept), len(plain), len(want))
			}
			truncated := 0
			for i, a := range kept {
				w := want[a.ID]
				if len(strings.TrimSpace(w)) > advisory.MaxDescription {
					truncated++
					tail := fmt.Sprintf("\n[description truncated: %d bytes]", len(strings.TrimSpace(w)))
					if len(a.Description) > advisory.MaxDescription || !strings.HasSuffix(a.Description, tail) ||
						!strings.HasPrefix(strings.TrimSpace(w), strings.TrimSuffix(a.Description, tail)) {
						t.Errorf("%s: a %d-byte description kept as %d bytes ending %q", a.ID, len(w), len(a.Description), a.Description[len(a.Description)-60:])
					}
				} else if a.Description != advisory.BoundDescription(w) || (strings.TrimSpace(w) != "" && a.Description == "") {
					t.Errorf("%s: description %.60q, want %.60q", a.ID, a.Description, w)
				}
				if plain[i].Description != "" {
					t.Errorf("%s: description kept without KeepDescriptions", a.ID)
				}
				a.Description = ""
				if fmt.Sprint(*a) != fmt.Sprint(*plain[i]) {
					t.Errorf("%s: KeepDescriptions changed more than the description", a.ID)
				}
			}
			if truncated != tt.truncated {
				t.Errorf("%d descriptions over %d bytes, want %d", truncated, advisory.MaxDescription, tt.truncated)
			}
			if tt.id != "" {
				if w := want[tt.id]; w != tt.start {
					t.Errorf("%s: the independent reading says %q, want %q", tt.id, w, tt.start)
				}
			}
		})
	}
}

// TestDescriptionsCostNothingUnasked: the agent's decoder (no
// KeepDescriptions) allocates less than the server's by at least the
// descriptions the server keeps, on the real EPEL 4 file (whose
// descriptions are most of its text): it passes them over without a copy.
func TestDescriptionsCostNothingUnasked(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(sharedFixtures(t), "updateinfo/fedora-epel-historical/epel-4-SRPMS-updateinfo.xml.gz"))
	if err != nil {
		t.Fatal(err)
	}
	alloc := func(keep bool) (uint64, int) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		advs := decodeAll(t, raw, keep)
		runtime.ReadMemStats(&after)
		n := 0
		for _, a := range advs {
			n += len(a.Description)
		}
		return after.TotalAlloc - before.TotalAlloc, n
	}
	alloc(false) // warm up
	plain, none := alloc(false)
	kept, n := alloc(true)
	t.Logf("EPEL 4, %d KB compressed: %d KiB allocated without descriptions, %d KiB keeping %d KiB of them", len(raw)>>10, plain>>10, kept>>10, n>>10)
	if none != 0 || n == 0 {
		t.Fatalf("descriptions kept: %d bytes unasked, %d asked", none, n)
	}
	if kept < plain+uint64(n) {
		t.Errorf("keeping %d bytes of descriptions allocated only %d bytes more than not keeping them: the plain decoder copies them too", n, kept-plain)
	}
}
