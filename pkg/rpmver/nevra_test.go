package rpmver

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
)

func TestParseNEVRA(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    NEVRA
		wantErr string // a piece of the error's text
	}{
		{name: "nevra with epoch", in: "openssl-libs-1:3.0.7-16.el9_2.aarch64",
			want: NEVRA{Name: "openssl-libs", EVR: EVR{Epoch: "1", Version: "3.0.7", Release: "16.el9_2"}, Arch: "aarch64"}},
		{name: "nvra", in: "bash-5.1.8-6.el9_1.x86_64",
			want: NEVRA{Name: "bash", EVR: EVR{Version: "5.1.8", Release: "6.el9_1"}, Arch: "x86_64"}},
		{name: "file name", in: "bash-5.1.8-6.el9_1.x86_64.rpm",
			want: NEVRA{Name: "bash", EVR: EVR{Version: "5.1.8", Release: "6.el9_1"}, Arch: "x86_64"}},
		{name: "source rpm", in: "openssl-3.0.1-23.el9_0.src.rpm",
			want: NEVRA{Name: "openssl", EVR: EVR{Version: "3.0.1", Release: "23.el9_0"}, Arch: "src"}},
		{name: "epoch 0 kept", in: "gcc-0:11.2.1-9.4.el9.src",
			want: NEVRA{Name: "gcc", EVR: EVR{Epoch: "0", Version: "11.2.1", Release: "9.4.el9"}, Arch: "src"}},
		{name: "dots and dashes in name", in: "python3.11-pip-wheel-22.3.1-4.el9.noarch",
			want: NEVRA{Name: "python3.11-pip-wheel", EVR: EVR{Version: "22.3.1", Release: "4.el9"}, Arch: "noarch"}},
		{name: "tilde and caret", in: "foo-1.0~rc1^git2-0.1.fc40.armv7hl",
			want: NEVRA{Name: "foo", EVR: EVR{Version: "1.0~rc1^git2", Release: "0.1.fc40"}, Arch: "armv7hl"}},
		{name: "module release", in: "nodejs-1:18.20.2-1.module_el8.9.0+3780+62ce6a5c.aarch64",
			want: NEVRA{Name: "nodejs", EVR: EVR{Epoch: "1", Version: "18.20.2", Release: "1.module_el8.9.0+3780+62ce6a5c"}, Arch: "aarch64"}},

		{name: "empty", in: "", wantErr: "no '.arch'"},
		{name: "no arch", in: "bash-5.1.8-6", wantErr: "arch"},
		{name: "file name without arch", in: "bash-5-6.rpm", wantErr: "no '.arch'"},
		{name: "file name without arch, dotted version", in: "bash-5.1.8-6.rpm", wantErr: `arch "8-6"`},
		{name: "arch rpm", in: "bash-5.1.8-6.x.rpm.rpm", wantErr: "no arch before '.rpm'"},
		{name: "empty arch", in: "bash-5.1.8-6.", wantErr: "empty arch"},
		{name: "renamed file", in: "hello-2.0-1.x86_64-signed.rpm", wantErr: `arch "x86_64-signed"`},
		{name: "no release", in: "bash.x86_64", wantErr: "no '-release'"},
		{name: "empty release", in: "bash-5.1-.x86_64", wantErr: "empty release"},
		{name: "no version", in: "bash-6.x86_64", wantErr: "no '-version'"},
		{name: "empty version", in: "bash--6.x86_64", wantErr: "empty version"},
		{name: "empty version after epoch", in: "bash-1:-6.x86_64", wantErr: "empty version"},
		{name: "empty name", in: "-5.1-6.x86_64", wantErr: "empty name"},
		{name: "epoch before name", in: "1:bash-5.1-6.x86_64", wantErr: `name "1:bash" holds ':'`},
		{name: "empty epoch", in: "bash-:5.1-6.x86_64", wantErr: "empty epoch"},
		{name: "letters in epoch", in: "bash-x:5.1-6.x86_64", wantErr: `epoch "x"`},
		{name: "second colon", in: "bash-1:2:5.1-6.x86_64", wantErr: `version "2:5.1" holds ':'`},
		{name: "colon in release", in: "bash-5.1-6:1.x86_64", wantErr: `release "6:1" holds ':'`},
		{name: "a path", in: "Packages/b/bash-5.1-6.x86_64.rpm", wantErr: "byte '/' at offset 8"},
		{name: "a space", in: "bash-5.1-6.x86_64 ", wantErr: "byte ' ' at offset 17"},
		{name: "NUL", in: "bash-5.1\x00-6.x86_64", wantErr: `byte '\x00' at offset 8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNEVRA(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNEVRA) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
					t.Fatalf("ParseNEVRA(%q) = %#v, %v; want ErrNEVRA naming the input and %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseNEVRA(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			}
			back, err := ParseNEVRA(got.String())
			if err != nil || back.String() != got.String() || Compare(back.EVR, got.EVR) != 0 {
				t.Errorf("ParseNEVRA(%q) = %#v, %v; want it back", got.String(), back, err)
			}
		})
	}
}

func TestNEVRAString(t *testing.T) {
	t.Parallel()
	n := mustNEVRA(t, "openssl-libs-3.0.1-23.el9_0.aarch64")
	if got, want := n.String(), "openssl-libs-0:3.0.1-23.el9_0.aarch64"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := n.Filename(), "openssl-libs-3.0.1-23.el9_0.aarch64.rpm"; got != want {
		t.Errorf("Filename() = %q, want %q", got, want)
	}
	n.Epoch = "1"
	if got, want := n.String(), "openssl-libs-1:3.0.1-23.el9_0.aarch64"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := n.Filename(), "openssl-libs-3.0.1-23.el9_0.aarch64.rpm"; got != want {
		t.Errorf("Filename() with an epoch = %q, want %q (file names carry no epoch)", got, want)
	}
}

func mustNEVRA(t *testing.T, s string) NEVRA {
	t.Helper()
	n, err := ParseNEVRA(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestParseNEVRAManifests reads every package of two real RHEL aarch64
// images: the nvra column must split into the name, version, release and
// arch columns, and the source rpm's NEVRA must parse too.
func TestParseNEVRAManifests(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"ubi8_ubi-aarch64-rpm-manifest.tsv", "ubi9_ubi-aarch64-rpm-manifest.tsv"} {
		t.Run(file, func(t *testing.T) {
			rows := readTSV(t, file, 6)
			for _, r := range rows[1:] { // the first row is the header
				f := r.fields
				want := NEVRA{Name: f[0], EVR: EVR{Version: f[1], Release: f[2]}, Arch: f[3]}
				if got, err := ParseNEVRA(f[4]); err != nil || got != want {
					t.Errorf("%s:%d: ParseNEVRA(%q) = %#v, %v; want %#v", file, r.line, f[4], got, err, want)
				}
				src, err := ParseNEVRA(f[5])
				if err != nil || src.Arch != "src" || src.Epoch == "" {
					t.Errorf("%s:%d: ParseNEVRA(%q) = %#v, %v; want a source NEVRA with an epoch", file, r.line, f[5], src, err)
				}
			}
			if len(rows) < 170 {
				t.Errorf("%s: %d packages, want the whole image", file, len(rows)-1)
			}
		})
	}
}

// sharedFixtures returns the fixture folder, testdata/ at the module root.
func sharedFixtures(t *testing.T) string {
	t.Helper()
	return fixtures.Path(t, ".")
}

// TestParseNEVRARealPackages holds ParseNEVRA to what the real rpm reads
// from the headers of real package files: rpm's %{NEVRA} and source rpm
// name must parse to the header's fields, and a file named by rpm's
// convention must parse to them too and be what Filename writes. Files
// renamed after the arch ("-signed.rpm") must be refused, not misread.
func TestParseNEVRARealPackages(t *testing.T) {
	t.Parallel()
	rpm, err := exec.LookPath("rpm")
	if err != nil {
		t.Fatalf("%v; run make deps", err)
	}
	files, err := filepath.Glob(filepath.Join(sharedFixtures(t), "rpm-packages", "*", "*.rpm"))
	if err != nil || len(files) < 10 {
		t.Fatalf("rpm-packages fixtures: %d files, %v", len(files), err)
	}
	args := append([]string{"-qp", "--nosignature", "--nodigest",
		"--qf", `%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{NEVRA}\t%{SOURCERPM}\n`}, files...)
	out, err := exec.Command(rpm, args...).Output()
	if err != nil {
		t.Fatalf("rpm -qp: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(files) {
		t.Fatalf("rpm -qp gave %d lines for %d files", len(lines), len(files))
	}
	epochs := 0
	for i, line := range lines {
		base := filepath.Base(files[i])
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			t.Fatalf("%s: rpm -qp line %q", base, line)
		}
		epoch := f[1]
		if epoch == "(none)" {
			epoch = ""
		} else {
			epochs++
		}
		header := NEVRA{Name: f[0], EVR: EVR{Epoch: epoch, Version: f[2], Release: f[3]}, Arch: f[4]}

		if got, err := ParseNEVRA(f[5]); err != nil || got != header {
			t.Errorf("%s: ParseNEVRA(%q) = %#v, %v; want the header's %#v", base, f[5], got, err, header)
		}
		if src, err := ParseNEVRA(f[6]); err != nil || src.Arch != "src" || src.Version != header.Version {
			t.Errorf("%s: ParseNEVRA(%q) = %#v, %v; want a source rpm of version %s", base, f[6], src, err, header.Version)
		}
		got, err := ParseNEVRA(base)
		if header.Filename() != base {
			if !errors.Is(err, ErrNEVRA) {
				t.Errorf("%s: renamed file parsed as %#v, %v; want ErrNEVRA", base, got, err)
			}
			continue
		}
		noEpoch := header
		noEpoch.Epoch = ""
		if err != nil || got != noEpoch {
			t.Errorf("ParseNEVRA(%q) = %#v, %v; want %#v", base, got, err, noEpoch)
		}
	}
	if epochs == 0 {
		t.Error("no fixture package has an epoch; the epoch path went untested")
	}
}

// TestShortAndKeyBytes pins the bytes of NEVRA.Short and Key.String: the
// agent's update journal names packages this way, and a signed plan's pins
// are looked up by it, so a change here would leave a pin matching
// nothing. The epoch goes only when it is not 0; the rest is as written.
func TestShortAndKeyBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    NEVRA
		want string
	}{
		{"no epoch", NEVRA{Name: "bash", EVR: EVR{Version: "5.1.8", Release: "6.el9_1"}, Arch: "x86_64"}, "bash-5.1.8-6.el9_1.x86_64"},
		{"epoch 0", NEVRA{Name: "bash", EVR: EVR{Epoch: "0", Version: "5.1.8", Release: "6.el9_1"}, Arch: "x86_64"}, "bash-5.1.8-6.el9_1.x86_64"},
		{"epoch 1", NEVRA{Name: "openssl-libs", EVR: EVR{Epoch: "1", Version: "3.0.7", Release: "16.el9_2"}, Arch: "aarch64"}, "openssl-libs-1:3.0.7-16.el9_2.aarch64"},
		{"epoch 00 is written as given", NEVRA{Name: "a", EVR: EVR{Epoch: "00", Version: "1", Release: "1"}, Arch: "noarch"}, "a-00:1-1.noarch"},
		{"name with dashes and dots", NEVRA{Name: "python3.11-pip-wheel", EVR: EVR{Version: "22.3.1", Release: "4.el9"}, Arch: "noarch"}, "python3.11-pip-wheel-22.3.1-4.el9.noarch"},
		{"no release", NEVRA{Name: "a", EVR: MustParseEVR("2:1.0"), Arch: "x86_64"}, "a-2:1.0.x86_64"},
		{"empty release", NEVRA{Name: "a", EVR: MustParseEVR("1.0-"), Arch: "x86_64"}, "a-1.0-.x86_64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.n.Short(); got != tt.want {
				t.Errorf("Short = %q, want %q", got, tt.want)
			}
			if got := tt.n.Key().String(); got != tt.want {
				t.Errorf("Key().String = %q, want %q", got, tt.want)
			}
			if tt.n.HasRelease() && tt.n.Release != "" {
				back, err := ParseNEVRA(tt.want)
				if err != nil || back.Key() != tt.n.Key() {
					t.Errorf("ParseNEVRA(%q).Key() = %v, %v; want the same Key", tt.want, back.Key(), err)
				}
			}
		})
	}
}

// TestKeyEquality: a Key is the build, not the spelling; epoch 0 and none
// are one build, every other part tells builds apart.
func TestKeyEquality(t *testing.T) {
	t.Parallel()
	base := NEVRA{Name: "openssl-libs", EVR: EVR{Version: "3.0.7", Release: "16.el9_2"}, Arch: "aarch64"}
	zero := base
	zero.Epoch = "0"
	if base.Key() != zero.Key() {
		t.Errorf("epoch 0 and no epoch: keys differ")
	}
	if got := zero.Key().NEVRA(); got != base {
		t.Errorf("Key().NEVRA() of epoch 0 = %#v, want %#v", got, base)
	}
	for _, tt := range []struct {
		name   string
		change func(*NEVRA)
	}{
		{"epoch", func(n *NEVRA) { n.Epoch = "1" }},
		{"version", func(n *NEVRA) { n.Version = "3.0.8" }},
		{"release", func(n *NEVRA) { n.Release = "17.el9_2" }},
		{"arch", func(n *NEVRA) { n.Arch = "x86_64" }},
		{"name", func(n *NEVRA) { n.Name = "openssl" }},
	} {
		other := base
		tt.change(&other)
		if other.Key() == base.Key() {
			t.Errorf("another %s, same key %v", tt.name, other.Key())
		}
	}
	if (Key{}) == base.Key() {
		t.Error("the zero Key equals a package's")
	}
}
