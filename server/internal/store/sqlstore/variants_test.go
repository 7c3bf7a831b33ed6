package sqlstore

import (
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// TestNamesFile: locate decodes a stored variant only when namesFile says
// one of its packages has a file name; a wrong "no" would drop a plan's
// pinned location and digest, so every shape of encoding is tried,
// including text that looks like the key inside a title.
func TestNamesFile(t *testing.T) {
	pkg := func(file string) advisory.Package {
		return advisory.Package{Name: "zlib", EVR: rpmver.MustParseEVR("1.2.11-32.el9_0"), Arch: "aarch64", Filename: file}
	}
	tests := []struct {
		name string
		a    advisory.Advisory
		want bool
	}{
		{"no packages", advisory.Advisory{ID: "A-1"}, false},
		{"OSV: no file names", advisory.Advisory{ID: "A-1", Packages: []advisory.Package{pkg(""), pkg("")}}, false},
		{"one file name of two", advisory.Advisory{ID: "A-1", Packages: []advisory.Package{pkg(""), pkg("Packages/z.rpm")}}, true},
		{"every file named", advisory.Advisory{ID: "A-1", Packages: []advisory.Package{pkg("Packages/z.rpm")}}, true},
		{"the key inside a title", advisory.Advisory{ID: "A-1", Title: `x "Filename":"Packages/evil.rpm"`, Packages: []advisory.Package{pkg("")}}, false},
		{"an empty key inside a title", advisory.Advisory{ID: "A-1", Title: `"Filename":""`, Packages: []advisory.Package{pkg("a.rpm")}}, true},
		{"a file name that is a quote", advisory.Advisory{ID: "A-1", Packages: []advisory.Package{pkg(`"`)}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, body, err := store.NewVariant(tt.a)
			if err != nil {
				t.Fatal(err)
			}
			if got := namesFile(body); got != tt.want {
				t.Errorf("namesFile(%s) = %v, want %v", body, got, tt.want)
			}
		})
	}
}
