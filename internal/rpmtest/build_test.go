package rpmtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var rpmlibRE = regexp.MustCompile(`rpmlib\([A-Za-z]+\) `)

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: run make deps", tool)
		}
	}
}

// query runs rpm -qp with a query format on an rpm file.
func query(t *testing.T, rpm, format string) string {
	t.Helper()
	out, err := exec.Command("rpm", "-qp", "--nosignature", "--qf", format, rpm).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qp %s: %v: %s", rpm, err, out)
	}
	return string(out)
}

// TestBuild builds stubs of every kind the tests need and reads them back
// with the real rpm: the header must carry exactly the name, epoch (none,
// 0 or 1), version, release, arch and modularity label, the dependencies,
// and the files with their content.
func TestBuild(t *testing.T) {
	needTools(t, "rpmbuild", "rpm")
	t.Setenv(CacheEnv, t.TempDir())
	pkgs := []Package{
		{Name: "openssl-libs", Epoch: "1", Version: "3.0.1", Release: "23.el9_0", Arch: "aarch64",
			Requires: []string{"crypto-policies >= 20220223"}, Provides: []string{"libcrypto.so.3()(64bit)"}},
		{Name: "tzdata", Epoch: "0", Version: "2022a", Release: "1.el9_0", Arch: "noarch"},
		{Name: "bash", Version: "5.1.8", Release: "4.el9", Arch: "x86_64", Summary: "The GNU Bourne Again shell, 100%"},
		{Name: "nodejs", Epoch: "1", Version: "18.19.1", Release: "1.module_el9.3.0+40+7bfa4a39", Arch: "aarch64",
			ModularityLabel: "nodejs:18:9030020240227103535:rhel9"},
		{Name: "rpmfleet-hello", Version: "1.0", Release: "1", Arch: "armv7hl",
			Files: map[string]string{"/usr/share/hello/greeting": "hello, %{name} $HOME 'quoted'\n", "/etc/hello.conf": ""}},
		// Same name and same file path as above, another version: must go
		// into a separate spec of the same rpmbuild run.
		{Name: "rpmfleet-hello", Version: "1.1", Release: "1", Arch: "armv7hl",
			Files: map[string]string{"/usr/share/hello/greeting": "hello again\n"}},
	}
	dir := t.TempDir()
	paths, err := Build(dir, pkgs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(pkgs) {
		t.Fatalf("Build returned %d paths for %d packages", len(paths), len(pkgs))
	}
	const format = "%{NAME}|%{EPOCH}|%{VERSION}|%{RELEASE}|%{ARCH}|%{MODULARITYLABEL}|[%{REQUIRENAME} ]|[%{PROVIDENAME} ]|%{SUMMARY}"
	want := []string{
		"openssl-libs|1|3.0.1|23.el9_0|aarch64|(none)|crypto-policies |libcrypto.so.3()(64bit) openssl-libs openssl-libs(aarch-64) |rpmfleet test stub",
		"tzdata|0|2022a|1.el9_0|noarch|(none)||tzdata |rpmfleet test stub",
		"bash|(none)|5.1.8|4.el9|x86_64|(none)||bash bash(x86-64) |The GNU Bourne Again shell, 100%",
		"nodejs|1|18.19.1|1.module_el9.3.0+40+7bfa4a39|aarch64|nodejs:18:9030020240227103535:rhel9||nodejs nodejs(aarch-64) |rpmfleet test stub",
		"rpmfleet-hello|(none)|1.0|1|armv7hl|(none)||rpmfleet-hello rpmfleet-hello(armv7hl-32) |rpmfleet test stub",
		"rpmfleet-hello|(none)|1.1|1|armv7hl|(none)||rpmfleet-hello rpmfleet-hello(armv7hl-32) |rpmfleet test stub",
	}
	for i, p := range pkgs {
		t.Run(p.FileName(), func(t *testing.T) {
			if filepath.Dir(paths[i]) != dir || filepath.Base(paths[i]) != p.FileName() {
				t.Errorf("path = %s, want %s in %s", paths[i], p.FileName(), dir)
			}
			// rpmbuild adds its own rpmlib(...) requirements; they are not ours.
			got := rpmlibRE.ReplaceAllString(query(t, paths[i], format), "")
			if got != want[i] {
				t.Errorf("header:\n got %s\nwant %s", got, want[i])
			}
		})
	}

	// Install the file-carrying stub for real and read its files back.
	root := t.TempDir()
	out, err := exec.Command("rpm", "--root", root, "--dbpath", DBPath, "-i", "--nodeps", "--ignorearch",
		"--noscripts", "--nosignature", paths[4]).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -i %s: %v: %s", paths[4], err, out)
	}
	for path, content := range pkgs[4].Files {
		b, err := os.ReadFile(filepath.Join(root, path))
		if err != nil || string(b) != content {
			t.Errorf("installed %s = %q, %v; want %q", path, b, err, content)
		}
	}
}

// TestBuildCache shows that a second Build of the same stubs does not run
// rpmbuild (it is taken off PATH), and that changing a stub rebuilds it.
func TestBuildCache(t *testing.T) {
	needTools(t, "rpmbuild", "rpm")
	cache := t.TempDir()
	t.Setenv(CacheEnv, cache)
	p := Package{Name: "zlib", Version: "1.2.11", Release: "31.el9_0.1", Arch: "aarch64"}
	first, err := Build(t.TempDir(), p)
	if err != nil {
		t.Fatal(err)
	}
	cached, _ := filepath.Glob(filepath.Join(cache, "*", "*.rpm"))
	if len(cached) != 1 {
		t.Fatalf("cache holds %v, want one rpm", cached)
	}

	t.Setenv("PATH", t.TempDir())
	second, err := Build(t.TempDir(), p)
	if err != nil {
		t.Fatalf("warm Build without rpmbuild on PATH: %v", err)
	}
	a, _ := os.ReadFile(first[0])
	b, _ := os.ReadFile(second[0])
	if len(a) == 0 || string(a) != string(b) {
		t.Errorf("warm Build gave different bytes (%d vs %d)", len(a), len(b))
	}

	p.Release = "32.el9_0"
	if _, err := Build(t.TempDir(), p); err == nil {
		t.Fatal("changed stub built without rpmbuild: the cache key ignores the release")
	}
}

func TestBuildErrors(t *testing.T) {
	t.Setenv(CacheEnv, t.TempDir())
	ok := Package{Name: "bash", Version: "5.1.8", Release: "4.el9", Arch: "aarch64"}
	tests := []struct {
		name    string
		pkgs    []Package
		wantMsg string
	}{
		{"dash in version", []Package{{Name: "bash", Version: "5.1-8", Release: "4", Arch: "aarch64"}}, `bash version "5.1-8"`},
		{"no arch", []Package{{Name: "bash", Version: "5.1.8", Release: "4"}}, `bash arch ""`},
		{"bad epoch", []Package{{Name: "bash", Epoch: "1a", Version: "5", Release: "4", Arch: "aarch64"}}, `bash epoch "1a"`},
		{"macro in name", []Package{{Name: "%{foo}", Version: "5", Release: "4", Arch: "aarch64"}}, `name "%{foo}"`},
		{"relative file", []Package{{Name: "a", Version: "1", Release: "1", Arch: "noarch", Files: map[string]string{"etc/x": ""}}}, `a file path "etc/x"`},
		{"dotdot file", []Package{{Name: "a", Version: "1", Release: "1", Arch: "noarch", Files: map[string]string{"/etc/../x": ""}}}, `a file path "/etc/../x"`},
		{"newline in dep", []Package{{Name: "a", Version: "1", Release: "1", Arch: "noarch", Requires: []string{"b\nVersion: 2"}}}, "a dependency"},
		{"same file twice", []Package{ok, ok}, "packages 0 and 1 are both bash-5.1.8-4.el9.aarch64.rpm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(t.TempDir(), tc.pkgs...)
			if !errors.Is(err, ErrBadPackage) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %v, want ErrBadPackage with %q", err, tc.wantMsg)
			}
		})
	}
}
