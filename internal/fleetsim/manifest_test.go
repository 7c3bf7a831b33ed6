package fleetsim

import (
	"slices"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestReadManifestUBI9: the real UBI 9.0 aarch64 manifest gives its 179
// packages, openssl-libs with the source package's epoch 1.
func TestReadManifestUBI9(t *testing.T) {
	pkgs, err := ReadManifest(fixtures.Path(t, "installed-inventory/claircore-ubi9/ubi9_ubi-aarch64-rpm-manifest.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 179 {
		t.Errorf("%d packages, want 179", len(pkgs))
	}
	i := slices.IndexFunc(pkgs, func(p protocol.Package) bool { return p.Name == "openssl-libs" })
	if i < 0 || pkgs[i].Epoch != "1" || pkgs[i].Version != "3.0.1" || pkgs[i].Release != "23.el9_0" {
		t.Errorf("openssl-libs = %+v, want 1:3.0.1-23.el9_0", pkgs)
	}
}

// TestParseManifestRefuses names the line and what was wrong.
func TestParseManifestRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"no arch column", "name\tversion\trelease\nbash\t5\t1\n", `line 1: header has no "arch" column`},
		{"empty name", "name\tversion\trelease\tarch\n\t5\t1\tx86_64\n", "line 2: name, version, release and arch must all be given"},
		{"escape in a name", "name\tversion\trelease\tarch\nbash\x1b[31m\t5\t1\tx86_64\n", "line 2: package.name"},
		{"no packages", "# only a comment\nname\tversion\trelease\tarch\n", "no packages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseManifest(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestPerturb: variant 0 is the image; another variant is the same set
// every time, differs from the image, and stays sorted; two variants
// differ.
func TestPerturb(t *testing.T) {
	base, err := ReadManifest(fixtures.Path(t, "installed-inventory/claircore-ubi9/ubi9_ubi-aarch64-rpm-manifest.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(Perturb(base, 0), base) {
		t.Error("variant 0 differs from the image")
	}
	distinct := map[string]bool{}
	for v := 1; v <= 20; v++ {
		a, b := Perturb(base, v), Perturb(base, v)
		if !slices.Equal(a, b) {
			t.Fatalf("variant %d differs between two calls", v)
		}
		if !slices.IsSortedFunc(a, func(x, y protocol.Package) int { return strings.Compare(x.Name+"\x00"+x.Arch, y.Name+"\x00"+y.Arch) }) {
			t.Errorf("variant %d is not sorted", v)
		}
		distinct[protocol.InventoryDigest(a)] = true
	}
	if len(distinct) < 15 {
		t.Errorf("20 variants gave %d distinct sets, want most of them distinct", len(distinct))
	}
}
