package rpmver

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// row is one line of a fixture TSV: its fields and where it came from.
type row struct {
	line   int
	fields []string
}

// readTSV reads testdata/name, skipping '#' comment lines, and checks that
// every row has at least minFields tab-separated fields.
func readTSV(t testing.TB, name string, minFields int) []row {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []row
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, "\t")
		if len(fields) < minFields {
			t.Fatalf("%s:%d: %d fields, want at least %d", name, n, len(fields), minFields)
		}
		rows = append(rows, row{line: n, fields: fields})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no rows", name)
	}
	return rows
}

// verdict parses an expected result column.
func verdict(t testing.TB, file string, r row, col int) int {
	t.Helper()
	v, err := strconv.Atoi(r.fields[col])
	if err != nil || v < -1 || v > 1 {
		t.Fatalf("%s:%d: column %d: verdict %q is not -1, 0 or 1", file, r.line, col+1, r.fields[col])
	}
	return v
}

// compareEVRStrings parses both sides as rpm.vercmp does and compares them.
func compareEVRStrings(t testing.TB, a, b string) (int, error) {
	t.Helper()
	ea, err := ParseEVR(a)
	if err != nil {
		return 0, err
	}
	eb, err := ParseEVR(b)
	if err != nil {
		return 0, err
	}
	return Compare(ea, eb), nil
}

// TestFixtures holds rpmver to every shared vector. rpm's own test suite and
// its commented-out oddities run rpm.vercmp on strings without '-' or ':', so
// Vercmp and Compare must both give rpm's verdict; the other files say in
// SOURCE.md at which level their verdicts were taken.
func TestFixtures(t *testing.T) {
	t.Parallel()
	t.Run("rpmvercmp.at", func(t *testing.T) {
		const file = "rpmvercmp.tsv"
		rows := readTSV(t, file, 3)
		if len(rows) != 91 {
			t.Errorf("%s: %d rows, want the 91 active RPMVERCMP lines", file, len(rows))
		}
		for _, r := range rows {
			a, b, want := r.fields[0], r.fields[1], verdict(t, file, r, 2)
			if got := Vercmp(a, b); got != want {
				t.Errorf("%s:%d: Vercmp(%q, %q) = %d, want %d", file, r.line, a, b, got, want)
			}
			got, err := compareEVRStrings(t, a, b)
			if err != nil || got != want {
				t.Errorf("%s:%d: Compare(%q, %q) = %d, %v, want %d", file, r.line, a, b, got, err, want)
			}
		}
	})
	t.Run("oddities", func(t *testing.T) {
		const file = "rpmvercmp-commented-oddities.tsv"
		for _, r := range readTSV(t, file, 4) {
			a, b, want := r.fields[0], r.fields[1], verdict(t, file, r, 3)
			if got := Vercmp(a, b); got != want {
				t.Errorf("%s:%d: Vercmp(%q, %q) = %d, want rpm 4.18's %d", file, r.line, a, b, got, want)
			}
			got, err := compareEVRStrings(t, a, b)
			if err != nil || got != want {
				t.Errorf("%s:%d: Compare(%q, %q) = %d, %v, want %d", file, r.line, a, b, got, err, want)
			}
		}
	})
	t.Run("evr-vectors-extra", func(t *testing.T) {
		const file = "evr-vectors-extra.tsv"
		for _, r := range readTSV(t, file, 4) {
			a, b := r.fields[0], r.fields[1]
			got, err := compareEVRStrings(t, a, b)
			if strings.HasPrefix(r.fields[3], "ERROR") {
				// rpm refuses the empty string as a version.
				if !errors.Is(err, ErrEmptyVersion) {
					t.Errorf("%s:%d: Compare(%q, %q) = %d, %v, want ErrEmptyVersion as rpm refuses it", file, r.line, a, b, got, err)
				}
				continue
			}
			want := verdict(t, file, r, 3)
			if err != nil || got != want {
				t.Errorf("%s:%d: Compare(%q, %q) = %d, %v, want rpm 4.18's %d", file, r.line, a, b, got, err, want)
			}
		}
	})
	t.Run("cavaliergopher", func(t *testing.T) {
		// Release-string semantics (labelCompare on the release field), so
		// '-' is a plain separator here: Vercmp, not ParseEVR.
		const file = "cavaliergopher-vercmp.tsv"
		rows := readTSV(t, file, 3)
		if len(rows) != 67*67 {
			t.Errorf("%s: %d rows, want 67×67", file, len(rows))
		}
		for _, r := range rows {
			a, b, want := r.fields[0], r.fields[1], verdict(t, file, r, 2)
			if got := Vercmp(a, b); got != want {
				t.Errorf("%s:%d: Vercmp(%q, %q) = %d, want %d", file, r.line, a, b, got, want)
			}
		}
	})
	t.Run("almalinux-osv", func(t *testing.T) {
		const file = "almalinux-osv-evr-pairs.tsv"
		rows := readTSV(t, file, 5)
		if len(rows) != 1306 {
			t.Errorf("%s: %d rows, want 1306", file, len(rows))
		}
		older := 0
		for _, r := range rows {
			a, b, want := r.fields[2], r.fields[3], verdict(t, file, r, 4)
			got, err := compareEVRStrings(t, a, b)
			if err != nil || got != want {
				t.Errorf("%s:%d: %s: Compare(%q, %q) = %d, %v, want rpm 4.18's %d", file, r.line, r.fields[1], a, b, got, err, want)
			}
			if got == 1 {
				older++
			}
		}
		// SOURCE.md: 158 pairs where the newer advisory fixes a lower EVR.
		if older != 158 {
			t.Errorf("%s: %d pairs with a lower EVR in the newer advisory, want 158", file, older)
		}
	})
}

func TestParseEVR(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    EVR
		release bool
		err     error
	}{
		{name: "full", in: "1:3.0.7-16.el9_2", want: EVR{Epoch: "1", Version: "3.0.7", Release: "16.el9_2"}, release: true},
		{name: "no epoch", in: "3.0.7-16.el9_2", want: EVR{Version: "3.0.7", Release: "16.el9_2"}, release: true},
		{name: "version only", in: "2.0", want: EVR{Version: "2.0"}},
		{name: "epoch and version", in: "4:1.0", want: EVR{Epoch: "4", Version: "1.0"}},
		{name: "empty epoch is 0", in: ":1.0", want: EVR{Epoch: "0", Version: "1.0"}},
		{name: "epoch zeros kept", in: "007:1.0", want: EVR{Epoch: "007", Version: "1.0"}},
		{name: "release after the last dash", in: "1-2-3-4", want: EVR{Version: "1-2-3", Release: "4"}, release: true},
		{name: "letters before colon are version", in: "a1:2-3", want: EVR{Version: "a1:2", Release: "3"}, release: true},
		{name: "second colon stays in version", in: "1:2:3", want: EVR{Epoch: "1", Version: "2:3"}},
		{name: "empty release is a release", in: "1.0-", want: EVR{Version: "1.0", emptyRelease: true}, release: true},
		{name: "empty version after epoch", in: "1:", want: EVR{Epoch: "1"}},
		{name: "empty version before release", in: "-1", want: EVR{Release: "1"}, release: true},
		{name: "only a dash", in: "-", want: EVR{emptyRelease: true}, release: true},
		{name: "tilde and caret", in: "1.0~rc1^git2-0.1", want: EVR{Version: "1.0~rc1^git2", Release: "0.1"}, release: true},
		{name: "non-ASCII kept", in: "1.1.α-β", want: EVR{Version: "1.1.α", Release: "β"}, release: true},
		{name: "empty", in: "", err: ErrEmptyVersion},
		{name: "NUL", in: "1.0\x00-1", err: ErrNUL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEVR(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseEVR(%q) = %#v, %v; want error %v", tt.in, got, err, tt.err)
				}
				if !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
					t.Errorf("error %q does not name the input", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseEVR(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			}
			if got.HasRelease() != tt.release {
				t.Errorf("ParseEVR(%q).HasRelease() = %v, want %v", tt.in, got.HasRelease(), tt.release)
			}
			// String writes what ParseEVR reads back.
			back, err := ParseEVR(got.String())
			if err != nil || Compare(back, got) != 0 || back.HasRelease() != got.HasRelease() {
				t.Errorf("ParseEVR(%q) = %#v, %v; want an EVR equal to %#v", got.String(), back, err, got)
			}
		})
	}
}

func TestMustParseEVRPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("MustParseEVR(\"\") did not panic")
		}
	}()
	MustParseEVR("")
}

func TestEVRString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		evr  EVR
		want string
	}{
		{name: "epoch 0 written out", evr: EVR{Version: "3.0.1", Release: "23.el9_0"}, want: "0:3.0.1-23.el9_0"},
		{name: "epoch", evr: EVR{Epoch: "1", Version: "3.0.7", Release: "16.el9_2"}, want: "1:3.0.7-16.el9_2"},
		{name: "no release", evr: EVR{Epoch: "2", Version: "1.0"}, want: "2:1.0"},
		{name: "empty release from ParseEVR", evr: MustParseEVR("1.0-"), want: "0:1.0-"},
		{name: "empty version", evr: MustParseEVR("3:"), want: "3:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.evr.String(); got != tt.want {
				t.Errorf("%#v.String() = %q, want %q", tt.evr, got, tt.want)
			}
		})
	}
}

// TestCompareRelease pins the release rules of rpmverCmp, which differ from
// rpm's dependency matching: no release sorts before any release, even an
// empty one or a tilde. The differential test checks the same strings
// against the real rpm.
func TestCompareRelease(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0-1", -1},
		{"1.0-1", "1.0", 1},
		{"1.0", "1.0-", -1},
		{"1.0-", "1.0-0", -1},
		{"1.0-~", "1.0", 1},
		{"1.0-~", "1.0-", -1},
		{"1.0-^", "1.0-", 1},
		{"1:1.0", "1:1.0-0", -1},
		{"0:1.0-1", "1.0-1", 0},
		{":1", "0:1", 0},
		{"1:", "1:0", -1},
		{"-1", "0-1", -1},
		{"1.0", "1.0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.a+" vs "+tt.b, func(t *testing.T) {
			got, err := compareEVRStrings(t, tt.a, tt.b)
			if err != nil || got != tt.want {
				t.Errorf("Compare(%q, %q) = %d, %v, want %d", tt.a, tt.b, got, err, tt.want)
			}
		})
	}
	// A literal EVR with Release "" has no release, whatever ParseEVR does.
	if got := Compare(EVR{Version: "1.0"}, MustParseEVR("1.0-")); got != -1 {
		t.Errorf("Compare(literal 1.0, parsed 1.0-) = %d, want -1", got)
	}
}
