package update

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/agent/internal/verify"
	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
)

// TestVerifyNotAsPlanned: a genuine package signed by a pinned key, but not
// the NEVRA the plan names (a mirror replaying an old build under the new
// name), is refused and the verdict says so.
func TestVerifyNotAsPlanned(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"rpmbuild", "rpmsign", "gpg"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: run make deps", bin)
		}
	}
	dir := t.TempDir()
	paths, err := rpmtest.Build(dir, rpmtest.Package{Name: "demo-lib", Version: "1.0", Release: "1", Arch: "x86_64"})
	if err != nil {
		t.Fatal(err)
	}
	key := rpmtest.NewKey(t, rpmtest.KeyEd25519, "rpmfleet-update-unit")
	if err := rpmtest.Sign(key, paths...); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		to       string
		wantKind string
	}{
		{"as planned", "1.0-1", ""},
		{"older build replayed as the fix", "1.1-1", verify.Mismatch.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &runner{c: &Cycle{Keys: []string{key.PublicKeyFile}, Packages: []Package{{
				Name: "demo-lib", Arch: "x86_64", From: "0.9-1", To: tt.to,
				New: Artifact{File: filepath.Join(dir, filepath.Base(paths[0]))},
			}}}}
			err := r.verifyAll(false)
			if tt.wantKind == "" {
				if err != nil || !r.c.Verdicts[0].OK {
					t.Fatalf("verifyAll: %v, verdicts %+v", err, r.c.Verdicts)
				}
				return
			}
			if !errors.Is(err, ErrVerify) || !errors.Is(err, verify.ErrMismatch) {
				t.Fatalf("verifyAll: %v, want ErrVerify and verify.ErrMismatch", err)
			}
			v := r.c.Verdicts[0]
			if v.OK || v.Kind != tt.wantKind || !strings.Contains(v.Detail, "1.1") {
				t.Errorf("verdict %+v", v)
			}
		})
	}
}
