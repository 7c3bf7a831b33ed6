package repo

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

func readPrimary(r io.Reader) ([]*Package, error) {
	d := NewPrimaryDecoder(r)
	defer d.Close()
	var out []*Package
	for {
		p, err := d.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
}

// TestPrimaryYummy reads the real RHEL 7 primary.xml.gz, trimmed to two
// packages while its root still says packages="32921".
func TestPrimaryYummy(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/yummy/repodata/primary.xml.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkgs, err := readPrimary(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []*Package{
		{
			Name: "nss-devel", Arch: "i686", EVR: rpmver.EVR{Epoch: "0", Version: "3.19.1", Release: "18.el7"},
			Checksum: Checksum{"sha1", "b2fb721826000bb9b69f46ec4c7c0040ee3b1a90"},
			Location: "Packages/n/nss-devel-3.19.1-18.el7.i686.rpm",
			Size:     215192, InstalledSize: 757126, SourceRPM: "nss-3.19.1-18.el7.src.rpm",
		},
		{
			Name: "tpm-quote-tools", Arch: "x86_64", EVR: rpmver.EVR{Epoch: "0", Version: "1.0.2", Release: "3.el7"},
			Checksum: Checksum{"sha1", "3dd206e9d42ccf37a9e16ba407ac38a738a8b5eb"},
			Location: "Packages/t/tpm-quote-tools-1.0.2-3.el7.x86_64.rpm",
			Size:     43320, InstalledSize: 145852, SourceRPM: "tpm-quote-tools-1.0.2-3.el7.src.rpm",
		},
	}
	if !reflect.DeepEqual(pkgs, want) {
		t.Errorf("got:\n%+v\n%+v\nwant:\n%+v\n%+v", pkgs[0], pkgs[1], want[0], want[1])
	}
	if got := pkgs[0].NEVRA(); got != "nss-devel-0:3.19.1-18.el7.i686" {
		t.Errorf("NEVRA %q", got)
	}
}

func TestPrimaryErrors(t *testing.T) {
	t.Parallel()
	const head = "<?xml version=\"1.0\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" packages=\"1\">\n"
	const sum = `<checksum type="sha256" pkgid="YES">` + "9d25370cf8f2bdf046145fa51ef3d0229ecc6862cbe35281a70184cc39089f54" + `</checksum>`
	pkg := func(inner string) string {
		return head + "<package type=\"rpm\">\n" + inner + "</package>\n</metadata>\n"
	}
	tests := []struct{ name, in, want string }{
		{"not primary", "<repomd/>", "repo: not a primary.xml: line 1: root element is <repomd>, want <metadata>"},
		{"no name", pkg("<arch>x86_64</arch>"), "primary: line 3: package without <name>"},
		{"no version", pkg("<name>foo</name><arch>noarch</arch>" + sum + `<location href="foo.rpm"/>`), `primary: line 3: package "foo": missing <version ver>`},
		{"no checksum", pkg(`<name>foo</name><arch>noarch</arch><version ver="1" rel="1"/><location href="foo.rpm"/>`), `package "foo": missing <checksum>`},
		{"no location", pkg(`<name>foo</name><arch>noarch</arch><version ver="1" rel="1"/>` + sum), `package "foo": missing <location href>`},
		{"bad checksum", pkg("<name>foo</name>\n<checksum type=\"sha256\">zz</checksum>"), `primary: line 5: package "foo": <checksum>: sha256 "zz" is not 64 hex digits`},
		{"bad size", pkg("<name>foo</name>\n<size package=\"-1\"/>"), `primary: line 5: package "foo": <size package="-1"> is not a size`},
		{"bad epoch", pkg(`<name>foo</name><arch>noarch</arch><version epoch="one" ver="1" rel="1"/>` + sum + `<location href="foo.rpm"/>`), `package "foo": epoch "one" is not a number`},
		{"truncated", head + "<package type=\"rpm\">\n<name>foo</name>\n<format>", "primary: line 5: unexpected EOF: the file is truncated"},
		{"trailing element", head + "</metadata>\n<metadata>", "primary: line 4: element <metadata> after </metadata>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readPrimary(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := readPrimary(strings.NewReader("")); !errors.Is(err, ErrNotPrimary) {
		t.Errorf("empty input: got %v, want ErrNotPrimary", err)
	}
}

// TestPrimaryTruncatedGzip: a primary.xml.gz cut short is an error even
// where the XML happens to be complete.
func TestPrimaryTruncatedGzip(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/yummy/repodata/primary.xml.gz")
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{len(raw) / 2, len(raw) - 4} {
		pkgs, err := readPrimary(bytes.NewReader(raw[:cut]))
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.HasPrefix(err.Error(), "primary: line ") {
			t.Errorf("cut at %d of %d: %d packages, err = %v; want the line and unexpected EOF", cut, len(raw), len(pkgs), err)
		}
	}
}

func FuzzPrimaryDecoder(f *testing.F) {
	raw, err := os.ReadFile("testdata/yummy/repodata/primary.xml.gz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		f.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewPrimaryDecoder(bytes.NewReader(data))
		defer d.Close()
		for range 10000 {
			p, err := d.Next()
			if err != nil {
				return
			}
			if p.Name == "" || p.Arch == "" || p.Version == "" || p.Location == "" || p.Checksum.Value == "" {
				t.Fatalf("accepted incomplete package %+v", p)
			}
		}
	})
}

// TestPrimaryInstallOnly: a package providing installonlypkg(...) (as
// EL9's kernel-core and kernel-modules do) or multiversion(kernel) is
// marked install-only; one whose provides merely mention a kernel is not.
func TestPrimaryInstallOnly(t *testing.T) {
	t.Parallel()
	pkg := func(name, provides string) string {
		return `<package type="rpm"><name>` + name + `</name><arch>aarch64</arch><version epoch="0" ver="5.14.0" rel="362.8.1.el9_3"/>` +
			`<checksum type="sha256" pkgid="YES">` + strings.Repeat("ab", 32) + `</checksum><location href="Packages/` + name + `.rpm"/>` +
			`<format><rpm:sourcerpm>kernel-5.14.0-362.8.1.el9_3.src.rpm</rpm:sourcerpm><rpm:provides>` + provides +
			`</rpm:provides><rpm:requires><rpm:entry name="installonlypkg(kernel)"/></rpm:requires></format></package>`
	}
	xml := `<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="4">` +
		pkg("kernel-core", `<rpm:entry name="installonlypkg(kernel)"/><rpm:entry name="kernel-core" flags="EQ" epoch="0" ver="5.14.0" rel="362.8.1.el9_3"/>`) +
		pkg("kernel-modules", `<rpm:entry name="kernel-modules-aarch64" flags="EQ" epoch="0" ver="5.14.0" rel="362.8.1.el9_3"/><rpm:entry name="installonlypkg(kernel-module)"/>`) +
		pkg("raspberrypi2-kernel4", `<rpm:entry name="multiversion(kernel)"/>`) +
		pkg("kernel-tools", `<rpm:entry name="kernel-tools" flags="EQ" epoch="0" ver="5.14.0" rel="362.8.1.el9_3"/>`) +
		`</metadata>`
	pkgs, err := readPrimary(strings.NewReader(xml))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range pkgs {
		got[p.Name] = p.InstallOnly
	}
	want := map[string]bool{"kernel-core": true, "kernel-modules": true, "raspberrypi2-kernel4": true, "kernel-tools": false}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("install-only = %v, want %v (a requires entry must not count)", got, want)
	}
}
