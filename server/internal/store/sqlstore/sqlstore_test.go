package sqlstore

import (
	"slices"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

func TestApplyDelta(t *testing.T) {
	p := func(name, v string) protocol.Package {
		return protocol.Package{Name: name, Version: v, Release: "1.el9", Arch: "aarch64"}
	}
	prev := []protocol.Package{p("bash", "5.1"), p("kernel", "5.14.0"), p("kernel", "5.14.1"), p("zlib", "1.2")}
	got := applyDelta(prev, []protocol.Package{p("kernel", "5.14.2"), p("curl", "7.76")}, []protocol.Package{p("kernel", "5.14.0"), p("nothere", "1")})
	want := []protocol.Package{p("bash", "5.1"), p("curl", "7.76"), p("kernel", "5.14.1"), p("kernel", "5.14.2"), p("zlib", "1.2")}
	if !slices.Equal(got, want) {
		t.Errorf("applyDelta =\n%v\nwant\n%v", got, want)
	}
}

// FuzzSetCodec checks that a stored package set reads back as written and
// that decodeSet refuses damaged blobs with an error, never a panic.
func FuzzSetCodec(f *testing.F) {
	f.Add("openssl-libs", "1", "3.0.1", "23.el9_0", "aarch64", "", []byte("a\t0\t1\t1\tnoarch\t\n"))
	f.Add("perl", "4", "5.32", "1", "x86_64", "perl:5.32:1:x", []byte("a\tb\n"))
	f.Fuzz(func(t *testing.T, name, epoch, version, release, arch, label string, blob []byte) {
		in := []protocol.Package{{Name: name, Epoch: epoch, Version: version, Release: release, Arch: arch, ModularityLabel: label}}
		enc, err := encodeSet(in)
		if err == nil {
			out, err := decodeSet(enc)
			if err != nil || !slices.Equal(in, out) {
				t.Errorf("round trip of %+v: %+v, %v", in, out, err)
			}
		}
		decodeSet(blob)
	})
}

// TestListDigest: a list's digest names its content whatever order the
// match gave the rows in, keeps one row per key, and tells apart lists
// whose fields differ only in where one field ends and the next begins.
func TestListDigest(t *testing.T) {
	f := func(adv, pkg, arch, fixed string, affected bool) store.Finding {
		return store.Finding{Advisory: adv, Package: pkg, Arch: arch, Installed: "0:1-1", Fixed: fixed, Affected: affected}
	}
	a := f("ALSA-1", "openssl", "aarch64", "0:2-1", true)
	b := f("ALSA-2", "zlib", "aarch64", "0:2-1", false)
	twice := f("ALSA-1", "openssl", "aarch64", "0:3-1", true) // the same key, another fix
	tests := []struct {
		name  string
		x, y  []store.Finding
		equal bool
	}{
		{"order does not matter", []store.Finding{a, b}, []store.Finding{b, a}, true},
		{"a repeated key counts once, the same one whatever the order", []store.Finding{a, twice, b}, []store.Finding{b, twice, a}, true},
		{"a repeated key keeps the lower fix", []store.Finding{a, twice}, []store.Finding{a}, true},
		{"affected matters", []store.Finding{a}, []store.Finding{f("ALSA-1", "openssl", "aarch64", "0:2-1", false)}, false},
		{"field boundaries matter", []store.Finding{f("ALSA-1", "ab", "c", "0:2-1", true)}, []store.Finding{f("ALSA-1", "a", "bc", "0:2-1", true)}, false},
		{"empty is not one empty row", nil, []store.Finding{{}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, y := findingSets.canonical(tt.x, nil), findingSets.canonical(tt.y, nil)
			if got := findingSets.digest(x) == findingSets.digest(y); got != tt.equal {
				t.Errorf("digests equal = %v, want %v\n%v\n%v", got, tt.equal, x, y)
			}
			sx, sy := statusOf(x, nil), statusOf(y, nil)
			if tt.equal && statusSets.digest(sx) != statusSets.digest(sy) {
				t.Errorf("same findings, status digests differ: %v, %v", sx, sy)
			}
		})
	}
}
