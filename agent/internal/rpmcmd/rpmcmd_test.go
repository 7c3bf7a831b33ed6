package rpmcmd

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
)

// TestRunner drives the real rpm through a test transaction that fails on a
// missing dependency, a signed upgrade, and the rollback, on a real root.
func TestRunner(t *testing.T) {
	for _, bin := range []string{"rpm", "rpmkeys", "rpmbuild", "rpmsign"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: run make deps", bin)
		}
	}
	ctx := context.Background()
	dir := t.TempDir()
	paths, err := rpmtest.Build(filepath.Join(dir, "rpms"),
		rpmtest.Package{Name: "demo-lib", Version: "1.0", Release: "1", Arch: "x86_64", Files: map[string]string{"/usr/lib/demo/lib.txt": "v1.0\n"}},
		rpmtest.Package{Name: "demo-lib", Version: "1.1", Release: "1", Arch: "x86_64", Files: map[string]string{"/usr/lib/demo/lib.txt": "v1.1\n"}},
		rpmtest.Package{Name: "demo-app", Version: "2.1", Release: "1", Arch: "x86_64", Requires: []string{"libmissing.so.3"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	key := rpmtest.NewKey(t, rpmtest.KeyEd25519, "rpmcmd")
	if err := rpmtest.Sign(key, paths...); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	if err := rpmtest.NewDevRoot(root, nil, nil); err != nil {
		t.Fatal(err)
	}
	r := &Runner{Root: root, DBPath: rpmtest.DBPath}
	if _, err := r.run(ctx, "install", "rpm", append(r.base(), "-i", "--nodeps", "--noscripts", "--nosignature", paths[0])); err != nil {
		t.Fatal(err)
	}

	_, err = r.Test(ctx, paths[1], paths[2])
	var rerr *Error
	if !errors.As(err, &rerr) || !errors.Is(err, ErrFailed) {
		t.Fatalf("Test with a missing dependency: err = %v, want *Error", err)
	}
	if len(rerr.Problems) != 1 || rerr.Problems[0].Kind != Requires || rerr.Problems[0].Package != "demo-app-2.1-1.x86_64" {
		t.Errorf("problems = %#v", rerr.Problems)
	}

	// Without the key imported, rpm itself refuses the signed package.
	if _, err := r.Upgrade(ctx, paths[1]); !errors.As(err, &rerr) || len(rerr.Problems) == 0 || rerr.Problems[0].Kind != NotVerified {
		t.Fatalf("Upgrade before import: err = %v, want a not-verified problem", err)
	}
	if _, err := r.ImportKeys(ctx, key.PublicKeyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Upgrade(ctx, paths[1]); err != nil {
		t.Fatal(err)
	}
	assertInstalled(t, r, "demo-lib-1.1-1.x86_64", root, "v1.1\n")
	if _, err := r.Rollback(ctx, paths[0]); err != nil {
		t.Fatal(err)
	}
	assertInstalled(t, r, "demo-lib-1.0-1.x86_64", root, "v1.0\n")
}

func assertInstalled(t *testing.T, r *Runner, nevra, root, content string) {
	t.Helper()
	all, err := r.QueryAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(all, nevra) {
		t.Errorf("installed = %v, want %s", all, nevra)
	}
	b, err := os.ReadFile(filepath.Join(root, "usr/lib/demo/lib.txt"))
	if err != nil || string(b) != content {
		t.Errorf("lib.txt = %q, %v; want %q", b, err, content)
	}
}
