package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
)

// TestRun builds a device root the way make demo and the benchmarks do:
// the RHEL 9 aarch64 manifest, grown to 300 packages with OSV-named stubs,
// plus a modular nodejs added by hand, and asks the real rpm what it holds.
func TestRun(t *testing.T) {
	fixtures, err := rpmtest.FixturesDir()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "device")
	osRelease := filepath.Join(fixtures, "os-release", "almalinux-9.2-host.os-release")
	args := []string{
		"-manifest", filepath.Join(fixtures, "installed-inventory", "claircore-ubi9", "ubi9_ubi-aarch64-rpm-manifest.tsv"),
		"-os-release", osRelease,
		"-out", root,
		"-size", "300",
		"-add", "nodejs-1:18.19.1-1.module_el9.3.0+40+7bfa4a39.aarch64@nodejs:18:9030020240227103535:rhel9",
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := run(context.Background(), args, log); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("rpm", "--root", root, "--dbpath", rpmtest.DBPath, "-qa",
		"--qf", "%{NAME}-%{EPOCH}:%{VERSION}-%{RELEASE}.%{ARCH} %{MODULARITYLABEL}\n").Output()
	if err != nil {
		t.Fatalf("rpm -qa: %v", err)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(got) != 300 {
		t.Errorf("rpm -qa lists %d packages, want 300", len(got))
	}
	for _, want := range []string{
		"nodejs-1:18.19.1-1.module_el9.3.0+40+7bfa4a39.aarch64 nodejs:18:9030020240227103535:rhel9",
		"openssl-libs-1:3.0.1-23.el9_0.aarch64 (none)",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("%q not installed", want)
		}
	}
	a, _ := os.ReadFile(osRelease)
	b, err := os.ReadFile(filepath.Join(root, "etc", "os-release"))
	if err != nil || string(a) != string(b) {
		t.Errorf("etc/os-release not copied: %v", err)
	}

	// The extra packages are the same on every run.
	first, err := extraPackages(filepath.Join(fixtures, "almalinux-osv", "almalinux9.jsonl.gz"), "AlmaLinux:9", nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := extraPackages(filepath.Join(fixtures, "almalinux-osv", "almalinux9.jsonl.gz"), "AlmaLinux:9", nil, 50)
	if len(first) != 50 || !slices.EqualFunc(first, again, func(x, y rpmtest.Package) bool { return x.FileName() == y.FileName() }) {
		t.Errorf("extra packages differ between runs or are short: %d", len(first))
	}
}

func TestParseAdd(t *testing.T) {
	tests := []struct {
		in   string
		want rpmtest.Package
		err  string
	}{
		{"openssl-libs-1:3.0.7-16.el9_2.aarch64", rpmtest.Package{Name: "openssl-libs", Epoch: "1", Version: "3.0.7", Release: "16.el9_2", Arch: "aarch64"}, ""},
		{"bash-5.1.8-4.el9.x86_64", rpmtest.Package{Name: "bash", Version: "5.1.8", Release: "4.el9", Arch: "x86_64"}, ""},
		{"nodejs-1:18.19.1-1.module_el9.3.0+40+7bfa4a39.aarch64@nodejs:18:9030020240227103535:rhel9",
			rpmtest.Package{Name: "nodejs", Epoch: "1", Version: "18.19.1", Release: "1.module_el9.3.0+40+7bfa4a39", Arch: "aarch64",
				ModularityLabel: "nodejs:18:9030020240227103535:rhel9"}, ""},
		{"bash", rpmtest.Package{}, `-add: parse NEVRA "bash"`},
		{"bash.x86_64", rpmtest.Package{}, `-add: parse NEVRA "bash.x86_64"`},
		{"bash-4.el9.x86_64@x", rpmtest.Package{}, `-add: parse NEVRA "bash-4.el9.x86_64"`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseAdd(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got.FileName() != tc.want.FileName() || got.Epoch != tc.want.Epoch || got.ModularityLabel != tc.want.ModularityLabel {
				t.Errorf("parseAdd = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
