package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// The apply tests build a small world with the real tools: demo-lib 1.0-1 and
// demo-app 2.0-1 installed for real (files written) into a device root by
// rpm, their fixes demo-lib 1.1-1 and demo-app 2.1-1 in a repository made by
// createrepo_c with an updateinfo.xml added by modifyrepo_c, every package
// signed by rpmsign, demo-lib with an RSA-4096 key and demo-app with an
// Ed25519 key, both pinned. Each failure case changes one thing and asserts
// the rpm database is exactly as before.

const applyAdvisory = "RFSA-2026:0001"

var (
	libOld = rpmtest.Package{Name: "demo-lib", Version: "1.0", Release: "1", Arch: "x86_64", Files: map[string]string{"/usr/lib/demo/lib.txt": "v1.0\n"}}
	libNew = rpmtest.Package{Name: "demo-lib", Version: "1.1", Release: "1", Arch: "x86_64", Files: map[string]string{"/usr/lib/demo/lib.txt": "v1.1\n"}}
	appOld = rpmtest.Package{Name: "demo-app", Version: "2.0", Release: "1", Arch: "x86_64", Requires: []string{"demo-lib >= 1.0"}, Files: map[string]string{"/usr/bin/demo-app": "app 2.0\n"}}
	appNew = rpmtest.Package{Name: "demo-app", Version: "2.1", Release: "1", Arch: "x86_64", Requires: []string{"demo-lib >= 1.1"}, Files: map[string]string{"/usr/bin/demo-app": "app 2.1\n"}}
	// other is installed and named by no advisory: it must never change.
	other = rpmtest.Package{Name: "demo-other", Version: "5.0", Release: "3", Arch: "noarch", Files: map[string]string{"/etc/demo-other.conf": "x\n"}}
)

// world is a device root, a repository and the pinned keys.
type world struct {
	dir, root, repoDir, stateDir string
	srv                          *rpmtest.Server
	keys                         []string
	rsa, ed                      *rpmtest.Key
	// fromFolder makes apply read the repository as a folder.
	fromFolder bool
	// newRPM maps a package name to its new version's file in the repo.
	newRPM map[string]string
}

// worldOpts changes one thing in the world.
type worldOpts struct {
	// libNew and appNew replace the new packages.
	libNew, appNew *rpmtest.Package
	// beforeRepo changes the signed rpm files (by file name) before
	// createrepo_c sees them; afterRepo after.
	beforeRepo, afterRepo func(t *testing.T, w *world, rpms map[string]string)
	// advisories replaces the one advisory.
	advisories []*advisory.Advisory
	// noOld leaves the installed versions out of the repository.
	noOld bool
}

func needTools(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"rpm", "rpmkeys", "rpmbuild", "rpmsign", "createrepo_c", "modifyrepo_c", "gpg"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: run make deps", bin)
		}
	}
}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	needTools(t)
	dir := t.TempDir()
	w := &world{dir: dir, root: filepath.Join(dir, "root"), repoDir: filepath.Join(dir, "repo"), stateDir: filepath.Join(dir, "state"), newRPM: map[string]string{}}
	ln, an := libNew, appNew
	if o.libNew != nil {
		ln = *o.libNew
	}
	if o.appNew != nil {
		an = *o.appNew
	}
	paths, err := rpmtest.Build(filepath.Join(dir, "rpms"), libOld, ln, appOld, an, other)
	if err != nil {
		t.Fatal(err)
	}
	w.rsa = rpmtest.NewKey(t, rpmtest.KeyRSA4096, "rpmfleet-apply-rsa")
	w.ed = rpmtest.NewKey(t, rpmtest.KeyEd25519, "rpmfleet-apply-ed")
	if err := rpmtest.Sign(w.rsa, paths[0], paths[1], paths[4]); err != nil {
		t.Fatal(err)
	}
	if err := rpmtest.Sign(w.ed, paths[2], paths[3]); err != nil {
		t.Fatal(err)
	}
	w.keys = []string{w.rsa.PublicKeyFile, w.ed.PublicKeyFile}
	rpms := map[string]string{}
	for _, p := range paths {
		rpms[filepath.Base(p)] = p
	}
	w.newRPM["demo-lib"] = filepath.Join(w.repoDir, "Packages", filepath.Base(paths[1]))
	w.newRPM["demo-app"] = filepath.Join(w.repoDir, "Packages", filepath.Base(paths[3]))

	// The device: the old versions and demo-other installed for real.
	if err := rpmtest.NewDevRoot(w.root, []byte("NAME=\"AlmaLinux\"\nID=\"almalinux\"\nVERSION_ID=\"9.4\"\n"), nil); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("rpm", "--root", w.root, "--dbpath", rpmtest.DBPath, "-i", "--nodeps", "--noscripts", "--nosignature", "--ignorearch", paths[0], paths[2], paths[4]).CombinedOutput()
	if err != nil {
		t.Fatalf("install the old versions: %v\n%s", err, out)
	}

	if o.beforeRepo != nil {
		o.beforeRepo(t, w, rpms)
	}
	advs := o.advisories
	if advs == nil {
		advs = []*advisory.Advisory{{
			ID: applyAdvisory, Type: advisory.Security, Severity: advisory.Important, Title: "demo-lib and demo-app security update",
			Issued: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), CVEs: []string{"CVE-2026-0001"},
			Packages: []advisory.Package{
				{Name: "demo-lib", EVR: rpmver.MustParseEVR("1.1-1"), Arch: "x86_64", Filename: "demo-lib-1.1-1.x86_64.rpm"},
				{Name: "demo-app", EVR: rpmver.MustParseEVR("2.1-1"), Arch: "x86_64", Filename: "demo-app-2.1-1.x86_64.rpm"},
			},
		}}
	}
	var ui bytes.Buffer
	uw := updateinfo.NewWriter(&ui)
	for _, a := range advs {
		if err := uw.Write(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := uw.Close(); err != nil {
		t.Fatal(err)
	}
	inRepo := paths
	if o.noOld {
		inRepo = []string{paths[1], paths[3], paths[4]}
	}
	if err := rpmtest.NewRepo(w.repoDir, inRepo, ui.Bytes()); err != nil {
		t.Fatal(err)
	}
	if o.afterRepo != nil {
		repoRPMs := map[string]string{}
		for name := range rpms {
			repoRPMs[name] = filepath.Join(w.repoDir, "Packages", name)
		}
		o.afterRepo(t, w, repoRPMs)
	}
	w.srv = rpmtest.Serve(t, w.repoDir)
	return w
}

// apply runs rpmfleet-agent apply against the world over HTTP, with extra
// flags.
func (w *world) apply(t *testing.T, env []string, extra ...string) result {
	t.Helper()
	repoArg := w.srv.URL
	if w.fromFolder {
		repoArg = w.repoDir
	}
	args := []string{"apply", "--root", w.root, "--repo", repoArg, "--state-dir", w.stateDir}
	for _, k := range w.keys {
		args = append(args, "--gpgkey", k)
	}
	args = append(args, extra...)
	if len(extra) == 0 || !slices.ContainsFunc(extra, func(s string) bool { return s == "--advisory" || s == "--security" || s == "--all" }) {
		args = append(args, "--advisory", applyAdvisory)
	}
	cmd := exec.Command(agentBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
		if !ee.Exited() {
			code = -1 // killed by a signal
		}
	} else if err != nil {
		t.Fatalf("run apply: %v", err)
	}
	return result{out.String(), errb.String(), code}
}

// installed is the root's rpm -qa, sorted, gpg-pubkey entries (the imported
// keys) left out unless keys is set.
func (w *world) installed(t *testing.T, keys bool) []string {
	t.Helper()
	out, err := exec.Command("rpm", "--root", w.root, "--dbpath", rpmtest.DBPath, "-qa", "--qf", "%{NEVRA}\n").Output()
	if err != nil {
		t.Fatalf("rpm -qa: %v", err)
	}
	var list []string
	for _, l := range strings.Fields(string(out)) {
		if !keys && strings.HasPrefix(l, "gpg-pubkey-") {
			continue
		}
		list = append(list, l)
	}
	slices.Sort(list)
	return list
}

func (w *world) file(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	before = []string{"demo-app-2.0-1.x86_64", "demo-lib-1.0-1.x86_64", "demo-other-5.0-3.noarch"}
	after  = []string{"demo-app-2.1-1.x86_64", "demo-lib-1.1-1.x86_64", "demo-other-5.0-3.noarch"}
)

func (w *world) history(t *testing.T) []map[string]any {
	t.Helper()
	r := runAgent(t, "history", "--json", "--state-dir", w.stateDir)
	if r.code != 0 {
		t.Fatalf("history: exit %d\n%s", r.code, r.stderr)
	}
	var h struct {
		Cycles []map[string]any `json:"cycles"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatalf("history --json: %v\n%s", err, r.stdout)
	}
	return h.Cycles
}

func assertDB(t *testing.T, w *world, want []string, what string) {
	t.Helper()
	if got := w.installed(t, false); !slices.Equal(got, want) {
		t.Fatalf("%s: installed =\n%v\nwant\n%v", what, got, want)
	}
}

func TestApplyHappyPathOverHTTP(t *testing.T) {
	w := newWorld(t, worldOpts{})
	keysBefore := w.installed(t, true)
	if !slices.Equal(keysBefore, before) {
		t.Fatalf("device not as built: %v", keysBefore)
	}

	// A dry run prints the plan and changes nothing, not even the journal.
	r := w.apply(t, nil, "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "upgrade demo-lib.x86_64 1.0-1 -> 1.1-1") || !strings.Contains(r.stdout, "upgrade demo-app.x86_64 2.0-1 -> 2.1-1") {
		t.Fatalf("dry run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, before, "after dry run")
	if h := w.history(t); len(h) != 0 {
		t.Fatalf("dry run made a cycle: %v", h)
	}

	r = w.apply(t, nil)
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, after, "after apply")
	if got := w.file(t, "usr/lib/demo/lib.txt"); got != "v1.1\n" {
		t.Errorf("lib.txt = %q: the transaction did not write the new file", got)
	}
	h := w.history(t)
	if len(h) != 1 || h[0]["phase"] != "committed" {
		t.Fatalf("history = %v", h)
	}
	verdicts := h[0]["verdicts"].([]any)
	if len(verdicts) != 4 {
		t.Errorf("verdicts = %v, want the 2 new packages and the 2 of the rollback set", verdicts)
	}
	for _, v := range verdicts {
		if v.(map[string]any)["ok"] != true {
			t.Errorf("verdict not ok: %v", v)
		}
	}
	if !strings.Contains(h[0]["rpm_output"].(string), "demo-lib-1.1-1.x86_64") {
		t.Errorf("rpm output not captured: %q", h[0]["rpm_output"])
	}

	// A second run finds nothing to do: never a double apply.
	r = w.apply(t, nil)
	if r.code != 0 || !strings.Contains(r.stdout, "Nothing to apply") {
		t.Fatalf("second apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if h := w.history(t); len(h) != 1 {
		t.Errorf("second apply made a cycle: %d cycles", len(h))
	}
	st := runAgent(t, "status", "--state-dir", w.stateDir)
	if !strings.Contains(st.stdout, "idle: last cycle 1 committed") {
		t.Errorf("status:\n%s", st.stdout)
	}
}

// fork is another device like w's, sharing its repository: a copy of the
// root as built, and a fresh state dir.
func (w *world) fork(t *testing.T) *world {
	t.Helper()
	f := *w
	dir := t.TempDir()
	f.root, f.stateDir = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	if out, err := exec.Command("cp", "-a", w.root, f.root).CombinedOutput(); err != nil {
		t.Fatalf("copy root: %v\n%s", err, out)
	}
	return &f
}

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
		Packages: []advisory.Package{
			{Name: "demo-lib", EVR: rpmver.MustParseEVR("0.9-1"), Arch: "x86_64"},
			{Name: "demo-app", EVR: rpmver.MustParseEVR("2.0-1"), Arch: "x86_64"},
		},
	}}})
	r := w.apply(t, nil, "--advisory", "RFBA-2026:0002")
	if r.code != 0 || !strings.Contains(r.stdout, "dropped demo-lib.x86_64 1.0-1 (fix 0.9-1") || !strings.Contains(r.stdout, "would be a downgrade") ||
		!strings.Contains(r.stdout, "dropped demo-app.x86_64 2.0-1 (fix 2.0-1, RFBA-2026:0002): the fixed version is already installed") || !strings.Contains(r.stdout, "Nothing to apply") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, before, "after a refused downgrade")
}

// TestApplyResumesCutDownloads: a mirror that goes away mid-download fails
// the cycle with the database untouched; the next run resumes the partial
// file with a Range request and completes.
func TestApplyResumesCutDownloads(t *testing.T) {
	w := newWorld(t, worldOpts{})
	// A dry run caches the metadata, so the apply fetches only repomd.xml
	// (and looks for repomd.xml.asc) before the packages. Every response is
	// cut after repomd.xml's size until the mirror is repaired: the metadata
	// passes whole, and every try of the first package is cut.
	if r := w.apply(t, nil, "--advisory", applyAdvisory, "--dry-run"); r.code != 0 {
		t.Fatalf("dry run: exit %d\n%s", r.code, r.stderr)
	}
	fi, err := os.Stat(filepath.Join(w.repoDir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	cut := fi.Size() + 1
	w.srv.CutAfter(cut, 1000)
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
	w.srv.CutAfter(0, 0) // the mirror is back
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

// TestApplyRecoversFromKill: the agent killed (SIGKILL, the stand-in for a
// power cut) right after the journal records each phase, or right after
// rpm's transaction returned, is resumed by the next run, which looks at the
// rpm database, finishes or undoes the step and records the truth: the
// update ends installed exactly once, or rolled back.
func TestApplyRecoversFromKill(t *testing.T) {
	base := newWorld(t, worldOpts{})
	badHealth := `test "$(cat "$RPMFLEET_ROOT/usr/lib/demo/lib.txt")" = v1.0`
	tests := []struct {
		at     string
		health string
		// phase is the first cycle's phase after recovery; want the
		// database then.
		phase string
		want  []string
		// between runs, after the kill.
		between func(t *testing.T, w *world)
	}{
		{at: "planned", phase: "committed", want: after},
		{at: "downloading", phase: "committed", want: after},
		{at: "verifying", phase: "committed", want: after},
		{at: "preflight", phase: "committed", want: after},
		{at: "applying", phase: "committed", want: after},
		{at: "applied", phase: "committed", want: after},
		{at: "health-check", phase: "committed", want: after},
		{at: "committed", phase: "committed", want: after},
		{at: "health-check", health: badHealth, phase: "rolled-back", want: before},
		{at: "rolling-back", health: badHealth, phase: "rolled-back", want: before},
		// rpm cut half way: demo-lib is new, demo-app still old. The
		// resumed cycle rolls back only demo-lib; the rerun then applies
		// the advisory in a new cycle.
		{at: "applying", phase: "rolled-back", want: after, between: func(t *testing.T, w *world) {
			out, err := exec.Command("rpm", "--root", w.root, "--dbpath", rpmtest.DBPath, "-U", "--nosignature", w.newRPM["demo-lib"]).CombinedOutput()
			if err != nil {
				t.Fatalf("half apply: %v\n%s", err, out)
			}
		}},
	}
	for _, tt := range tests {
		name := tt.at
		if tt.health != "" {
			name += " with bad health"
		}
		if tt.between != nil {
			name += " half applied"
		}
		t.Run(name, func(t *testing.T) {
			w := base.fork(t)
			args := []string{"--advisory", applyAdvisory}
			if tt.health != "" {
				args = append(args, "--health-check", tt.health)
			}
			r := w.apply(t, []string{"RPMFLEET_TEST_CRASH_AT=" + tt.at}, args...)
			if r.code != -1 {
				t.Fatalf("agent was not killed at %s: exit %d\n%s\n%s", tt.at, r.code, r.stdout, r.stderr)
			}
			st := runAgent(t, "status", "--state-dir", w.stateDir)
			if !strings.Contains(st.stdout, "cycle 1 in progress") {
				t.Errorf("status after the kill:\n%s", st.stdout)
			}
			if tt.between != nil {
				tt.between(t, w)
			}
			// A dry run does not touch the interrupted cycle.
			if r := w.apply(t, nil, append(args, "--dry-run")...); r.code != 0 || !strings.Contains(r.stdout, "Cycle 1 was interrupted") {
				t.Errorf("dry run after the kill: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}

			r = w.apply(t, nil, args...)
			t.Logf("run after the kill at %s:\n%s", tt.at, r.stdout)
			if tt.phase == "committed" && r.code != 0 {
				t.Fatalf("run after the kill: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			h := w.history(t)
			if len(h) == 0 || h[0]["phase"] != tt.phase {
				t.Fatalf("cycle 1 after recovery: %v\n%s\n%s", h, r.stdout, r.stderr)
			}
			if tt.between != nil {
				if len(h) != 2 || h[1]["phase"] != "committed" || !strings.Contains(fmt.Sprint(h[0]["recovery"]), "mix of old and new") {
					t.Errorf("half-applied recovery: %d cycles, %v", len(h), h[0]["recovery"])
				}
			}
			if tt.phase == "committed" {
				// Installed once: no second cycle, and rpm -qa shows
				// each package once.
				if len(h) != 1 {
					t.Errorf("%d cycles after recovery, want 1", len(h))
				}
				if got := w.file(t, "usr/lib/demo/lib.txt"); got != "v1.1\n" {
					t.Errorf("lib.txt = %q", got)
				}
			}
			if tt.at != "committed" {
				if rec, _ := h[0]["recovery"].([]any); len(rec) == 0 {
					t.Errorf("no recovery recorded in cycle 1")
				}
			}
			// With bad health the rerun tries the advisory again in a
			// new cycle, which is rolled back too.
			assertDB(t, w, tt.want, "after recovery")
		})
	}
}

// TestApplyFromDeviceRepoFiles: without --repo and --gpgkey, apply reads the
// device's own ROOT/etc/yum.repos.d (baseurl, gpgkey, enabled), selects by
// --security and --severity, runs the executables of
// ROOT/etc/rpmfleet/health.d, and refuses to start on a disk without room.
func TestApplyFromDeviceRepoFiles(t *testing.T) {
	w := newWorld(t, worldOpts{})
	keyDir := filepath.Join(w.root, "etc/pki/rpm-gpg")
	if err := os.MkdirAll(keyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]string{"RPM-GPG-KEY-demo-rsa": w.rsa.PublicKeyFile, "RPM-GPG-KEY-demo-ed": w.ed.PublicKeyFile} {
		b, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(keyDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repoFile := fmt.Sprintf(`[demo]
name=Demo $releasever
baseurl=%s
enabled=1
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-demo-rsa
       file:///etc/pki/rpm-gpg/RPM-GPG-KEY-demo-ed

[demo-disabled]
baseurl=http://127.0.0.1:1/nothing-here/
enabled=0
`, w.srv.URL)
	healthDir := filepath.Join(w.root, "etc/rpmfleet/health.d")
	for dir, files := range map[string]map[string]string{
		filepath.Join(w.root, "etc/yum.repos.d"): {"demo.repo": repoFile},
		healthDir:                                {"10-app": "#!/bin/sh\ngrep -q 'app 2.1' \"$RPMFLEET_ROOT/usr/bin/demo-app\"\n"},
	} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := func(args ...string) result {
		return runAgent(t, append([]string{"apply", "--root", w.root, "--state-dir", w.stateDir}, args...)...)
	}

	r := run("--security", "--severity", "Critical")
	if r.code != 0 || !strings.Contains(r.stdout, "Nothing to apply") {
		t.Fatalf("--severity Critical: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = run("--security", "--min-free", "1152921504606846976")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "bytes free, the update needs") {
		t.Fatalf("no room: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, before, "no room on the root")

	r = run("--security", "--severity", "Important", "--json")
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var out struct {
		Cycle struct {
			Phase  string `json:"phase"`
			Health []struct {
				Check string `json:"check"`
				OK    bool   `json:"ok"`
			} `json:"health"`
			Reboot struct {
				Needed bool `json:"needed"`
			} `json:"reboot"`
		} `json:"cycle"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("apply --json: %v\n%s", err, r.stdout)
	}
	if out.Cycle.Phase != "committed" || len(out.Cycle.Health) != 1 || out.Cycle.Health[0].Check != filepath.Join(healthDir, "10-app") || !out.Cycle.Health[0].OK || out.Cycle.Reboot.Needed {
		t.Errorf("cycle: %+v", out.Cycle)
	}
	assertDB(t, w, after, "from the device's repo files")

	hist := runAgent(t, "history", "--state-dir", w.stateDir)
	if !strings.Contains(hist.stdout, "cycle 1") || !strings.Contains(hist.stdout, "failed") || !strings.Contains(hist.stdout, "cycle 2") || !strings.Contains(hist.stdout, "committed") ||
		!strings.Contains(hist.stdout, "demo-lib.x86_64  1.0-1 -> 1.1-1") {
		t.Errorf("history:\n%s", hist.stdout)
	}
	st := runAgent(t, "status", "--json", "--state-dir", w.stateDir)
	if !strings.Contains(st.stdout, `"phase": "committed"`) || !strings.Contains(st.stdout, `"active": false`) {
		t.Errorf("status --json:\n%s", st.stdout)
	}
}

// TestApplyChecksRepomdSignature: a repomd.xml.asc is checked against the
// pinned keys: one made by a pinned key is accepted, one made by another key
// stops apply before anything is planned or installed.
func TestApplyChecksRepomdSignature(t *testing.T) {
	w := newWorld(t, worldOpts{})
	sign := func(k *rpmtest.Key) {
		t.Helper()
		repomd := filepath.Join(w.repoDir, "repodata", "repomd.xml")
		out, err := exec.Command("gpg", "--homedir", k.Home, "--batch", "--yes", "--armor", "--detach-sign", "-u", k.Fingerprint, "-o", repomd+".asc", repomd).CombinedOutput()
		if err != nil {
			t.Fatalf("sign repomd.xml: %v\n%s", err, out)
		}
	}
	sign(rpmtest.NewKey(t, rpmtest.KeyRSA4096, "rpmfleet-apply-rogue"))
	r := w.apply(t, nil)
	if r.code != 1 || !strings.Contains(r.stderr, "bad repomd.xml signature") {
		t.Fatalf("repomd.xml signed by an unpinned key: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, before, "refused repomd.xml signature")

	sign(w.ed)
	r = w.apply(t, nil)
	if r.code != 0 {
		t.Fatalf("repomd.xml signed by a pinned key: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, after, "signed repomd.xml")
	if w.srv.Requests("/repodata/repomd.xml.asc") == 0 {
		t.Error("repomd.xml.asc was never fetched")
	}
}
