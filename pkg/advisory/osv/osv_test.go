package osv

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// fixture returns a file of the shared AlmaLinux OSV database, found beside
// the module root (shared/ is a sibling of the checkout, in dev and in CI).
func fixture(t testing.TB, name string) string {
	t.Helper()
	return fixtures.Path(t, "almalinux-osv/"+name)
}

func samples(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/samples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in testdata/samples: %v", err)
	}
	return files
}

func parse(t *testing.T, path string, opts Options) []advisory.Advisory {
	t.Helper()
	list, err := ParseFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func find(list []advisory.Advisory, id, eco string) *advisory.Advisory {
	for i := range list {
		if list[i].ID == id && list[i].Ecosystem == eco {
			return &list[i]
		}
	}
	return nil
}

// TestDatabaseCounts reads each whole AlmaLinux release database, filtered
// to its own release: every advisory file of the release must come out, and
// only packages of that release.
func TestDatabaseCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file, ecosystem string
		want            int
	}{
		{"almalinux8.jsonl.gz", "AlmaLinux:8", 3237},
		{"almalinux9.jsonl.gz", "AlmaLinux:9", 1783},
		{"almalinux10.jsonl.gz", "AlmaLinux:10", 660},
	}
	for _, tt := range tests {
		t.Run(tt.ecosystem, func(t *testing.T) {
			list := parse(t, fixture(t, tt.file), Options{Ecosystem: tt.ecosystem})
			if len(list) != tt.want {
				t.Errorf("%d advisories, want %d", len(list), tt.want)
			}
			for _, a := range list {
				if a.Ecosystem != tt.ecosystem || len(a.Packages) == 0 || a.Type == "" || a.Issued.IsZero() {
					t.Fatalf("%s: ecosystem %q, %d packages, type %q, issued %v", a.ID, a.Ecosystem, len(a.Packages), a.Type, a.Issued)
				}
			}
		})
	}
}

// TestDatabaseMatchesReference reads every object of the three databases
// both with the Decoder and with the plain encoding/json reading, without a
// filter and with one, and wants the same advisories.
func TestDatabaseMatchesReference(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"almalinux8.jsonl.gz", "almalinux9.jsonl.gz", "almalinux10.jsonl.gz"} {
		data, err := os.ReadFile(fixture(t, name))
		if err != nil {
			t.Fatal(err)
		}
		options := []Options{{}}
		if name == "almalinux9.jsonl.gz" {
			options = append(options, Options{Ecosystem: "AlmaLinux:9"})
		}
		for _, opts := range options {
			t.Run(name+"/"+cmp.Or(opts.Ecosystem, "all"), func(t *testing.T) {
				want, err := referenceDecode(data, opts)
				if err != nil {
					t.Fatal(err)
				}
				got, err := decodeAll(bytes.NewReader(data), opts)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("%d advisories, reference %d", len(got), len(want))
				}
				for i := range got {
					if msg := diffAdvisory(&got[i], &want[i]); msg != "" {
						t.Fatalf("advisory %d (%s %s): %s", i, want[i].ID, want[i].Ecosystem, msg)
					}
				}
			})
		}
	}
}

func decodeAll(r io.Reader, opts Options) ([]advisory.Advisory, error) {
	d := NewDecoder(r, opts)
	defer d.Close()
	var out []advisory.Advisory
	for {
		a, err := d.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, *a)
	}
}

// diffAdvisory says how got differs from want, or "".
func diffAdvisory(got, want *advisory.Advisory) string {
	if !got.Issued.Equal(want.Issued) || !got.Updated.Equal(want.Updated) {
		return fmt.Sprintf("times %v %v, want %v %v", got.Issued, got.Updated, want.Issued, want.Updated)
	}
	g, w := *got, *want
	g.Issued, g.Updated = w.Issued, w.Updated
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("\n got %+v\nwant %+v", g, w)
	}
	return ""
}

// TestSamples checks the facts the rest of rpmfleet relies on, each on the
// real advisory that shows it.
func TestSamples(t *testing.T) {
	t.Parallel()
	t.Run("ALSA-2023:3722 openssl", func(t *testing.T) {
		list := parse(t, "testdata/samples/almalinux9_ALSA-2023_3722.json", Options{Ecosystem: "AlmaLinux:9"})
		a := find(list, "ALSA-2023:3722", "AlmaLinux:9")
		if a == nil || len(list) != 1 {
			t.Fatalf("got %d advisories, want ALSA-2023:3722 alone", len(list))
		}
		// The summary says "Moderate: openssl security and bug fix update".
		if a.Severity != advisory.Moderate || a.Type != advisory.Security || !a.HasCVE("CVE-2023-2650") {
			t.Errorf("severity %v, type %v, CVEs %v", a.Severity, a.Type, a.CVEs)
		}
		if a.Title != "Moderate: openssl security and bug fix update" {
			t.Errorf("title %q", a.Title)
		}
		if !slices.IsSorted(a.CVEs) || len(a.CVEs) != 5 {
			t.Errorf("CVEs %v, want the 5 of related, sorted", a.CVEs)
		}
		var libs *advisory.Package
		for i := range a.Packages {
			if a.Packages[i].Name == "openssl-libs" {
				libs = &a.Packages[i]
			}
		}
		if libs == nil || libs.EVR.String() != "1:3.0.7-16.el9_2" || libs.Arch != "" {
			t.Fatalf("openssl-libs: %+v", libs)
		}
		if got := a.Issued.Format("2006-01-02"); got != "2023-06-21" {
			t.Errorf("issued %s", got)
		}
		if len(a.References) != 12 || a.References[0].Type != "advisory" || a.References[1].Type != "report" {
			t.Errorf("references %+v", a.References)
		}
	})
	t.Run("ALSA-2024:0265 two ecosystems", func(t *testing.T) {
		path := "testdata/samples/almalinux9_ALSA-2024_0265.json"
		el8 := parse(t, path, Options{Ecosystem: "AlmaLinux:8"})
		el9 := parse(t, path, Options{Ecosystem: "AlmaLinux:9"})
		both := parse(t, path, Options{})
		if len(el8) != 1 || len(el9) != 1 || len(both) != 2 {
			t.Fatalf("advisories: %d for :8, %d for :9, %d unfiltered", len(el8), len(el9), len(both))
		}
		if reflect.DeepEqual(el8[0].Packages, el9[0].Packages) {
			t.Error("AlmaLinux:8 and :9 got the same packages")
		}
		for _, p := range el8[0].Packages {
			if !strings.Contains(p.Release, "el8") {
				t.Errorf("AlmaLinux:8 got %s-%s", p.Name, p.EVR)
			}
		}
		for _, p := range el9[0].Packages {
			if !strings.Contains(p.Release, "el9") {
				t.Errorf("AlmaLinux:9 got %s-%s", p.Name, p.EVR)
			}
		}
		if msg := diffAdvisory(find(both, "ALSA-2024:0265", "AlmaLinux:8"), &el8[0]); msg != "" {
			t.Errorf("unfiltered :8 differs from filtered: %s", msg)
		}
		if msg := diffAdvisory(find(both, "ALSA-2024:0265", "AlmaLinux:9"), &el9[0]); msg != "" {
			t.Errorf("unfiltered :9 differs from filtered: %s", msg)
		}
		if none := parse(t, path, Options{Ecosystem: "AlmaLinux:10"}); len(none) != 0 {
			t.Errorf("AlmaLinux:10 got %d advisories, want none", len(none))
		}
	})
	t.Run("ALSA-2026:A009 letter in id", func(t *testing.T) {
		list := parse(t, "testdata/samples/almalinux9_ALSA-2026_A009.json", Options{Ecosystem: "AlmaLinux:9"})
		if len(list) != 1 || list[0].ID != "ALSA-2026:A009" || list[0].Type != advisory.Security {
			t.Fatalf("got %+v", list)
		}
		names := map[string]bool{}
		for _, p := range list[0].Packages {
			names[p.Name] = true
		}
		if !names["kernel"] || !names["kernel-64k"] {
			t.Errorf("packages %v, want kernel and kernel-64k", names)
		}
	})
	t.Run("ALBA-2019:0973 one entry per module build", func(t *testing.T) {
		list := parse(t, "testdata/samples/almalinux8_ALBA-2019_0973.json", Options{Ecosystem: "AlmaLinux:8"})
		if len(list) != 1 || list[0].Type != advisory.Bugfix || list[0].Severity != advisory.SeverityNone {
			t.Fatalf("got %+v", list)
		}
		var releases []string
		for _, p := range list[0].Packages {
			if p.Name == "oci-systemd-hook" {
				releases = append(releases, p.EVR.String())
			}
		}
		want := []string{
			"1:0.1.15-2.git2d0b8a3.module_el8.5.0+119+9a9ec082",
			"1:0.1.15-2.git2d0b8a3.module_el8.4.0+2496+12421f43",
			"1:0.1.15-2.git2d0b8a3.module_el8.3.0+2044+12421f43",
		}
		if !slices.Equal(releases, want) {
			t.Errorf("oci-systemd-hook %v, want %v", releases, want)
		}
	})
}

// summary writes an advisory compactly, one line for the advisory and one
// per package, for the golden file.
func summary(w io.Writer, a *advisory.Advisory) {
	fmt.Fprintf(w, "%s %s type=%s severity=%s issued=%s updated=%s refs=%d cves=%s\n  title=%q\n",
		a.ID, a.Ecosystem, a.Type, a.Severity, a.Issued.Format("2006-01-02T15:04:05Z07:00"),
		a.Updated.Format("2006-01-02T15:04:05Z07:00"), len(a.References), strings.Join(a.CVEs, ","), a.Title)
	for _, p := range a.Packages {
		fmt.Fprintf(w, "  %s %s arch=%q\n", p.Name, p.EVR, p.Arch)
	}
}

// TestGolden writes every sample, unfiltered, as testdata/samples.golden
// holds it. Run with -update to rewrite it, then read the diff.
func TestGolden(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	for _, f := range samples(t) {
		fmt.Fprintf(&b, "# %s\n", filepath.Base(f))
		for _, a := range parse(t, f, Options{}) {
			summary(&b, &a)
		}
	}
	golden := "testdata/samples.golden"
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("output differs from %s (run go test -update and read the diff):\n%s", golden, b.String())
	}
}

// allSamples parses each sample file on its own: what folder, JSON-lines and
// compressed inputs must reproduce.
func allSamples(t *testing.T, opts Options) []advisory.Advisory {
	var out []advisory.Advisory
	for _, f := range samples(t) {
		out = append(out, parse(t, f, opts)...)
	}
	return out
}

func sameList(t *testing.T, got, want []advisory.Advisory) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d advisories, want %d", len(got), len(want))
	}
	for i := range got {
		if msg := diffAdvisory(&got[i], &want[i]); msg != "" {
			t.Fatalf("advisory %d (%s): %s", i, want[i].ID, msg)
		}
	}
}

// jsonLines compacts each sample onto one line, as the database files are.
func jsonLines(t *testing.T) []byte {
	var b bytes.Buffer
	for _, f := range samples(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Compact(&b, data); err != nil {
			t.Fatal(err)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func gzipped(t *testing.T, data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func write(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFormats reads the samples as a folder of files, as JSON lines, and
// compressed, each under a name that does not tell the format, and wants
// the same advisories as from the sample files one by one.
func TestFormats(t *testing.T) {
	t.Parallel()
	for _, opts := range []Options{{}, {Ecosystem: "AlmaLinux:8"}} {
		filter := cmp.Or(opts.Ecosystem, "all")
		want := allSamples(t, opts)
		lines := jsonLines(t)
		zst, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			data []byte
		}{
			{"json-lines", lines},
			{"gzip", gzipped(t, lines)},
			{"zstd", zst.EncodeAll(lines, nil)},
			{"concatenated-pretty", func() []byte { // the sample files back to back, unchanged
				var b bytes.Buffer
				for _, f := range samples(t) {
					data, _ := os.ReadFile(f)
					b.Write(data)
				}
				return b.Bytes()
			}()},
		}
		for _, tt := range tests {
			t.Run(tt.name+"/"+filter, func(t *testing.T) {
				path := write(t, filepath.Join(t.TempDir(), "advisories.dat"), tt.data)
				sameList(t, parse(t, path, opts), want)
			})
		}
		t.Run("folder/"+filter, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range samples(t) {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				base := filepath.Base(f)
				// almalinux8_* under almalinux8/, almalinux9_* under almalinux9/,
				// the kernel one gzip-compressed, as the database lays them out.
				sub, _, _ := strings.Cut(base, "_")
				if strings.Contains(base, "A009") {
					data, base = gzipped(t, data), base+".gz"
				}
				write(t, filepath.Join(dir, sub, base), data)
			}
			// A copy of the two-ecosystem advisory in the other release's
			// folder, as the real database has, must not count twice.
			src, _ := os.ReadFile("testdata/samples/almalinux9_ALSA-2024_0265.json")
			write(t, filepath.Join(dir, "almalinux8", "almalinux8_ALSA-2024_0265.json"), src)
			write(t, filepath.Join(dir, "README.md"), []byte("not an advisory"))
			got := parse(t, dir, opts)
			// The copy sorts first in the folder walk; order the expected list
			// the same way (by folder, then name), and compare as sets of ids.
			key := func(a advisory.Advisory) string { return a.ID + " " + a.Ecosystem }
			slices.SortFunc(got, func(a, b advisory.Advisory) int { return strings.Compare(key(a), key(b)) })
			w := slices.Clone(want)
			slices.SortFunc(w, func(a, b advisory.Advisory) int { return strings.Compare(key(a), key(b)) })
			sameList(t, got, w)
		})
	}
}

// TestDecoderBuffering reads input that arrives one byte per Read, and
// objects larger than the decoder's first buffer, so that parsing runs out
// of buffered input mid-object and must read more and start again.
func TestDecoderBuffering(t *testing.T) {
	t.Parallel()
	lines := jsonLines(t)
	want, err := decodeAll(bytes.NewReader(lines), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("one byte per read", func(t *testing.T) {
		got, err := decodeAll(iotest.OneByteReader(bytes.NewReader(lines)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		sameList(t, got, want)
	})
	t.Run("objects larger than the buffer", func(t *testing.T) {
		// Each sample with 1 MiB of details, on its own line, and one
		// error at the very end, which must still be placed on its line.
		var b bytes.Buffer
		big := strings.Repeat("details \\u00e9 text ", 1<<20/20)
		for _, line := range bytes.SplitAfter(bytes.TrimSpace(lines), []byte("\n")) {
			b.WriteString(`{"details":"` + big + `",`)
			b.Write(line[1:])
		}
		n := bytes.Count(b.Bytes(), []byte("\n"))
		b.WriteString("\n{\"details\":\"" + big + "\",\"id\":7}\n")
		got, err := decodeAll(bytes.NewReader(b.Bytes()), Options{})
		sameList(t, got, want)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("line %d: id: want string, got number", n+2)) {
			t.Errorf("error %v, want one on line %d", err, n+2)
		}
	})
}

// TestDuplicates lists packages several times over, in short and long
// lists: only exact duplicates go, the first of each stays in place.
func TestDuplicates(t *testing.T) {
	t.Parallel()
	for _, n := range []int{12, 200} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			names, versions := 7, 5
			if n < 64 {
				names, versions = 2, 2
			}
			var b strings.Builder
			b.WriteString(`{"id":"ALSA-2099:0004","affected":[`)
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				// Names and versions repeat, so entries do too, but
				// "0:1-1" and "1-1" are not exact duplicates.
				fixed := fmt.Sprintf("%d-1", i%versions)
				if i%3 == 0 {
					fixed = "0:" + fixed
				}
				fmt.Fprintf(&b, `{"package":{"ecosystem":"AlmaLinux:9","name":"p%d"},"ranges":[{"type":"ECOSYSTEM","events":[{"fixed":%q}]}]}`, i%names, fixed)
			}
			b.WriteString("]}")
			want, err := referenceDecode([]byte(b.String()), Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeAll(strings.NewReader(b.String()), Options{})
			if err != nil {
				t.Fatal(err)
			}
			sameList(t, got, want)
			if len(want[0].Packages) >= n {
				t.Errorf("%d packages from %d entries: the test has no duplicates to drop", len(want[0].Packages), n)
			}
		})
	}
}

// TestDecoderClose stops reading a compressed stream early: Close must stop
// the decompressing goroutine and later calls must fail, not hang.
func TestDecoderClose(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(fixture(t, "almalinux9.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(bytes.NewReader(data), Options{Ecosystem: "AlmaLinux:9"})
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- d.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if a, err := d.Next(); err == nil || err == io.EOF {
		t.Fatalf("Next after Close: %v, %v", a, err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestDecoderStreams reads JSON lines through a Decoder from a reader, with
// no file name involved, and counts entries naming no fix.
func TestDecoderStreams(t *testing.T) {
	t.Parallel()
	input := `{"id":"ALSA-2099:0001","summary":"Low: x","affected":[
	  {"package":{"ecosystem":"AlmaLinux:9","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.0-1.el9"},{"fixed":"1.2-1.el9"}]}]},
	  {"package":{"ecosystem":"AlmaLinux:9","name":"b"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"last_affected":"2.0-1.el9"}]}]},
	  {"package":{"ecosystem":"AlmaLinux:9","name":"c"},"ranges":[{"type":"GIT","repo":"https://git.example","events":[{"introduced":"0"},{"fixed":"abc123"}]}]},
	  {"package":{"ecosystem":"AlmaLinux:9","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2-1.el9"}]}]}
	],"aliases":["CVE-2099-2","GHSA-xxxx"],"related":["CVE-2099-1","CVE-2099-2"]}
{"id":"ALSA-2099:0002","affected":[{"package":{"ecosystem":"AlmaLinux:9","name":"b"}}]}
`
	d := NewDecoder(strings.NewReader(input), Options{})
	a, err := d.Next()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	summary(&b, a)
	want := `ALSA-2099:0001 AlmaLinux:9 type=security severity=Low issued=0001-01-01T00:00:00Z updated=0001-01-01T00:00:00Z refs=0 cves=CVE-2099-1,CVE-2099-2
  title="Low: x"
  a 0:1.2-1.el9 arch=""
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("second object (no fix named) gave %v, want io.EOF", err)
	}
	if d.Skipped() != 3 {
		t.Errorf("skipped %d entries, want 3 (last_affected only, GIT range, no ranges)", d.Skipped())
	}
}

// TestErrors feeds broken input and wants an *Error that names the file,
// the place and what was wrong, and never a short list without one.
func TestErrors(t *testing.T) {
	t.Parallel()
	good, err := os.ReadFile("testdata/samples/almalinux9_ALSA-2023_3722.json")
	if err != nil {
		t.Fatal(err)
	}
	lines := jsonLines(t)
	gz := gzipped(t, lines)
	pretty := `{
  "id": "ALSA-2099:0003",
  "affected": [
    {"package": {"ecosystem": "AlmaLinux:9", "name": "x"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": }]}]}
  ]
}
`
	tests := []struct {
		name  string
		data  []byte
		is    error    // errors.Is target, if any
		parts []string // substrings of the message, after the file name
	}{
		{"truncated gzip", gz[:len(gz)*2/3], compressed.ErrTruncated, []string{"line ", "stream truncated"}},
		{"gzip with a corrupt body", append(append([]byte{}, gz[:100]...), bytes.Repeat([]byte{0xff}, 500)...), nil, []string{"gzip"}},
		{"malformed JSON on line 3", append(append([]byte{}, lines[:bytes.Index(lines, []byte("\n{\"id\":\"ALSA-2023:1405\""))+1]...), []byte("\n{\"id\": \"x\", \"affected\": [}\n")...),
			nil, []string{"line 3, column 26: invalid character '}', want value"}},
		{"malformed JSON in a pretty file", []byte(pretty), nil, []string{"line 5, column 81: invalid character '}', want value"}},
		{"wrong type for id", []byte("{\"id\":\"A\"}\n{\"id\": 5}\n"), nil, []string{"line 2: id: want string, got number"}},
		{"wrong type for affected", []byte(`{"id":"ALSA-1:1","affected":{"package":{}}}`), nil, []string{"line 1: affected: want array, got object"}},
		{"wrong type for a name", []byte(`{"id":"ALSA-1:1","affected":[{"package":{"ecosystem":"AlmaLinux:9","name":"a"}},{"package":{"name":["x"]}}]}`), nil, []string{"affected[1].package.name: want string, got array"}},
		{"bad fixed version", []byte("{\"id\":\"ALSA-1:1\",\n\"affected\":[{\"package\":{\"ecosystem\":\"AlmaLinux:9\",\"name\":\"x\"},\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"\"}]}]}]}"),
			nil, []string{`line 2: affected[0].ranges[0].events[1].fixed: bad version: parse EVR "": rpmver: empty version`}},
		{"missing ecosystem", []byte(`{"id":"ALSA-1:1","affected":[{"package":{"name":"x"}}]}`), nil, []string{"affected[0].package.ecosystem: missing"}},
		{"missing id", []byte(`{"summary":"Low: x"}`), nil, []string{"line 1: id: missing"}},
		{"bad time", []byte(`{"id":"ALSA-1:1","published":"21 June 2023"}`), nil, []string{`published: bad time "21 June 2023"`}},
		{"not JSON at all", []byte("<?xml version=\"1.0\"?><updates/>"), ErrNotJSON, []string{"line 1, column 1: unknown format, not OSV JSON"}},
		{"a JSON array", []byte(`[` + string(good) + `]`), ErrNotJSON, nil},
		{"garbage after an object", append(append([]byte{}, good...), "\nnull\n"...), ErrNotJSON, []string{"line 143, column 1"}},
		{"truncated object", good[:len(good)-20], nil, []string{"unexpected end of JSON input"}},
		{"empty file", nil, nil, []string{"no OSV object in file"}},
		{"control character in a string", []byte("{\"id\":\"AL\tSA\"}"), nil, []string{"line 1, column 10: invalid control character"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := write(t, filepath.Join(t.TempDir(), "input.bin"), tt.data)
			list, err := ParseFile(path, Options{})
			if err == nil {
				t.Fatalf("no error, %d advisories", len(list))
			}
			if list != nil {
				t.Errorf("got %d advisories with the error", len(list))
			}
			var e *Error
			if !errors.As(err, &e) || e.File != path {
				t.Errorf("error %q (%T) does not name the file", err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "osv: "+path+": ") {
				t.Errorf("message %q does not start with osv: and the file", msg)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", msg, tt.is)
			}
			for _, p := range tt.parts {
				if !strings.Contains(msg, p) {
					t.Errorf("message %q lacks %q", msg, p)
				}
			}
		})
	}
}

// endless reads as an unending run of one byte.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

// TestObjectTooLarge feeds an object that never ends: the decoder must stop
// at MaxObjectSize with an error, not read (and hold) without bound.
func TestObjectTooLarge(t *testing.T) {
	t.Parallel()
	r := io.MultiReader(strings.NewReader(`{"id":"ALSA-1:1","details":"`), endless('a'))
	d := NewDecoder(r, Options{})
	_, err := d.Next()
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "line 1: object too large") {
		t.Fatalf("error %v, want ErrTooLarge on line 1", err)
	}
}

func TestFolderErrors(t *testing.T) {
	t.Parallel()
	t.Run("no OSV files", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "README.md"), []byte("x"))
		if _, err := ParseFile(dir, Options{}); err == nil || !strings.Contains(err.Error(), "no OSV files") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("one bad file", func(t *testing.T) {
		dir := t.TempDir()
		good, _ := os.ReadFile("testdata/samples/almalinux9_ALSA-2023_3722.json")
		write(t, filepath.Join(dir, "a.json"), good)
		bad := write(t, filepath.Join(dir, "b.json"), []byte(`{"id":`))
		_, err := ParseFile(dir, Options{})
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("error %v does not name %s", err, bad)
		}
	})
	t.Run("missing path", func(t *testing.T) {
		if _, err := ParseFile(filepath.Join(t.TempDir(), "nope.json"), Options{}); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error %v", err)
		}
	})
}

// BenchmarkDatabase9 parses the whole AlmaLinux 9 database as check does:
// gzip-compressed JSON lines, filtered to AlmaLinux:9.
func BenchmarkDatabase9(b *testing.B) {
	data, err := os.ReadFile(fixture(b, "almalinux9.jsonl.gz"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			list, err := decodeAll(bytes.NewReader(data), Options{Ecosystem: "AlmaLinux:9"})
			if err != nil || len(list) != 1783 {
				b.Fatal(len(list), err)
			}
		}
	})
	// The same without gzip: the parser's own share.
	plain, err := io.ReadAll(must(compressed.NewReader(bytes.NewReader(data))))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("parse-uncompressed", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			list, err := decodeAll(bytes.NewReader(plain), Options{Ecosystem: "AlmaLinux:9"})
			if err != nil || len(list) != 1783 {
				b.Fatal(len(list), err)
			}
		}
	})
	// The floor: decompressing the same file and nothing else.
	b.Run("gunzip-only", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			r, _, err := compressed.NewReader(bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
			r.Close()
		}
	})
}

func must(r io.ReadCloser, _ compressed.Format, err error) io.Reader {
	if err != nil {
		panic(err)
	}
	return r
}

// reportCPU adds the process's CPU time per op (user + system, GC
// included) to a benchmark's output: on a machine shared with other jobs
// that is steadier than ns/op, which counts time spent waiting for a core.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkEncodingJSON is the yardstick: encoding/json decoding the same
// uncompressed lines into the smallest structs that hold what Decoder reads.
func BenchmarkEncodingJSON(b *testing.B) {
	data, err := os.ReadFile(fixture(b, "almalinux9.jsonl.gz"))
	if err != nil {
		b.Fatal(err)
	}
	plain, err := io.ReadAll(must(compressed.NewReader(bytes.NewReader(data))))
	if err != nil {
		b.Fatal(err)
	}
	type osvObject struct {
		ID, Summary, Published, Modified string
		Related, Aliases                 []string
		References                       []struct{ Type, URL string }
		Affected                         []struct {
			Package struct{ Ecosystem, Name string }
			Ranges  []struct {
				Type   string
				Events []struct{ Introduced, Fixed string }
			}
		}
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		dec := json.NewDecoder(bytes.NewReader(plain))
		n := 0
		for {
			var o osvObject
			if err := dec.Decode(&o); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1783 {
			b.Fatal(n)
		}
	}
}
