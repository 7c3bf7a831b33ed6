package rpmver

import (
	"errors"
	"strings"
	"testing"
)

// addFixtureSeeds seeds a two-string fuzz target with rpm's own test pairs
// and the edge cases the differential test found worth pinning.
func addFixtureSeeds(f *testing.F) {
	for _, r := range readTSV(f, "rpmvercmp.tsv", 3) {
		f.Add(r.fields[0], r.fields[1])
	}
	for _, r := range readTSV(f, "evr-vectors-extra.tsv", 4) {
		f.Add(r.fields[0], r.fields[1])
	}
	f.Add("1.0", "1.0-")
	f.Add("1:", "-1")
	f.Add("1.1.α", "1.1.\xff")
	f.Add("000000000000000000000001", "1")
	f.Add("1.0\x00a", "1.0\x00b")
}

func FuzzVercmp(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, a, b string) {
		c := Vercmp(a, b)
		if c < -1 || c > 1 {
			t.Fatalf("Vercmp(%q, %q) = %d, want -1, 0 or 1", a, b, c)
		}
		if r := Vercmp(b, a); r != -c {
			t.Fatalf("Vercmp(%q, %q) = %d but Vercmp(%q, %q) = %d", a, b, c, b, a, r)
		}
		if r := Vercmp(a, a); r != 0 {
			t.Fatalf("Vercmp(%q, %q) = %d, want 0", a, a, r)
		}
		// rpm sees C strings: nothing after a NUL counts.
		if r := Vercmp(a+"\x00"+b, a); r != 0 && !strings.Contains(a, "\x00") {
			t.Fatalf("Vercmp(%q, %q) = %d, want 0", a+"\x00"+b, a, r)
		}
	})
}

func FuzzParseEVR(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, a, b string) {
		ea, errA := ParseEVR(a)
		eb, errB := ParseEVR(b)
		for _, c := range []struct {
			s   string
			e   EVR
			err error
		}{{a, ea, errA}, {b, eb, errB}} {
			if c.err != nil {
				if c.s != "" && !strings.Contains(c.s, "\x00") {
					t.Fatalf("ParseEVR(%q): %v; rpm accepts any non-empty string", c.s, c.err)
				}
				if !errors.Is(c.err, ErrEmptyVersion) && !errors.Is(c.err, ErrNUL) {
					t.Fatalf("ParseEVR(%q): %v is neither ErrEmptyVersion nor ErrNUL", c.s, c.err)
				}
				continue
			}
			if r := Compare(c.e, c.e); r != 0 {
				t.Fatalf("Compare(%#v, itself) = %d", c.e, r)
			}
			back, err := ParseEVR(c.e.String())
			if err != nil || Compare(back, c.e) != 0 || back.HasRelease() != c.e.HasRelease() || back.String() != c.e.String() {
				t.Fatalf("ParseEVR(%q) = %#v, %v; want it back as %#v", c.e.String(), back, err, c.e)
			}
		}
		if errA != nil || errB != nil {
			return
		}
		c := Compare(ea, eb)
		if r := Compare(eb, ea); r != -c || c < -1 || c > 1 {
			t.Fatalf("Compare(%q, %q) = %d but Compare(%q, %q) = %d", a, b, c, b, a, r)
		}
		// With no epoch and no release, an EVR is just a version.
		if !strings.ContainsAny(a+b, "-:") {
			if v := Vercmp(a, b); v != c {
				t.Fatalf("Compare(%q, %q) = %d but Vercmp = %d", a, b, c, v)
			}
		}
	})
}

func FuzzParseNEVRA(f *testing.F) {
	for _, file := range []string{"ubi8_ubi-aarch64-rpm-manifest.tsv", "ubi9_ubi-aarch64-rpm-manifest.tsv"} {
		for i, r := range readTSV(f, file, 6) {
			if i%20 == 1 {
				f.Add(r.fields[4])
				f.Add(r.fields[5])
			}
		}
	}
	f.Add("bash-5.1.8-6.el9_1.x86_64.rpm")
	f.Add("openssl-libs-1:3.0.7-16.el9_2.aarch64")
	f.Add("hello-2.0-1.x86_64-signed.rpm")
	f.Add("a-1-1.rpm.rpm")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNEVRA(s)
		if err != nil {
			if !errors.Is(err, ErrNEVRA) {
				t.Fatalf("ParseNEVRA(%q): %v is not ErrNEVRA", s, err)
			}
			return
		}
		if n.Name == "" || n.Version == "" || n.Release == "" || n.Arch == "" {
			t.Fatalf("ParseNEVRA(%q) = %#v with an empty part", s, n)
		}
		// String writes the epoch, 0 when absent, and reads back the same.
		withEpoch := n
		if withEpoch.Epoch == "" {
			withEpoch.Epoch = "0"
		}
		if back, err := ParseNEVRA(n.String()); err != nil || back != withEpoch {
			t.Fatalf("ParseNEVRA(%q) = %#v, %v; want %#v", n.String(), back, err, withEpoch)
		}
		// Filename drops the epoch and reads back without one.
		noEpoch := n
		noEpoch.Epoch = ""
		if back, err := ParseNEVRA(n.Filename()); err != nil || back != noEpoch {
			t.Fatalf("ParseNEVRA(%q) = %#v, %v; want %#v", n.Filename(), back, err, noEpoch)
		}
		// The EVR part is one ParseEVR reads the same way.
		evr, err := ParseEVR(n.EVR.String())
		if err != nil || Compare(evr, n.EVR) != 0 {
			t.Fatalf("ParseEVR(%q) = %#v, %v; want %#v", n.EVR.String(), evr, err, n.EVR)
		}
	})
}
