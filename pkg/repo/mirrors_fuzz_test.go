package repo

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzMetalink: any metalink document is parsed or refused with an error,
// never a panic, and what is accepted is usable: at least one version with
// a hash of an accepted type and the right length, bases that are http(s)
// URLs ending in "/", and a Verify that never accepts bytes no version
// describes.
func FuzzMetalink(f *testing.F) {
	raw, err := os.ReadFile("testdata/mirrors/fedora19-updates-x86_64.metalink")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(metalinkFor([]byte("<repomd/>"), "http://a.example/r/", "https://b.example/r/")))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetalink(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(m.Versions) == 0 {
			t.Fatal("accepted a metalink with no usable version")
		}
		for _, v := range m.Versions {
			if len(v.Hashes) == 0 {
				t.Fatalf("version without hashes: %+v", v)
			}
			for _, h := range v.Hashes {
				if a, ok := algorithms[h.Type]; !ok || len(h.Value) != a.hexLen {
					t.Fatalf("accepted hash %+v", h)
				}
			}
		}
		for _, b := range m.Bases() {
			if !(strings.HasPrefix(b, "http://") || strings.HasPrefix(b, "https://")) || !strings.HasSuffix(b, "/") {
				t.Fatalf("base %q", b)
			}
		}
		if err := m.Verify([]byte("no metalink vouches for this")); !errors.Is(err, ErrMetalinkMismatch) {
			t.Fatalf("Verify of arbitrary bytes = %v, want ErrMetalinkMismatch", err)
		}
	})
}

// FuzzMirrorList: any mirror list is parsed or refused, and every URL kept
// is a trimmed, non-comment line holding "://".
func FuzzMirrorList(f *testing.F) {
	f.Add([]byte("# AlmaLinux 9 baseos\nhttps://a.example/almalinux/9.6/BaseOS/$basearch/os/\n\nhttp://b.example/almalinux/9.6/BaseOS/$basearch/os/\n"))
	f.Add([]byte("  https://a.example/r/  \r\n\t# c\nnot a url\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		urls, err := ParseMirrorList(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, u := range urls {
			if u != strings.TrimSpace(u) || u == "" || u[0] == '#' || !strings.Contains(u, "://") || strings.ContainsAny(u, "\n") {
				t.Fatalf("kept %q", u)
			}
		}
	})
}
