package updateinfo

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	shared "github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/osv"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// sharedFixtures returns the fixture folder, testdata/ at the module root.
func sharedFixtures(t testing.TB) string {
	t.Helper()
	return shared.Path(t, ".")
}

// facts are what an independent reading of each file (Python's ElementTree,
// and SOURCE.md) says it holds.
type facts struct {
	updates, packages int
	types             map[advisory.Type]int
	rebootUpdates     int
	cvePairs          int // distinct (advisory, CVE) pairs
	aarch64           int
	modulePackages    int
}

type fixture struct {
	name   string // golden file name
	path   string // relative to the test directory, or to shared fixtures
	shared bool
	full   bool // golden lists every package, not only a digest
	want   facts
}

var fixtures = []fixture{
	{"rocky8", "testdata/rocky8-updateinfo.xml", false, true, facts{4, 7, map[advisory.Type]int{advisory.Bugfix: 1, advisory.Security: 3}, 0, 5, 0, 2}},
	{"amazon2", "testdata/amazon2-updateinfo.xml.gz", false, true, facts{2, 22, map[advisory.Type]int{advisory.Security: 2}, 0, 16, 0, 0}},
	{"amazon2022", "testdata/amazon2022-updateinfo.xml.gz", false, true, facts{1, 32, map[advisory.Type]int{advisory.Security: 1}, 0, 4, 10, 0}},
	{"amazon2023", "testdata/amazon2023-updateinfo.xml.gz", false, true, facts{1, 61, map[advisory.Type]int{advisory.Security: 1}, 0, 2, 20, 0}},
	{"bottlerocket", "testdata/bottlerocket-updateinfo.xml.gz", false, true, facts{2, 8, map[advisory.Type]int{advisory.Security: 2}, 0, 2, 4, 0}},
	{"fedora9", "testdata/fedora9-updateinfo.xml.gz", false, true, facts{1, 40, map[advisory.Type]int{advisory.Security: 1}, 1, 0, 0, 0}},
	{"epel4", "updateinfo/fedora-epel-historical/epel-4-SRPMS-updateinfo.xml.gz", true, false, facts{422, 5322, map[advisory.Type]int{"newpackage": 159, advisory.Bugfix: 163, advisory.Enhancement: 54, advisory.Security: 46}, 0, 0, 0, 0}},
	{"fedora-core6", "updateinfo/fedora-epel-historical/fedora-linux-core-updates-6-i386-updateinfo.xml.gz", true, false, facts{676, 10529, map[advisory.Type]int{advisory.Bugfix: 541, advisory.Security: 135}, 19, 241, 0, 0}},
}

func (f fixture) file(t testing.TB) string {
	if f.shared {
		return filepath.Join(sharedFixtures(t), f.path)
	}
	return f.path
}

func parse(t testing.TB, path string) []*advisory.Advisory {
	t.Helper()
	advs, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return advs
}

func factsOf(advs []*advisory.Advisory) facts {
	f := facts{updates: len(advs), types: map[advisory.Type]int{}}
	for _, a := range advs {
		f.packages += len(a.Packages)
		f.types[a.Type]++
		f.cvePairs += len(a.CVEs)
		if a.RebootSuggested {
			f.rebootUpdates++
		}
		for _, p := range a.Packages {
			if p.Arch == "aarch64" {
				f.aarch64++
			}
			if p.Module != nil {
				f.modulePackages++
			}
		}
	}
	return f
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339Nano)
}

// summary is the golden form of a file: one line per advisory, and one per
// package when full (otherwise a count).
func summary(advs []*advisory.Advisory, full bool) string {
	var b strings.Builder
	f := factsOf(advs)
	var types []string
	for t, n := range f.types {
		types = append(types, fmt.Sprintf("%s=%d", t, n))
	}
	sort.Strings(types)
	fmt.Fprintf(&b, "updates=%d packages=%d types=%s reboot=%d cves=%d\n", f.updates, f.packages, strings.Join(types, ","), f.rebootUpdates, f.cvePairs)
	for _, a := range advs {
		fmt.Fprintf(&b, "%s type=%s severity=%s issued=%s updated=%s reboot=%t refs=%d pkgs=%d cves=%s title=%q\n",
			a.ID, a.Type, a.Severity, fmtTime(a.Issued), fmtTime(a.Updated), a.RebootSuggested, len(a.References), len(a.Packages), strings.Join(a.CVEs, ","), a.Title)
		if !full {
			continue
		}
		for _, r := range a.References {
			fmt.Fprintf(&b, "  ref type=%s id=%s url=%s\n", r.Type, r.ID, r.URL)
		}
		for _, p := range a.Packages {
			mod := "-"
			if p.Module != nil {
				mod = p.Module.String()
			}
			fmt.Fprintf(&b, "  pkg %s %s %s module=%s file=%s sha256=%s\n", p.Name, p.EVR, p.Arch, mod, p.Filename, p.SHA256)
		}
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			advs := parse(t, f.file(t))
			if got := factsOf(advs); !reflect.DeepEqual(got, f.want) {
				t.Errorf("facts:\n got %+v\nwant %+v", got, f.want)
			}
			got := summary(advs, f.full)
			golden := filepath.Join("testdata", f.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("summary differs from %s (go test -update rewrites it):\n%s", golden, diffLines(string(want), got))
			}
		})
	}
}

// diffLines shows the first differing lines.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\nwant %s\n got %s", i+1, wl, gl)
		}
	}
	return ""
}

// TestKnownAdvisories checks fields of real advisories against the files,
// by hand.
func TestKnownAdvisories(t *testing.T) {
	byID := map[string]*advisory.Advisory{}
	for _, f := range fixtures {
		for _, a := range parse(t, f.file(t)) {
			byID[a.ID] = a
		}
	}
	get := func(t *testing.T, id string) *advisory.Advisory {
		a := byID[id]
		if a == nil {
			t.Fatalf("%s not found", id)
		}
		return a
	}
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"rocky module collection", func(t *testing.T) {
			a := get(t, "RLSA-2019:1972")
			if a.Type != advisory.Security || a.Severity != advisory.Important || len(a.Packages) != 2 {
				t.Fatalf("got %+v", a)
			}
			p := a.Packages[1]
			if p.Name != "rubygem-bson" || p.EVR.String() != "0:4.3.0-2.module+el8.4.0+592+03ff458a" || p.Arch != "x86_64" ||
				p.Module == nil || *p.Module != (advisory.Module{Name: "ruby", Stream: "2.6"}) ||
				p.SHA256 != "716796875e0868a929b33f6dbf31b15a517a61be8fc6dc5feabbe2b9658db9f3" {
				t.Errorf("got %+v module %v", p, p.Module)
			}
			if want := time.Date(2023, 2, 2, 12, 55, 31, 0, time.UTC); !a.Updated.Equal(want) {
				t.Errorf("updated %v, want %v", a.Updated, want)
			}
		}},
		{"rocky severity None", func(t *testing.T) {
			if a := get(t, "RLBA-2021:2580"); a.Severity != advisory.SeverityNone || a.Type != advisory.Bugfix || len(a.CVEs) != 0 {
				t.Errorf("got %+v", a)
			}
		}},
		{"amazon minutes-only date and epoch 10", func(t *testing.T) {
			a := get(t, "ALAS2-2018-942")
			if want := time.Date(2018, 2, 7, 18, 49, 0, 0, time.UTC); !a.Issued.Equal(want) {
				t.Errorf("issued %v, want %v", a.Issued, want)
			}
			if a.Severity != advisory.Important || a.Packages[0].Epoch != "10" || a.Packages[0].Filename != "Packages/qemu-kvm-1.5.3-141.amzn2.5.3.x86_64.rpm" {
				t.Errorf("got %+v", a)
			}
		}},
		{"bottlerocket ISO 8601 date, medium severity, no filename", func(t *testing.T) {
			a := get(t, "BRSA-kdg8bd1th2gb")
			if want := time.Date(2026, 3, 17, 16, 22, 44, 0, time.UTC); !a.Issued.Equal(want) {
				t.Errorf("issued %v, want %v", a.Issued, want)
			}
			if a.Severity != advisory.Moderate || a.Packages[2].Arch != "aarch64" || a.Packages[2].EVR.String() != "1:2.43-1.1773716061.e2e9d7a9.br1" {
				t.Errorf("got %+v", a)
			}
			if !reflect.DeepEqual(a.CVEs, []string{"CVE-2025-15281"}) || len(a.References) != 2 {
				t.Errorf("cves %v refs %v", a.CVEs, a.References)
			}
		}},
		{"fedora core 6 fractional seconds and reference text", func(t *testing.T) {
			a := get(t, "FEDORA-2007-38")
			if want := time.Date(2007, 1, 16, 9, 44, 3, 500_000_000, time.UTC); !a.Issued.Equal(want) {
				t.Errorf("issued %v, want %v", a.Issued, want)
			}
			if len(a.References) != 1 || a.References[0].Title != "Ipod Nano 2G mis-detected by HAL, fails to mount properly" {
				t.Errorf("refs %+v", a.References)
			}
		}},
		{"fedora 9 reboot on packages", func(t *testing.T) {
			if a := get(t, "FEDORA-2008-7748"); !a.RebootSuggested {
				t.Error("reboot_suggested True on packages not read")
			}
		}},
		{"epel 4 empty reboot_suggested is not a reboot", func(t *testing.T) {
			if a := get(t, "FEDORA-EPEL-2009-0915"); a.RebootSuggested || a.Type != "newpackage" {
				t.Errorf("got reboot=%t type=%s", a.RebootSuggested, a.Type)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// TestCompressions: the same advisories whatever the compression, found by
// magic bytes (the files were made with the gzip, xz, bzip2 and zstd CLIs).
func TestCompressions(t *testing.T) {
	want := parse(t, "testdata/rocky8-updateinfo.xml")
	for _, ext := range []string{"gz", "xz", "bz2", "zst"} {
		t.Run(ext, func(t *testing.T) {
			raw, err := os.ReadFile("testdata/rocky8-updateinfo.xml." + ext)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadAll(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded %s differs from plain", ext)
			}
			// Cut anywhere in the compressed body: an error, never a short list.
			for _, cut := range []int{len(raw) / 3, len(raw) / 2, len(raw) - 5} {
				_, err := ReadAll(bytes.NewReader(raw[:cut]))
				if err == nil {
					t.Fatalf("truncated at %d/%d: no error", cut, len(raw))
				}
				if !strings.Contains(err.Error(), "updateinfo: line ") {
					t.Errorf("truncated at %d: error %q does not name the line", cut, err)
				}
			}
		})
	}
}

func TestTruncatedGzipIsErrTruncated(t *testing.T) {
	raw, err := os.ReadFile("testdata/rocky8-updateinfo.xml.gz")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ReadAll(bytes.NewReader(raw[:len(raw)/2]))
	if !errors.Is(err, compressed.ErrTruncated) {
		t.Fatalf("got %v, want compressed.ErrTruncated", err)
	}
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"2021-07-22 18:25:24", time.Date(2021, 7, 22, 18, 25, 24, 0, time.UTC)},
		{"2023-02-17 20:41", time.Date(2023, 2, 17, 20, 41, 0, 0, time.UTC)},
		{"2007-01-16 09:44:03.50", time.Date(2007, 1, 16, 9, 44, 3, 500_000_000, time.UTC)},
		{"2025-06-11T19:52:52Z", time.Date(2025, 6, 11, 19, 52, 52, 0, time.UTC)},
		{"2025-06-11T21:52:52+02:00", time.Date(2025, 6, 11, 19, 52, 52, 0, time.UTC)},
		{"1287746075", time.Date(2010, 10, 22, 11, 14, 35, 0, time.UTC)},
		{"2019-01-01", time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseDate(tt.in)
			if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("parseDate(%q) = %v, %v; want %v UTC", tt.in, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"yesterday", "2021-13-45 00:00:00", "99999999999999999999"} {
		if _, err := parseDate(bad); err == nil {
			t.Errorf("parseDate(%q): no error", bad)
		}
	}
}

func TestErrors(t *testing.T) {
	const head = "<?xml version=\"1.0\"?>\n<updates>\n"
	tests := []struct {
		name, in, want string
	}{
		{"not updateinfo", "<?xml version=\"1.0\"?>\n<metadata packages=\"1\">\n</metadata>", "not an updateinfo.xml: line 2: root element is <metadata>"},
		{"empty", "", "not an updateinfo.xml: no root element"},
		{"missing version", head + "<update type=\"security\"><id>X-1</id>\n<pkglist><collection>\n<package name=\"foo\" release=\"1\"/>\n</collection></pkglist></update></updates>",
			`updateinfo: line 5: update "X-1": package "foo": missing version`},
		{"missing name", head + "<update><id>X-1</id><pkglist><collection>\n\n<package version=\"1\"/></collection></pkglist></update></updates>", `line 5: update "X-1": package without name`},
		{"missing id", head + "\n<update type=\"bugfix\"><title>t</title></update></updates>", "updateinfo: line 4: update without <id>"},
		{"bad severity", head + "<update><id>X-1</id>\n<severity>Apocalyptic</severity></update></updates>", `line 4: update "X-1": advisory: unknown severity "Apocalyptic"`},
		{"bad date", head + "<update><id>X-1</id>\n<issued date=\"last tuesday\"/></update></updates>", `line 4: update "X-1": <issued> date "last tuesday": unrecognized format`},
		{"bad epoch", head + "<update><id>X-1</id><pkglist><collection>\n<package name=\"foo\" epoch=\"x\" version=\"1\"/></collection></pkglist></update></updates>", `line 4: update "X-1": package "foo": epoch "x" is not a number`},
		{"bad sha256", head + "<update><id>X-1</id><pkglist><collection><package name=\"foo\" version=\"1\">\n<sum type=\"sha256\">abc</sum></package></collection></pkglist></update></updates>", `package "foo": sha256 sum "abc" is not 64 hex digits`},
		{"module without stream", head + "<update><id>X-1</id><pkglist><collection>\n<module name=\"ruby\"/></collection></pkglist></update></updates>", `line 4: update "X-1": <module> without name or stream`},
		{"truncated plain", head + "<update><id>X-1</id>\n<pkglist><collection>", "updateinfo: line 4: unexpected EOF"},
		{"missing end of updates", head + "<update><id>X-1</id></update>\n", "updateinfo: line 4: unexpected EOF: the file is truncated"},
		{"element after updates", "<updates></updates>\n<updates>", "line 2: element <updates> after </updates>"},
		{"mismatched tag", head + "<update><id>X-1</id>\n\n</updates>", "updateinfo: line 5: element <update> closed by </updates>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadAll(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseFileNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "broken.xml")
	if err := os.WriteFile(p, []byte("<updates><update><id>A</id><pkglist><collection><package name=\"x\"/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": updateinfo: line 1: ") {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(func() error { _, err := ParseFile(filepath.Join(t.TempDir(), "none")); return err }(), os.ErrNotExist) {
		t.Error("a missing file is not os.ErrNotExist")
	}
}

// TestNextAfterEOF: Next keeps returning io.EOF, and an error sticks.
func TestNextAfterEOF(t *testing.T) {
	d := NewDecoder(strings.NewReader("<updates><update><id>A-1</id></update></updates>"))
	defer d.Close()
	if a, err := d.Next(); err != nil || a.ID != "A-1" {
		t.Fatalf("got %v, %v", a, err)
	}
	for range 2 {
		if _, err := d.Next(); err != io.EOF {
			t.Fatalf("got %v, want io.EOF", err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			want := parse(t, f.file(t))
			var buf bytes.Buffer
			if err := Encode(&buf, want); err != nil {
				t.Fatal(err)
			}
			got, err := ReadAll(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d advisories back, want %d", len(got), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("advisory %s changed:\n got %+v\nwant %+v", want[i].ID, got[i], want[i])
				}
			}
		})
	}
}

// TestRoundTripCompressed: an encoded file gzip-compressed reads back too.
func TestRoundTripCompressed(t *testing.T) {
	want := parse(t, "testdata/rocky8-updateinfo.xml")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := Encode(zw, want); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAll(&buf)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d advisories, %v", len(got), err)
	}
}

func FuzzDecoder(f *testing.F) {
	for _, fx := range fixtures {
		if fx.shared {
			continue // too big to be useful seeds; the small ones cover the shapes
		}
		raw, err := os.ReadFile(fx.path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		if plain, err := gunzip(raw); err == nil {
			f.Add(plain)
		}
	}
	f.Add([]byte("<updates><update><id>A</id><issued date=\"1287746075\"/><reboot_suggested>1</reboot_suggested></update></updates>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data))
		defer d.Close()
		for range 10000 {
			a, err := d.Next()
			if err != nil {
				return
			}
			if a.ID == "" {
				t.Fatal("advisory without id")
			}
			for _, p := range a.Packages {
				if p.Name == "" || p.Version == "" {
					t.Fatalf("package without name or version: %+v", p)
				}
			}
		}
	})
}

func gunzip(raw []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// TestEncodeKeepsCVEsWithoutReferences: an advisory read from OSV lists its
// CVEs without updateinfo references; written and read back, it must still
// name them, or a server importing the repository cannot answer for them.
func TestEncodeKeepsCVEsWithoutReferences(t *testing.T) {
	osvDB := filepath.Join(sharedFixtures(t), "almalinux-osv", "almalinux9.jsonl.gz")
	advs, err := osv.ParseFile(osvDB, osv.Options{Ecosystem: "AlmaLinux:9"})
	if err != nil {
		t.Fatal(err)
	}
	var want *advisory.Advisory
	for i := range advs {
		if advs[i].ID == "ALSA-2023:3722" {
			want = &advs[i]
		}
	}
	if want == nil || len(want.CVEs) == 0 {
		t.Fatalf("ALSA-2023:3722 with its CVEs not in %s", osvDB)
	}
	var buf bytes.Buffer
	if err := Encode(&buf, []*advisory.Advisory{want}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAll(&buf)
	if err != nil || len(got) != 1 {
		t.Fatalf("read back %d advisories: %v", len(got), err)
	}
	if !slices.Equal(got[0].CVEs, want.CVEs) {
		t.Errorf("CVEs read back %v, want %v", got[0].CVEs, want.CVEs)
	}
	for _, r := range got[0].References {
		if r.Type == "cve" && r.URL != "https://www.cve.org/CVERecord?id="+r.ID {
			t.Errorf("reference %+v: want a link to the CVE record", r)
		}
	}
}
