package source

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// TestLocations: a real createrepo'd repository, served over HTTP, whose
// updateinfo names packages it holds (two arches) and one it does not.
// With Locations, Load pins each held package to its primary.xml location
// and the SHA-256 of the real file; the missing one keeps updateinfo's
// file name and no digest. Without it, nothing is read from primary.xml.
func TestLocations(t *testing.T) {
	dir := t.TempDir()
	held := []rpmtest.Package{
		{Name: "openssl-libs", Epoch: "1", Version: "3.0.7", Release: "16.el9_2", Arch: "aarch64"},
		{Name: "openssl-libs", Epoch: "1", Version: "3.0.7", Release: "16.el9_2", Arch: "x86_64"},
		{Name: "zlib", Version: "1.2.11", Release: "40.el9", Arch: "aarch64"}, // named by no advisory
	}
	rpms, err := rpmtest.Build(t.TempDir(), held...)
	if err != nil {
		t.Fatal(err)
	}
	advs := []advisory.Advisory{{ID: "ALSA-2023:3722", Type: advisory.Security, Severity: advisory.Moderate,
		Issued: time.Date(2023, 6, 21, 0, 0, 0, 0, time.UTC), Title: "openssl",
		Packages: []advisory.Package{
			{Name: "openssl-libs", EVR: rpmver.MustParseEVR("1:3.0.7-16.el9_2")},
			{Name: "openssl", EVR: rpmver.MustParseEVR("1:3.0.7-16.el9_2")}, // not in the repository
		}}}
	xml, err := rpmtest.UpdateinfoXML(advs, []string{"aarch64", "x86_64"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rpmtest.NewRepo(dir, rpms, xml); err != nil {
		t.Fatal(err)
	}
	srv := rpmtest.Serve(t, dir)

	digest := map[string]string{}
	for i, p := range held {
		b, err := os.ReadFile(filepath.Join(dir, "Packages", filepath.Base(rpms[i])))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		digest[p.Name+"."+p.Arch] = hex.EncodeToString(sum[:])
	}

	got, err := Load(t.Context(), srv.URL+"/", Options{Locations: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Packages) != 4 {
		t.Fatalf("loaded %+v, want one advisory with 4 packages", got)
	}
	located := 0
	for _, p := range got[0].Packages {
		switch p.Name {
		case "openssl-libs":
			want := "Packages/" + filepath.Base(rpms[map[string]int{"aarch64": 0, "x86_64": 1}[p.Arch]])
			if p.Filename != want || p.SHA256 != digest[p.Name+"."+p.Arch] {
				t.Errorf("%s.%s: filename %q sha256 %q; want %q %q", p.Name, p.Arch, p.Filename, p.SHA256, want, digest[p.Name+"."+p.Arch])
			}
			located++
		case "openssl":
			if p.SHA256 != "" || filepath.Dir(p.Filename) != "." {
				t.Errorf("%s.%s is not in the repository but got %q %q", p.Name, p.Arch, p.Filename, p.SHA256)
			}
		}
	}
	if located != 2 {
		t.Fatalf("located %d openssl-libs packages, want 2", located)
	}

	before := srv.Total()
	plain, err := Load(t.Context(), srv.URL+"/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plain[0].Packages {
		if p.SHA256 != "" {
			t.Errorf("without Locations, %s.%s got a digest", p.Name, p.Arch)
		}
	}
	// repomd.xml and updateinfo only: primary.xml is not fetched.
	if n := srv.Total() - before; n != 2 {
		t.Errorf("a Load without Locations made %d requests, want 2 (repomd.xml, updateinfo)", n)
	}
}
