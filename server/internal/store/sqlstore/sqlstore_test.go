package sqlstore

import (
	"slices"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
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
