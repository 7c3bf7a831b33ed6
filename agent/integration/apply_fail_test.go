package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

func modify(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func delsign(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command("rpmsign", "--delsign", path).CombinedOutput(); err != nil {
		t.Fatalf("rpmsign --delsign: %v\n%s", err, out)
	}
}

// TestApplyRefusesBadPackages: every way a package can be wrong stops the
// whole cycle before anything is installed, with a clear reason, and the rpm
// database stays exactly as it was.
func TestApplyRefusesBadPackages(t *testing.T) {
	missingDep := appNew
	missingDep.Requires = []string{"demo-lib >= 1.1", "libmissing.so.3"}
	tests := []struct {
		name string
		opts worldOpts
		// want are fragments of the output and the history's error.
		want  []string
		class string
	}{
		{"unsigned", worldOpts{beforeRepo: func(t *testing.T, w *world, rpms map[string]string) {
			delsign(t, rpms["demo-app-2.1-1.x86_64.rpm"])
		}}, []string{"demo-app-2.1-1.x86_64", "unsigned"}, "verify"},
		{"key not pinned", worldOpts{beforeRepo: func(t *testing.T, w *world, rpms map[string]string) {
			p := rpms["demo-lib-1.1-1.x86_64.rpm"]
			delsign(t, p)
			if err := rpmtest.Sign(rpmtest.NewKey(t, rpmtest.KeyRSA4096, "rpmfleet-apply-rogue"), p); err != nil {
				t.Fatal(err)
			}
		}}, []string{"demo-lib-1.1-1.x86_64", "unknown key"}, "verify"},
		{"tampered payload", worldOpts{beforeRepo: func(t *testing.T, w *world, rpms map[string]string) {
			modify(t, rpms["demo-lib-1.1-1.x86_64.rpm"], func(b []byte) []byte { b[len(b)-20] ^= 0xff; return b })
		}}, []string{"demo-lib-1.1-1.x86_64", "bad digest"}, "verify"},
		{"tampered header", worldOpts{beforeRepo: func(t *testing.T, w *world, rpms map[string]string) {
			modify(t, rpms["demo-app-2.1-1.x86_64.rpm"], func(b []byte) []byte {
				i := bytes.Index(b, []byte("rpmfleet test stub"))
				if i < 0 {
					t.Fatal("summary not found in the header")
				}
				b[i] = 'R'
				return b
			})
		}}, []string{"demo-app-2.1-1.x86_64"}, "verify"},
		{"sha256 differs from primary.xml", worldOpts{afterRepo: func(t *testing.T, w *world, rpms map[string]string) {
			modify(t, rpms["demo-lib-1.1-1.x86_64.rpm"], func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b })
		}}, []string{"demo-lib-1.1-1.x86_64.rpm", "the repository metadata says sha256:"}, "checksum"},
		{"missing dependency", worldOpts{appNew: &missingDep}, []string{"libmissing.so.3 is needed by demo-app-2.1-1.x86_64"}, "preflight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.opts)
			withKeys := w.installed(t, true)
			r := w.apply(t, nil)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			for _, s := range tt.want {
				if !strings.Contains(r.stdout+r.stderr, s) {
					t.Errorf("output lacks %q:\n%s\n%s", s, r.stdout, r.stderr)
				}
			}
			if got := w.installed(t, true); !slicesEqual(got, withKeys) {
				t.Fatalf("rpm database changed:\n%v\nwant\n%v", got, withKeys)
			}
			h := w.history(t)
			if len(h) != 1 || h[0]["phase"] != "failed" || h[0]["error_class"] != tt.class || h[0]["database_unchanged"] != true {
				t.Fatalf("history: phase %v, class %v (want %s), unchanged %v; error %v", h[0]["phase"], h[0]["error_class"], tt.class, h[0]["database_unchanged"], h[0]["error"])
			}
		})
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// TestApplyRefusesDowngrade: an advisory whose fix is not newer than what is
// installed is reported and nothing is installed.
func TestApplyRefusesDowngrade(t *testing.T) {
	w := newWorld(t, worldOpts{advisories: []*advisory.Advisory{{
		ID: "RFBA-2026:0002", Type: advisory.Bugfix, Title: "old demo-lib",
		Packages: []advisory.Package{{Name: "demo-lib", EVR: rpmver.MustParseEVR("1.0-1"), Arch: "x86_64"}},
	}}})
	r := w.apply(t, nil, "--advisory", "RFBA-2026:0002")
	if r.code != 0 || !strings.Contains(r.stdout, "dropped demo-lib.x86_64 1.0-1") || !strings.Contains(r.stdout, "downgrade or a reinstall") || !strings.Contains(r.stdout, "Nothing to apply") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, before, "after a refused downgrade")
}

// TestApplyResumesCutDownloads: a mirror that goes away mid-download fails
// the cycle with the database untouched; the next run resumes the partial
// file with a Range request and completes.
func TestApplyResumesCutDownloads(t *testing.T) {
	w := newWorld(t, worldOpts{})
	// A dry run caches the metadata, so the apply fetches repomd.xml and
	// then the packages. Cut every response after repomd.xml's size: it
	// passes whole, and all three tries of the first package are cut.
	if r := w.apply(t, nil, "--advisory", applyAdvisory, "--dry-run"); r.code != 0 {
		t.Fatalf("dry run: exit %d\n%s", r.code, r.stderr)
	}
	fi, err := os.Stat(filepath.Join(w.repoDir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	cut := fi.Size() + 1
	w.srv.CutAfter(cut, 4)
	// Each try resumes where the last stopped, so the .part file holds
	// three cut lengths when the first run gives up.
	r := w.apply(t, nil)
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "download") {
		t.Fatalf("cut download: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, before, "after a cut download")
	parts, _ := filepath.Glob(filepath.Join(w.stateDir, "packages", "*.part"))
	if len(parts) != 1 {
		t.Fatalf("partial downloads = %v, want one", parts)
	}
	r = w.apply(t, nil)
	if r.code != 0 {
		t.Fatalf("second run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, after, "after the resumed cycle")
	h := w.history(t)
	if len(h) != 2 || h[0]["phase"] != "failed" || h[0]["error_class"] != "download" || h[1]["phase"] != "committed" {
		t.Fatalf("history phases: %v %v", h[0]["phase"], h[1]["phase"])
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("resumed at byte %d", 3*cut)) {
		t.Errorf("second run did not resume from the partial file:\n%s", r.stdout)
	}
}

// TestApplyRollsBackOnBadHealth: a failing health check rolls the update
// back with the verified previous versions, checks health again, and records
// both.
func TestApplyRollsBackOnBadHealth(t *testing.T) {
	w := newWorld(t, worldOpts{})
	check := `test "$(cat "$RPMFLEET_ROOT/usr/lib/demo/lib.txt")" = v1.0`
	r := w.apply(t, nil, "--advisory", applyAdvisory, "--health-check", check)
	if r.code != 3 {
		t.Fatalf("exit %d, want 3 (rolled back)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, before, "after rollback")
	if got := w.file(t, "usr/lib/demo/lib.txt"); got != "v1.0\n" {
		t.Errorf("lib.txt = %q after rollback", got)
	}
	h := w.history(t)
	if h[0]["phase"] != "rolled-back" {
		t.Fatalf("phase %v", h[0]["phase"])
	}
	health := h[0]["health"].([]any)[0].(map[string]any)
	again := h[0]["health_after_rollback"].([]any)[0].(map[string]any)
	if health["ok"] != false || again["ok"] != true {
		t.Errorf("health %v, after rollback %v", health, again)
	}
}

// TestApplyNeedsRollbackSet: without the installed versions in a repository
// there is no way back, and apply says so unless --no-rollback is given.
func TestApplyNeedsRollbackSet(t *testing.T) {
	w := newWorld(t, worldOpts{noOld: true})
	r := w.apply(t, nil)
	if r.code != 1 || !strings.Contains(r.stderr, "demo-lib-1.0-1.x86_64") || !strings.Contains(r.stderr, "--no-rollback") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, before, "refused without rollback set")
	r = w.apply(t, nil, "--advisory", applyAdvisory, "--no-rollback")
	if r.code != 0 {
		t.Fatalf("--no-rollback: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, after, "with --no-rollback")
}

// TestApplySetsAsideAfterRepeatedFailures: an advisory that fails
// MaxAttempts (3) times is set aside with its reason, not retried.
func TestApplySetsAsideAfterRepeatedFailures(t *testing.T) {
	missingDep := appNew
	missingDep.Requires = []string{"libmissing.so.3"}
	w := newWorld(t, worldOpts{appNew: &missingDep})
	for i := 1; i <= 3; i++ {
		r := w.apply(t, nil)
		if r.code != 1 {
			t.Fatalf("run %d: exit %d\n%s", i, r.code, r.stderr)
		}
		if i == 3 && !strings.Contains(r.stdout, "Advisory "+applyAdvisory+" is set aside") {
			t.Errorf("third failure did not set the advisory aside:\n%s", r.stdout)
		}
	}
	r := w.apply(t, nil)
	if r.code != 0 || !strings.Contains(r.stdout, "set aside "+applyAdvisory+": failed 3 times") {
		t.Fatalf("fourth run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if h := w.history(t); len(h) != 3 {
		t.Errorf("%d cycles, want 3", len(h))
	}
	assertDB(t, w, before, "after repeated failures")
}

// TestApplyFromFolderAndLock: a repository given as a folder works the
// same, and a second agent cannot run while one holds the lock.
func TestApplyFromFolderAndLock(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.fromFolder = true
	if err := os.MkdirAll(w.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(w.stateDir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	r := w.apply(t, nil)
	if r.code != 1 || !strings.Contains(r.stderr, "another update cycle is running") {
		t.Fatalf("with the lock held: exit %d\n%s", r.code, r.stderr)
	}
	lock.Close()
	r = w.apply(t, nil)
	if r.code != 0 {
		t.Fatalf("from folder: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, after, "from folder")
	if w.srv.Total() != 0 {
		t.Errorf("folder run used the HTTP server %d times", w.srv.Total())
	}
}
