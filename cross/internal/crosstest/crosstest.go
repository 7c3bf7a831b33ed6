// Package crosstest is what the tests under cross/ share: the module root,
// the real tools they drive, and a freshly built agent binary.
package crosstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
)

// ModRoot returns the directory holding go.mod, found by walking up from the
// test's working directory.
func ModRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("crosstest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Fixtures returns the fixture folder, testdata/ at the module root.
func Fixtures(t testing.TB) string {
	t.Helper()
	return fixtures.Path(t, ".")
}

// Tool returns the path of a system tool the test drives, or fails the test:
// these tools are installed by make deps, and a test that silently skipped
// would prove nothing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run make deps (%v)", name, err)
	}
	return p
}

// Target is a cross build target.
type Target struct {
	GOARCH, GOARM string
}

// BuildAgent builds rpmfleet-agent for linux/target the way make cross does
// (CGO_ENABLED=0, -trimpath, stripped, version stamped) into dir and returns
// the binary's path, named NAME_linux_ARCH as make cross names it.
func BuildAgent(t testing.TB, dir string, target Target, version string) string {
	t.Helper()
	return Build(t, dir, target, version, "rpmfleet-agent", "./agent/cmd/rpmfleet-agent")
}

// Build builds the main package pkg (relative to the module root) as
// BuildAgent does, into dir/NAME_linux_ARCH.
func Build(t testing.TB, dir string, target Target, version, name, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, name+"_linux_"+target.GOARCH+target.GOARM)
	ldflags := "-s -w -X github.com/rpmfleet/rpmfleet/pkg/version.Version=" + version
	Run(t, ModRoot(t), []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + target.GOARCH, "GOARM=" + target.GOARM},
		"go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	return out
}

// Run runs a command in dir with extra environment and returns its standard
// output; the test fails with the command's output when it fails.
func Run(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := Command(dir, env, name, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, msg)
	}
	return string(out)
}

// Command makes an *exec.Cmd running in dir with env added to the process's
// environment.
func Command(dir string, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	// A daemon the command leaves behind (gpg's gpg-agent) may hold its
	// output pipe open; do not wait for it forever.
	cmd.WaitDelay = 10 * time.Second
	return cmd
}
