package rpmcmd

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The testdata files are rpm 4.18's real output (Debian's build, with its
// Alien notice), captured from the transactions named by each file.
func TestParseProblems(t *testing.T) {
	tests := []struct {
		file string
		want []Problem
	}{
		{"missing-dependency.out", []Problem{{Requires, "libmissing.so.3 is needed by demo-app-2.1-1.x86_64", "demo-app-2.1-1.x86_64"}}},
		{"erase-needed.out", []Problem{{Requires, "demo-lib >= 1.0 is needed by (installed) demo-app-2.0-1.x86_64", "demo-app-2.0-1.x86_64"}}},
		{"already-installed.out", []Problem{{Installed, "package demo-lib-1.0-1.x86_64 is already installed", "demo-lib-1.0-1.x86_64"}}},
		{"older.out", []Problem{{Installed, "package demo-lib-1.1-1.x86_64 (which is newer than demo-lib-1.0-1.x86_64) is already installed", "demo-lib-1.1-1.x86_64"}}},
		{"no-signature.out", []Problem{{NotVerified, "package demo-lib-1.1-1.x86_64 does not verify: no signature", "demo-lib-1.1-1.x86_64"}}},
		{"open-failed.out", []Problem{{ErrorLine, "error: open of /tmp/nonexist.rpm failed: No such file or directory", ""}}},
		{"upgrade-ok.out", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got := ParseProblems(CleanOutput(string(b)))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseProblems(%s) =\n%#v\nwant\n%#v", tt.file, got, tt.want)
			}
		})
	}
}

func TestCleanOutput(t *testing.T) {
	b, err := os.ReadFile("testdata/upgrade-ok.out")
	if err != nil {
		t.Fatal(err)
	}
	got := CleanOutput(string(b))
	if strings.Contains(got, "Alien") || !strings.HasPrefix(got, "Verifying packages...\n") {
		t.Errorf("CleanOutput kept the notice or lost the rest:\n%s", got)
	}
}

func FuzzParseProblems(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.out")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range ParseProblems(CleanOutput(s)) {
			if p.Text == "" || strings.Contains(p.Text, "\n") {
				t.Fatalf("problem with empty or multi-line text: %#v", p)
			}
		}
	})
}
