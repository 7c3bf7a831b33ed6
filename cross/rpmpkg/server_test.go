package rpmpkg

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/cross/internal/crosstest"
)

// TestServerPackage packages the real rpmfleet-server and the admin CLI
// rpmfleet together, installs the package into a bare root with the real
// rpm, checks what it holds, and erases it without a trace.
func TestServerPackage(t *testing.T) {
	dir := t.TempDir()
	amd64 := crosstest.Target{GOARCH: "amd64"}
	server := crosstest.Build(t, dir, amd64, "1.0.0", "rpmfleet-server", "./server/cmd/rpmfleet-server")
	cli := crosstest.Build(t, dir, amd64, "1.0.0", "rpmfleet", "./server/cmd/rpmfleet")
	pkg, err := Build(context.Background(), Options{
		Name: "rpmfleet-server", Version: "1.0.0", Release: "1", Arch: "x86_64",
		Binaries: []string{server, cli}, OutDir: t.TempDir(), MTime: time.Unix(1764000000, 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := filepath.Base(pkg); got != "rpmfleet-server-1.0.0-1.x86_64.rpm" {
		t.Errorf("package named %s", got)
	}
	root := t.TempDir()
	rpmIn(t, root, "-i", "--noscripts", "--nodeps", pkg)
	got := strings.Fields(rpmIn(t, root, "-q", "--qf", "[%{FILENAMES}:%{FILEMODES:octal}\n]", "rpmfleet-server"))
	want := []string{"/usr/bin/rpmfleet:100755", "/usr/bin/rpmfleet-server:100755", "/usr/lib/systemd/system/rpmfleet-server.service:100644",
		"/usr/share/doc/rpmfleet-server:40755", "/usr/share/doc/rpmfleet-server/server.toml.example:100644"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("package holds %v, want %v", got, want)
	}
	if out := crosstest.Run(t, root, nil, filepath.Join(root, "usr/bin/rpmfleet-server"), "-version"); !strings.Contains(out, "1.0.0") {
		t.Errorf("installed server says %q", out)
	}
	rpmIn(t, root, "-e", "--noscripts", "rpmfleet-server")
	if left := leftovers(t, root, parentDirs); len(left) > 0 {
		t.Errorf("left behind after erase: %v", left)
	}
}
