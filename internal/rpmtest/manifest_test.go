package rpmtest

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestReadManifest reads the real RHEL 9.0 and 8.0 aarch64 image manifests.
func TestReadManifest(t *testing.T) {
	tests := []struct {
		file  string
		count int
		some  []Package // packages that must be listed exactly so
	}{
		{"testdata/ubi9_ubi-aarch64-rpm-manifest.tsv", 179, []Package{
			{Name: "openssl-libs", Epoch: "1", Version: "3.0.1", Release: "23.el9_0", Arch: "aarch64"},
			{Name: "tzdata", Epoch: "0", Version: "2022a", Release: "1.el9_0", Arch: "noarch"},
			{Name: "libgcc", Epoch: "0", Version: "11.2.1", Release: "9.4.el9", Arch: "aarch64"},
		}},
		{"testdata/ubi8_ubi-aarch64-rpm-manifest.tsv", 176, []Package{
			{Name: "tar", Epoch: "2", Version: "1.30", Release: "4.el8", Arch: "aarch64"},
			{Name: "lua-libs", Epoch: "0", Version: "5.3.4", Release: "10.el8", Arch: "aarch64"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			pkgs, err := ReadManifest(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if len(pkgs) != tc.count {
				t.Errorf("%d packages, want %d", len(pkgs), tc.count)
			}
			for _, want := range tc.some {
				found := false
				for _, p := range pkgs {
					if p.Name == want.Name {
						found = true
						if p.Epoch != want.Epoch || p.Version != want.Version || p.Release != want.Release || p.Arch != want.Arch {
							t.Errorf("%s = %+v, want %+v", want.Name, p, want)
						}
					}
				}
				if !found {
					t.Errorf("%s not listed", want.Name)
				}
			}
		})
	}
}

func TestReadManifestErrors(t *testing.T) {
	const header = "# comment\nname\tversion\trelease\tarch\tnvra\tsrpm_nevra\tgpg_keyid\n"
	tests := []struct {
		name, in, wantMsg string
	}{
		{"no header", "# only a comment\n", "no header line"},
		{"wrong header", "name\tversion\n", `line 1: header is "name\tversion"`},
		{"short line", header + "bash\t5.1.8\t4.el9\n", "line 3: 3 columns, want 7"},
		{"nvra mismatch", header + "bash\t5.1.8\t4.el9\taarch64\tbash-5.1.8-5.el9.aarch64\tbash-0:5.1.8-4.el9.src\tk\n",
			`line 3: nvra "bash-5.1.8-5.el9.aarch64" does not match`},
		{"not a source", header + "bash\t5.1.8\t4.el9\taarch64\tbash-5.1.8-4.el9.aarch64\tbash-0:5.1.8-4.el9.aarch64\tk\n",
			"line 3: srpm_nevra \"bash-0:5.1.8-4.el9.aarch64\": does not end in .src"},
		{"bad epoch", header + "bash\t5.1.8\t4.el9\taarch64\tbash-5.1.8-4.el9.aarch64\tbash-x:5.1.8-4.el9.src\tk\n",
			`epoch "x" is not a number`},
		{"empty name", header + "\t5.1.8\t4.el9\taarch64\t-5.1.8-4.el9.aarch64\tbash-0:5.1.8-4.el9.src\tk\n", "line 3: empty name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseManifest(strings.NewReader(tc.in))
			if !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %v, want ErrManifest with %q", err, tc.wantMsg)
			}
		})
	}
	_, err := ReadManifest("testdata/no-such.tsv")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "testdata/no-such.tsv") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestSourceEpoch(t *testing.T) {
	tests := []struct{ in, want string }{
		{"openssl-1:3.0.1-23.el9_0.src", "1"},
		{"gcc-0:11.2.1-9.4.el9.src", "0"},
		{"tar-2:1.30-4.el8.src", "2"},
		{"python-setuptools-0:53.0.0-10.el9.src", "0"},
		{"zlib-1.2.11-31.el9_0.1.src", ""},
	}
	for _, tc := range tests {
		if got, err := sourceEpoch(tc.in); got != tc.want || err != nil {
			t.Errorf("sourceEpoch(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	b, err := os.ReadFile("testdata/ubi9_ubi-aarch64-rpm-manifest.tsv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[:2000])
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, err := parseManifest(strings.NewReader(string(b)))
		if err != nil {
			if !errors.Is(err, ErrManifest) {
				t.Fatalf("error without ErrManifest: %v", err)
			}
			return
		}
		for _, p := range pkgs {
			if err := p.validate(); err != nil {
				t.Fatalf("accepted a package Build would refuse: %v", err)
			}
		}
	})
}
