package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
)

// TestCheckBadInput runs check on the kinds of bad input a user meets and
// requires exit 1 with an error that names what was wrong and where, never a
// panic and never a silently empty answer.
func TestCheckBadInput(t *testing.T) {
	root := manifestRoot(t, ubi9Manifest, alma9Release)
	osvPath := filepath.Join(fixtures(t), alma9OSV)
	gz, err := os.ReadFile(osvPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	truncated := write("truncated.jsonl.gz", gz[:len(gz)/2])
	notAdvisories := write("notes.txt", []byte("these are not advisories\n"))
	badJSON := write("bad.jsonl", []byte("{\"id\":\"ALSA-2023:3722\",\"affected\":[]}\n{\"id\": \"ALSA-2023:9999\", \"affected\": [\n"))
	badXML := write("updateinfo.xml", []byte("<?xml version=\"1.0\"?>\n<updates>\n<update type=\"security\">\n<id>ALSA-1</id>\n<pkglist><collection>\n<package name=\"openssl\" version=\"3.0.7\" release=\"1.el9\" arch=\"aarch64\"/>\n</updates>\n"))

	noRelease := filepath.Join(dir, "norelease")
	if err := os.MkdirAll(filepath.Join(noRelease, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("norelease/etc/os-release", []byte("ID=plan9\nVERSION_ID=4\n"))
	emptyRoot := t.TempDir()
	if err := os.MkdirAll(filepath.Join(emptyRoot, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(emptyRoot, "etc/os-release"), readFixture(t, alma9Release), 0o644); err != nil {
		t.Fatal(err)
	}
	corruptDB := t.TempDir()
	if err := os.MkdirAll(filepath.Join(corruptDB, "var/lib/rpm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corruptDB, "var/lib/rpm/rpmdb.sqlite"), []byte("SQLite format 3\x00garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(corruptDB, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corruptDB, "etc/os-release"), readFixture(t, alma9Release), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want []string // every string must appear in stderr
	}{
		{"truncated gzip", []string{"--root", root, "--advisories", truncated}, []string{truncated, "truncated"}},
		{"unknown format", []string{"--root", root, "--advisories", notAdvisories}, []string{notAdvisories, "unknown"}},
		{"malformed JSON line", []string{"--root", root, "--advisories", badJSON}, []string{badJSON, "line 3"}},
		{"malformed XML", []string{"--root", root, "--advisories", badXML}, []string{badXML, "line"}},
		{"missing source", []string{"--root", root, "--advisories", filepath.Join(dir, "nope.json")}, []string{"nope.json", "no such file"}},
		{"unknown distribution", []string{"--root", noRelease, "--advisories", osvPath}, []string{"os-release", "plan9"}},
		{"no rpm database", []string{"--root", emptyRoot, "--advisories", osvPath}, []string{emptyRoot, "rpm database"}},
		{"corrupt rpm database", []string{"--root", corruptDB, "--advisories", osvPath}, []string{"rpmdb.sqlite"}},
		{"advisories of another release", []string{"--root", root, "--advisories", filepath.Join(fixtures(t), "almalinux-osv/samples/almalinux8_ALSA-2023_7877.json")}, []string{"AlmaLinux:8", "AlmaLinux:9", "--release"}},
		{"bad severity", []string{"--root", root, "--advisories", osvPath, "--severity", "Catastrophic"}, []string{"--severity", "Catastrophic"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runAgent(t, append([]string{"check"}, tc.args...)...)
			if r.code != 1 {
				t.Errorf("exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
				t.Errorf("panicked:\n%s", r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
				}
			}
			if r.stdout != "" {
				t.Errorf("printed an answer despite the error:\n%s", r.stdout)
			}
		})
	}
}

// TestCheckNothingApplies: a device whose packages are all newer than every
// fix exits 0 and says so; the same device with one old package exits 100.
func TestCheckNothingApplies(t *testing.T) {
	osvPath := filepath.Join(fixtures(t), "almalinux-osv/samples/almalinux9_ALSA-2023_3722.json")
	for _, tc := range []struct {
		name    string
		release string
		code    int
	}{
		{"fixed version installed", "16.el9_2", 0},
		{"newer version installed", "17.el9_2", 0},
		{"older version installed", "15.el9_2", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			err := rpmtest.NewDevRoot(root, readFixture(t, alma9Release), []rpmtest.Package{
				{Name: "openssl-libs", Epoch: "1", Version: "3.0.7", Release: tc.release, Arch: "aarch64"},
				{Name: "bash", Epoch: "0", Version: "5.1.8", Release: "2.el9", Arch: "aarch64"},
			})
			if err != nil {
				t.Fatal(err)
			}
			r := runAgent(t, "check", "--root", root, "--advisories", osvPath)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.code == 0 && !strings.Contains(r.stdout, "No advisory applies") {
				t.Errorf("stdout does not say nothing applies:\n%s", r.stdout)
			}
		})
	}
}
