// Package integration runs the real rpmfleet-agent binary against device roots
// whose rpm databases the real rpm wrote, the way a user runs it, and compares
// its answers with dnf's.
package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
)

var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rpmfleet-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "rpmfleet-agent")
	build := exec.Command("go", "build", "-o", agentBin, "github.com/rpmfleet/rpmfleet/agent/cmd/rpmfleet-agent")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rpmfleet-agent:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the agent.
type result struct {
	stdout, stderr string
	code           int
}

func runAgent(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(agentBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

func fixtures(t testing.TB) string {
	t.Helper()
	dir, err := rpmtest.FixturesDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func readFixture(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	ubi9Manifest = "installed-inventory/claircore-ubi9/ubi9_ubi-aarch64-rpm-manifest.tsv"
	ubi8Manifest = "installed-inventory/claircore-ubi9/ubi8_ubi-aarch64-rpm-manifest.tsv"
	alma9OSV     = "almalinux-osv/almalinux9.jsonl.gz"
	alma8OSV     = "almalinux-osv/almalinux8.jsonl.gz"
	alma9Release = "os-release/almalinux-9.2-host.os-release"
	alma8Release = "os-release/almalinux-8.10.os-release"
)

// The device roots built from the real manifests are shared by the tests of
// this package: building one takes rpmbuild and rpm a few seconds.
var (
	rootsMu sync.Mutex
	roots   = map[string]string{}
)

// manifestRoot returns a device root holding the packages of a real image
// manifest under the given os-release, built once per test binary.
func manifestRoot(t *testing.T, manifest, osRelease string) string {
	t.Helper()
	rootsMu.Lock()
	defer rootsMu.Unlock()
	key := manifest + "|" + osRelease
	if r, ok := roots[key]; ok {
		return r
	}
	pkgs, err := rpmtest.ReadManifest(filepath.Join(fixtures(t), manifest))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "rpmfleet-devroot-")
	if err != nil {
		t.Fatal(err)
	}
	if err := rpmtest.NewDevRoot(dir, readFixture(t, osRelease), pkgs); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	roots[key] = dir
	return dir
}

// checkOutput is check --json's shape.
type checkOutput struct {
	Advisories []struct {
		ID       string   `json:"id"`
		Type     string   `json:"type"`
		Severity string   `json:"severity"`
		CVEs     []string `json:"cves"`
		Packages []struct {
			Name      string `json:"name"`
			Arch      string `json:"arch"`
			Installed string `json:"installed"`
			Fixed     string `json:"fixed"`
		} `json:"packages"`
	} `json:"advisories"`
}

func parseCheck(t *testing.T, r result) checkOutput {
	t.Helper()
	var out checkOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("check --json printed invalid JSON: %v\nstdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	return out
}

// TestCheckFindsOpensslFixOnRHEL9Image is the story of issue 2: a device
// holding the real RHEL 9.0 aarch64 image's packages, checked against the
// whole AlmaLinux 9 OSV database, is told that ALSA-2023:3722 (CVE-2023-2650)
// applies, with openssl-libs installed 1:3.0.1-23.el9_0 and fixed
// 1:3.0.7-16.el9_2.
func TestCheckFindsOpensslFixOnRHEL9Image(t *testing.T) {
	root := manifestRoot(t, ubi9Manifest, alma9Release)
	r := runAgent(t, "check", "--root", root, "--advisories", filepath.Join(fixtures(t), alma9OSV), "--json")
	if r.code != 100 {
		t.Fatalf("exit code %d, want 100 (updates apply); stderr:\n%s", r.code, r.stderr)
	}
	out := parseCheck(t, r)
	var found bool
	for _, a := range out.Advisories {
		if a.ID != "ALSA-2023:3722" {
			continue
		}
		found = true
		// The AlmaLinux database rates it Moderate ("Moderate: openssl
		// security and bug fix update").
		if a.Type != "security" || a.Severity != "Moderate" {
			t.Errorf("ALSA-2023:3722 type %q severity %q, want security Moderate", a.Type, a.Severity)
		}
		if !contains(a.CVEs, "CVE-2023-2650") {
			t.Errorf("ALSA-2023:3722 CVEs %v lack CVE-2023-2650", a.CVEs)
		}
		var libs bool
		for _, p := range a.Packages {
			if p.Name == "openssl-libs" {
				libs = true
				if p.Arch != "aarch64" || p.Installed != "1:3.0.1-23.el9_0" || p.Fixed != "1:3.0.7-16.el9_2" {
					t.Errorf("openssl-libs: arch %s installed %s fixed %s, want aarch64 1:3.0.1-23.el9_0 -> 1:3.0.7-16.el9_2", p.Arch, p.Installed, p.Fixed)
				}
			}
		}
		if !libs {
			t.Errorf("ALSA-2023:3722 does not list openssl-libs: %+v", a.Packages)
		}
	}
	if !found {
		t.Fatalf("ALSA-2023:3722 not listed among %d advisories", len(out.Advisories))
	}

	// The same question asked for one CVE, in text for people.
	r = runAgent(t, "check", "--root", root, "--advisories", filepath.Join(fixtures(t), alma9OSV), "--cve", "CVE-2023-2650")
	if r.code != 100 || !strings.Contains(r.stdout, "ALSA-2023:3722") || !strings.Contains(r.stdout, "1:3.0.1-23.el9_0 -> 1:3.0.7-16.el9_2") {
		t.Errorf("check --cve CVE-2023-2650: exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
