package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestParseOSReleaseFiles reads the real os-release files copied from
// AlmaLinux, Rocky Linux and UBI 8 images into testdata/.
func TestParseOSReleaseFiles(t *testing.T) {
	tests := []struct {
		file      string
		want      Release
		ecosystem string
	}{
		{"almalinux-9.2-host.os-release", Release{
			ID: "almalinux", IDLike: []string{"rhel", "centos", "fedora"}, VersionID: "9.2",
			Name: "AlmaLinux", PrettyName: "AlmaLinux 9.2 (Turquoise Kodkod)",
			PlatformID: "platform:el9", CPEName: "cpe:/o:almalinux:almalinux:9::baseos",
		}, "AlmaLinux:9"},
		{"almalinux-9.5-container.os-release", Release{
			ID: "almalinux", IDLike: []string{"rhel", "centos", "fedora"}, VersionID: "9.5",
			Name: "AlmaLinux", PrettyName: "AlmaLinux 9.5 (Teal Serval)",
			PlatformID: "platform:el9", CPEName: "cpe:/o:almalinux:almalinux:9::baseos",
		}, "AlmaLinux:9"},
		{"almalinux-9.6.os-release", Release{
			ID: "almalinux", IDLike: []string{"rhel", "centos", "fedora"}, VersionID: "9.6",
			Name: "AlmaLinux", PrettyName: "AlmaLinux 9.6 (Sage Margay)",
			PlatformID: "platform:el9", CPEName: "cpe:/o:almalinux:almalinux:9::baseos",
		}, "AlmaLinux:9"},
		{"almalinux-8.10.os-release", Release{
			ID: "almalinux", IDLike: []string{"rhel", "centos", "fedora"}, VersionID: "8.10",
			Name: "AlmaLinux", PrettyName: "AlmaLinux 8.10 (Cerulean Leopard)",
			PlatformID: "platform:el8", CPEName: "cpe:/o:almalinux:almalinux:8::baseos",
		}, "AlmaLinux:8"},
		{"rocky-9.6.os-release", Release{
			ID: "rocky", IDLike: []string{"rhel", "centos", "fedora"}, VersionID: "9.6",
			Name: "Rocky Linux", PrettyName: "Rocky Linux 9.6 (Blue Onyx)",
			PlatformID: "platform:el9", CPEName: "cpe:/o:rocky:rocky:9::baseos",
		}, "Rocky Linux:9"},
		{"rhel-8.0-ubi8.os-release", Release{
			ID: "rhel", IDLike: []string{"fedora"}, VersionID: "8.0",
			Name: "Red Hat Enterprise Linux", PrettyName: "Red Hat Enterprise Linux 8.0 (Ootpa)",
			PlatformID: "platform:el8", CPEName: "cpe:/o:redhat:enterprise_linux:8.0:GA",
		}, "Red Hat:8"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ParseOSRelease(f)
			if err != nil {
				t.Fatalf("ParseOSRelease: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			eco, err := got.Ecosystem()
			if err != nil || eco != tc.ecosystem {
				t.Errorf("Ecosystem() = %q, %v; want %q", eco, err, tc.ecosystem)
			}
		})
	}
}

// TestParseOSReleaseQuoting covers the shell quoting os-release(5) allows.
func TestParseOSReleaseQuoting(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unquoted", `NAME=Alma`, "Alma"},
		{"double", `NAME="Alma Linux"`, "Alma Linux"},
		{"single", `NAME='Alma "Linux"'`, `Alma "Linux"`},
		{"double escapes", `NAME="a \"b\" \$c \\d \x"`, `a "b" $c \d \x`},
		{"unquoted escape", `NAME=a\ b`, "a b"},
		{"concatenated", `NAME="a"'b'c`, "abc"},
		{"empty", `NAME=`, ""},
		{"empty quotes", `NAME=""`, ""},
		{"trailing comment", `NAME="Alma" # the name`, "Alma"},
		{"leading space", `  NAME="Alma"  `, "Alma"},
		{"crlf", "NAME=\"Alma\"\r", "Alma"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rel, err := ParseOSRelease(strings.NewReader("# comment\n\n" + tc.in + "\nID=x\n"))
			if err != nil {
				t.Fatalf("ParseOSRelease(%q): %v", tc.in, err)
			}
			if rel.Name != tc.want || rel.ID != "x" {
				t.Errorf("NAME = %q, ID = %q; want %q, x", rel.Name, rel.ID, tc.want)
			}
		})
	}
}

func TestParseOSReleaseErrors(t *testing.T) {
	tests := []struct {
		name, in, wantMsg string
	}{
		{"no equals", "ID=almalinux\nhello world\n", "line 2: no '='"},
		{"bad key", "1D=almalinux\n", `line 1: bad key "1D"`},
		{"unterminated double", "ID=almalinux\n\nNAME=\"Alma\n", "line 3: NAME: unterminated double quote"},
		{"unterminated single", "NAME='Alma\n", "line 1: NAME: unterminated single quote"},
		{"second word", "NAME=Alma Linux\n", `line 1: NAME: unquoted space before "Linux"`},
		{"trailing backslash", `NAME=Alma\`, "line 1: NAME: backslash at end of value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseOSRelease(strings.NewReader(tc.in))
			if !errors.Is(err, ErrOSReleaseSyntax) {
				t.Fatalf("err = %v, want ErrOSReleaseSyntax", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tc.wantMsg)
			}
		})
	}
}

func TestEcosystemErrors(t *testing.T) {
	tests := []struct {
		name    string
		rel     Release
		want    error
		wantMsg string
	}{
		{"centos", Release{ID: "centos", IDLike: []string{"rhel", "fedora"}, VersionID: "8"},
			ErrUnknownDistribution, `ID "centos" (ID_LIKE "rhel fedora") has no known OSV ecosystem`},
		{"ol", Release{ID: "ol", IDLike: []string{"fedora"}, VersionID: "9.3"},
			ErrUnknownDistribution, `ID "ol"`},
		{"no ID", Release{VersionID: "9"}, ErrUnknownDistribution, `ID ""`},
		{"no VERSION_ID", Release{ID: "almalinux"}, ErrNoVersionID, `ID "almalinux"`},
		{"bad VERSION_ID", Release{ID: "rocky", VersionID: "nine"}, nil, `VERSION_ID "nine" of rocky`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eco, err := tc.rel.Ecosystem()
			if err == nil {
				t.Fatalf("Ecosystem() = %q, want an error", eco)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tc.wantMsg)
			}
		})
	}
}

func FuzzParseOSRelease(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.os-release")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`NAME="a\"b" # c` + "\nID='x'y\\ z\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rel, err := ParseOSRelease(strings.NewReader(string(b)))
		if err != nil {
			if !errors.Is(err, ErrOSReleaseSyntax) && !strings.Contains(err.Error(), "read os-release") {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		_, _ = rel.Ecosystem()
	})
}
