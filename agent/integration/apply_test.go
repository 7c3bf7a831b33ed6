package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/rpmtest"
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
