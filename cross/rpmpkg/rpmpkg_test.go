package rpmpkg

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/cross/internal/crosstest"
)

// agents caches one agent build per target and version for the whole test
// binary: a build is the slow part of these tests.
var (
	agentsMu sync.Mutex // guards agents and agentsDir
	agents   = map[string]string{}
	agentDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if agentDir != "" {
		os.RemoveAll(agentDir)
	}
	os.Exit(code)
}

func agent(t *testing.T, target crosstest.Target, version string) string {
	t.Helper()
	agentsMu.Lock()
	defer agentsMu.Unlock()
	key := target.GOARCH + target.GOARM + "@" + version
	if p, ok := agents[key]; ok {
		return p
	}
	if agentDir == "" {
		d, err := os.MkdirTemp("", "rpmpkg-agents-")
		if err != nil {
			t.Fatal(err)
		}
		agentDir = d
	}
	dir := filepath.Join(agentDir, version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := crosstest.BuildAgent(t, dir, target, version)
	agents[key] = p
	return p
}

// build packages a freshly built agent for arch, signed with key if given.
func build(t *testing.T, arch string, target crosstest.Target, version, key string) string {
	t.Helper()
	bin := agent(t, target, version)
	// The man page comes from a build that runs here.
	native := agent(t, crosstest.Target{GOARCH: "amd64"}, version)
	pkg, err := Build(context.Background(), Options{
		Name: "rpmfleet-agent", Version: version, Release: "1", Arch: arch,
		Binaries: []string{bin}, HelpFrom: native, SigningKey: key,
		OutDir: t.TempDir(), MTime: time.Unix(1764000000, 0),
	})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return pkg
}

// rpmIn runs the real rpm on a throwaway root with the rpmdb where EL keeps
// it (Debian's rpm defaults to ~/.rpmdb).
func rpmIn(t *testing.T, root string, args ...string) string {
	t.Helper()
	crosstest.Tool(t, "rpm")
	return crosstest.Run(t, root, nil, "rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm"}, args...)...)
}

// wantFiles is what the agent package installs: mode and whether rpm treats
// the file as %config(noreplace).
var wantFiles = []struct {
	path     string
	mode     string
	noreplac bool
}{
	{"/etc/rpmfleet", "40755", false},
	{"/etc/rpmfleet/agent.toml", "100640", true},
	{"/usr/bin/rpmfleet-agent", "100755", false},
	{"/usr/lib/systemd/system/rpmfleet-agent.service", "100644", false},
	{"/usr/share/doc/rpmfleet-agent", "40755", false},
	{"/usr/share/doc/rpmfleet-agent/agent.toml.example", "100644", false},
	{"/usr/share/man/man8/rpmfleet-agent.8", "100644", false},
}

// checkInstalled compares rpm's own view (rpm -q --dump, -qc, FILEFLAGS) and
// the files on disk with wantFiles.
func checkInstalled(t *testing.T, root string) {
	t.Helper()
	dump := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(rpmIn(t, root, "-q", "--dump", "rpmfleet-agent")), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 {
			t.Fatalf("rpm -q --dump: short line %q", line)
		}
		dump[f[0]] = f
	}
	flags := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(rpmIn(t, root, "-q", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", "rpmfleet-agent")), "\n") {
		p, fl, _ := strings.Cut(line, " ")
		flags[p] = strings.TrimSpace(fl)
	}
	if len(dump) != len(wantFiles) {
		t.Errorf("package holds %d paths, want %d: %v", len(dump), len(wantFiles), dump)
	}
	for _, w := range wantFiles {
		f, ok := dump[w.path]
		if !ok {
			t.Errorf("%s: not in the package", w.path)
			continue
		}
		// --dump: path size mtime digest mode owner group isconfig isdoc ...
		if strings.TrimLeft(f[4], "0") != w.mode || f[5] != "root" || f[6] != "root" {
			t.Errorf("%s: mode %s owner %s:%s, want %s root:root", w.path, f[4], f[5], f[6], w.mode)
		}
		if got := f[7] == "1" && flags[w.path] == "cn"; got != w.noreplac {
			t.Errorf("%s: config(noreplace) = %v (isconfig %s, flags %q), want %v", w.path, got, f[7], flags[w.path], w.noreplac)
		}
		fi, err := os.Stat(filepath.Join(root, w.path))
		if err != nil {
			t.Errorf("%s: not on disk: %v", w.path, err)
			continue
		}
		if w.mode == "100755" && fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: on disk mode %v", w.path, fi.Mode())
		}
	}
	if got := strings.TrimSpace(rpmIn(t, root, "-qc", "rpmfleet-agent")); got != "/etc/rpmfleet/agent.toml" {
		t.Errorf("rpm -qc = %q, want only /etc/rpmfleet/agent.toml", got)
	}
}

// leftovers lists the regular files and the directories under root that are
// not rpm's own database and not in keep.
func leftovers(t *testing.T, root string, keep map[string]bool) []string {
	t.Helper()
	var left []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		if rel == "/" || strings.HasPrefix(rel, "/var/lib/rpm") || keep[rel] {
			return nil
		}
		left = append(left, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(left)
	return left
}

// parentDirs are the directories rpm creates for the package's files but
// that, on a real system, belong to other packages (filesystem, systemd,
// man-db): rpm rightly leaves them.
var parentDirs = map[string]bool{
	"/etc": true, "/usr": true, "/usr/bin": true, "/usr/lib": true, "/usr/lib/systemd": true,
	"/usr/lib/systemd/system": true, "/usr/share": true, "/usr/share/doc": true,
	"/usr/share/man": true, "/usr/share/man/man8": true, "/var": true, "/var/lib": true,
	// rpm's transaction lock and temporary files.
	"/var/tmp": true, "/tmp": true,
}

// TestInstallUpgradeErase installs the x86_64 package into a bare root with
// the real rpm, checks files, modes and config flags, upgrades to a newer
// build with a locally modified config, and erases. Scriptlets are off: a
// bare root has no /bin/sh (TestScriptletsUnderRPM runs them).
func TestInstallUpgradeErase(t *testing.T) {
	amd64 := crosstest.Target{GOARCH: "amd64"}
	v1 := build(t, "x86_64", amd64, "1.0.0", "")
	v2 := build(t, "x86_64", amd64, "1.1.0", "")
	root := t.TempDir()

	rpmIn(t, root, "-i", "--noscripts", "--nodeps", v1)
	checkInstalled(t, root)
	if got := crosstest.Run(t, root, nil, filepath.Join(root, "usr/bin/rpmfleet-agent"), "version"); got != "rpmfleet-agent 1.0.0\n" {
		t.Errorf("installed agent says %q", got)
	}

	conf := filepath.Join(root, "etc/rpmfleet/agent.toml")
	orig, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	edited := append(bytes.Clone(orig), []byte("\n# edited on the device\nserver = \"https://fleet.example\"\n")...)
	if err := os.WriteFile(conf, edited, 0o640); err != nil {
		t.Fatal(err)
	}

	rpmIn(t, root, "-U", "--noscripts", "--nodeps", v2)
	if got := strings.TrimSpace(rpmIn(t, root, "-q", "rpmfleet-agent")); got != "rpmfleet-agent-1.1.0-1.x86_64" {
		t.Fatalf("after upgrade rpm -q says %q", got)
	}
	checkInstalled(t, root)
	if got := crosstest.Run(t, root, nil, filepath.Join(root, "usr/bin/rpmfleet-agent"), "version"); got != "rpmfleet-agent 1.1.0\n" {
		t.Errorf("upgraded agent says %q", got)
	}
	if got, _ := os.ReadFile(conf); !bytes.Equal(got, edited) {
		t.Errorf("upgrade replaced the edited config:\n%s", got)
	}

	rpmIn(t, root, "-e", "--noscripts", "rpmfleet-agent")
	if out, err := crosstest.Command(root, nil, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-q", "rpmfleet-agent").CombinedOutput(); err == nil {
		t.Errorf("still installed after erase: %s", out)
	}
	// The edited config is kept as .rpmsave, and so its directory stays.
	keep := map[string]bool{"/etc/rpmfleet": true, "/etc/rpmfleet/agent.toml.rpmsave": true}
	for d := range parentDirs {
		keep[d] = true
	}
	if left := leftovers(t, root, keep); len(left) > 0 {
		t.Errorf("left behind after erase: %v", left)
	}
	if got, err := os.ReadFile(conf + ".rpmsave"); err != nil || !bytes.Equal(got, edited) {
		t.Errorf("edited config not saved as .rpmsave (%v):\n%s", err, got)
	}
}

// TestInstallCrossArches installs the aarch64 and armv7hl packages (with
// --ignorearch, on this x86_64 machine), checks them the same way and that
// the binary inside is the one built for that arch, then erases them: with
// an untouched config nothing at all is left.
func TestInstallCrossArches(t *testing.T) {
	tests := []struct {
		arch   string
		target crosstest.Target
		elf    string
	}{
		{"aarch64", crosstest.Target{GOARCH: "arm64"}, "ARM aarch64"},
		{"armv7hl", crosstest.Target{GOARCH: "arm", GOARM: "7"}, "32-bit LSB executable, ARM"},
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			pkg := build(t, tt.arch, tt.target, "1.0.0", "")
			if want := "rpmfleet-agent-1.0.0-1." + tt.arch + ".rpm"; filepath.Base(pkg) != want {
				t.Errorf("package named %s, want %s", filepath.Base(pkg), want)
			}
			root := t.TempDir()
			rpmIn(t, root, "-i", "--noscripts", "--nodeps", "--ignorearch", pkg)
			checkInstalled(t, root)
			if got := strings.TrimSpace(rpmIn(t, root, "-q", "--qf", "%{ARCH}", "rpmfleet-agent")); got != tt.arch {
				t.Errorf("rpm arch %q", got)
			}
			crosstest.Tool(t, "file")
			if got := crosstest.Run(t, root, nil, "file", "-b", filepath.Join(root, "usr/bin/rpmfleet-agent")); !strings.Contains(got, tt.elf) || !strings.Contains(got, "statically linked") {
				t.Errorf("installed binary is %q, want a static %s", got, tt.elf)
			}
			rpmIn(t, root, "-e", "--noscripts", "rpmfleet-agent")
			if left := leftovers(t, root, parentDirs); len(left) > 0 {
				t.Errorf("left behind after erase: %v", left)
			}
		})
	}
}

// giveShell copies the host's /bin/sh and the shared libraries it loads into
// root, so rpm can run scriptlets chrooted there.
func giveShell(t *testing.T, root string) {
	t.Helper()
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{sh}
	out := crosstest.Run(t, root, nil, crosstest.Tool(t, "ldd"), sh)
	for _, m := range regexp.MustCompile(`(?m)(/\S+) \(0x`).FindAllStringSubmatch(out, -1) {
		files = append(files, m[1])
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, f)
		if f == sh {
			dst = filepath.Join(root, "bin/sh")
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Redirections to /dev/null need /dev; a plain file stands in.
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// fakeSystemctl is a stand-in for systemctl, which needs a running systemd
// that cannot run here: it appends its arguments to $log and answers
// is-system-running with the contents of $state ("offline" if absent),
// exiting as systemctl does (0 only for "running"). If $fail exists every
// other call fails.
const fakeSystemctl = `#!/bin/sh
echo "$*" >> @LOG@
if [ "$1" = is-system-running ]; then
  s=offline; [ -f @STATE@ ] && read s < @STATE@
  echo "$s"; [ "$s" = running ]; exit
fi
[ -f @FAIL@ ] && exit 1
exit 0
`

func writeFakeSystemctl(t *testing.T, path, log, state, fail string) {
	t.Helper()
	s := strings.NewReplacer("@LOG@", log, "@STATE@", state, "@FAIL@", fail).Replace(fakeSystemctl)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o755); err != nil {
		t.Fatal(err)
	}
}

// calls returns the recorded systemctl calls other than is-system-running,
// and empties the log.
func calls(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	os.Remove(log)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" && l != "is-system-running" {
			out = append(out, l)
		}
	}
	return out
}

// TestScriptletsUnderRPM lets the real rpm run the package's scriptlets in a
// root that has a shell and a fake systemctl (systemd itself cannot run
// here), so $1 is what rpm really passes on install, upgrade and erase.
func TestScriptletsUnderRPM(t *testing.T) {
	amd64 := crosstest.Target{GOARCH: "amd64"}
	v1 := build(t, "x86_64", amd64, "1.0.0", "")
	v2 := build(t, "x86_64", amd64, "1.1.0", "")
	root := t.TempDir()
	giveShell(t, root)
	// Paths as the chrooted scriptlets see them.
	writeFakeSystemctl(t, filepath.Join(root, "usr/bin/systemctl"), "/systemctl.log", "/systemd-state", "/systemctl-fail")
	log := filepath.Join(root, "systemctl.log")
	setState := func(s string) {
		if err := os.WriteFile(filepath.Join(root, "systemd-state"), []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	unit := "rpmfleet-agent.service"

	steps := []struct {
		name  string
		state string
		args  []string
		want  []string
	}{
		{"first install in an image build (offline)", "offline", []string{"-i", "--nodeps", v1},
			[]string{"--no-reload preset " + unit}},
		{"upgrade on a running system", "running", []string{"-U", "--nodeps", v2},
			// new %post $1=2, old %preun $1=1 (nothing), old %postun $1=1
			[]string{"daemon-reload", "daemon-reload", "try-restart " + unit}},
		{"erase on a running system", "running", []string{"-e", "rpmfleet-agent"},
			[]string{"--no-reload disable " + unit, "stop " + unit, "daemon-reload"}},
		{"reinstall on a degraded system", "degraded", []string{"-i", "--nodeps", v1},
			[]string{"daemon-reload", "--no-reload preset " + unit}},
		{"erase in a chroot (offline)", "offline", []string{"-e", "rpmfleet-agent"},
			[]string{"--no-reload disable " + unit}},
	}
	for _, s := range steps {
		setState(s.state)
		out, err := crosstest.Command(root, nil, "rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm"}, s.args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: rpm %v: %v\n%s", s.name, s.args, err, out)
		}
		if bytes.Contains(out, []byte("scriptlet failed")) {
			t.Errorf("%s: %s", s.name, out)
		}
		if got := calls(t, log); strings.Join(got, "|") != strings.Join(s.want, "|") {
			t.Errorf("%s: systemctl calls\n got %q\nwant %q", s.name, got, s.want)
		}
	}
}

// TestScriptletsAlwaysSucceed runs each scriptlet text, as the package
// carries it, with /bin/sh for every $1, with systemctl failing, and with no
// systemctl at all: a scriptlet failure would fail the user's dnf
// transaction, so each must exit 0.
func TestScriptletsAlwaysSucceed(t *testing.T) {
	pkg := build(t, "x86_64", crosstest.Target{GOARCH: "amd64"}, "1.0.0", "")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	log, state, fail := filepath.Join(dir, "log"), filepath.Join(dir, "state"), filepath.Join(dir, "fail")
	writeFakeSystemctl(t, filepath.Join(bin, "systemctl"), log, state, fail)
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte("running\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fail, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"POSTIN", "PREUN", "POSTUN"} {
		script := crosstest.Run(t, dir, nil, "rpm", "-qp", "--qf", "%{"+tag+"}", pkg)
		if !strings.Contains(script, "rpmfleet-agent.service") {
			t.Fatalf("%s scriptlet does not name the unit:\n%s", tag, script)
		}
		for _, path := range []string{bin, empty} {
			for _, arg := range []string{"0", "1", "2"} {
				t.Run(tag+"/"+filepath.Base(path)+"/"+arg, func(t *testing.T) {
					cmd := exec.Command("/bin/sh", "-c", script, "scriptlet", arg)
					cmd.Env = []string{"PATH=" + path}
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Errorf("exit %v\n%s", err, out)
					}
				})
			}
		}
	}
	if len(calls(t, log)) == 0 {
		t.Error("the failing fake systemctl was never called")
	}
}

// genKey makes a throwaway signing key with the real gpg and returns the
// armored private and public key files.
func genKey(t *testing.T, algo string) (priv, pub string) {
	t.Helper()
	gpg := crosstest.Tool(t, "gpg")
	home := t.TempDir()
	env := []string{"GNUPGHOME=" + home}
	// gpg starts a gpg-agent for this home; stop it when the test ends.
	t.Cleanup(func() { crosstest.Command(home, env, "gpgconf", "--kill", "gpg-agent").Run() })
	uid := "rpmfleet test signing key <" + algo + "@test.invalid>"
	crosstest.Run(t, home, env, gpg, "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
		"--quick-gen-key", uid, algo, "sign", "never")
	priv, pub = filepath.Join(home, "priv.asc"), filepath.Join(home, "pub.asc")
	if err := os.WriteFile(priv, []byte(crosstest.Run(t, home, env, gpg, "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--armor", "--export-secret-keys", uid)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, []byte(crosstest.Run(t, home, env, gpg, "--batch", "--armor", "--export", uid)), 0o644); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// TestSignedPackageVerifies signs with throwaway RSA 4096 and Ed25519 keys
// and lets the real rpmkeys check the result: OK with the key imported, not
// OK without it, and not OK once a byte of the payload is changed.
func TestSignedPackageVerifies(t *testing.T) {
	rpmkeys := crosstest.Tool(t, "rpmkeys")
	for _, algo := range []string{"rsa4096", "ed25519"} {
		t.Run(algo, func(t *testing.T) {
			priv, pub := genKey(t, algo)
			pkg := build(t, "aarch64", crosstest.Target{GOARCH: "arm64"}, "1.0.0", priv)
			db := t.TempDir()
			check := func() (string, error) {
				out, err := exec.Command(rpmkeys, "--dbpath", db, "-K", pkg).CombinedOutput()
				return string(out), err
			}
			if out, err := check(); err == nil || strings.Contains(out, "signatures OK") {
				t.Errorf("verifies without the key imported: %v %s", err, out)
			}
			crosstest.Run(t, db, nil, rpmkeys, "--dbpath", db, "--import", pub)
			out, err := check()
			if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "digests signatures OK") {
				t.Fatalf("rpmkeys -K: %v %s", err, out)
			}
			b, err := os.ReadFile(pkg)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-100] ^= 0xff
			if err := os.WriteFile(pkg, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := check(); err == nil || strings.Contains(out, "digests signatures OK") {
				t.Errorf("tampered package verifies: %s", out)
			}
		})
	}
}

func TestBuildRejectsBadOptions(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "rpmfleet-agent")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ok := Options{Name: "rpmfleet-agent", Version: "1.0", Release: "1", Arch: "x86_64", Binaries: []string{bin}, OutDir: t.TempDir()}
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"dash in version", func(o *Options) { o.Version = "1.0-rc1" }, `version "1.0-rc1"`},
		{"unknown package", func(o *Options) { o.Name = "rpmfleet-gui" }, `unknown package "rpmfleet-gui"`},
		{"no arch", func(o *Options) { o.Arch = "" }, "arch, binaries and output directory are required"},
		{"missing binary", func(o *Options) { o.Binaries = []string{bin + ".missing"} }, "rpmfleet-agent.missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			_, err := Build(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := Build(context.Background(), ok); err != nil {
		t.Errorf("the valid options fail: %v", err)
	}
}

func TestCommands(t *testing.T) {
	help := "rpmfleet-agent 1.0: keeps this device patched.\n\nUsage: rpmfleet-agent COMMAND [flags]\n\nCommands:\n" +
		"  check      list the advisories that apply\n  help       list the commands\n  version    print the version\n\n" +
		"Run 'rpmfleet-agent COMMAND -h' for a command's flags.\n"
	if got := strings.Join(Commands(help), ","); got != "check,version" {
		t.Errorf("Commands = %q", got)
	}
	if got := Commands("no commands here\n"); got != nil {
		t.Errorf("Commands of a text without a list = %q", got)
	}
}

// TestManPageRendersWithMan renders a generated page with the real man
// (through groff) and checks that roff control characters in the help text
// are shown, not obeyed.
func TestManPageRendersWithMan(t *testing.T) {
	man := crosstest.Tool(t, "man")
	help := "rpmfleet-agent 1.0: keeps this device patched.\n\nCommands:\n  check  list \\n advisories\n\n"
	page := ManPage("rpmfleet-agent", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), help,
		[]string{"check"}, []string{"Usage: rpmfleet-agent check\n.TH injected\n  -json\tprint JSON\n"})
	f := filepath.Join(t.TempDir(), "rpmfleet-agent.8")
	if err := os.WriteFile(f, page, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := crosstest.Command(t.TempDir(), []string{"MANWIDTH=100", "MAN_KEEP_FORMATTING=0", "LC_ALL=C"}, man, "-l", f)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("man -l: %v", err)
	}
	text := regexp.MustCompile(".\b").ReplaceAllString(string(out), "")
	for _, want := range []string{"rpmfleet-agent - keeps this device patched", "2026-01-02", `list \n advisories`, ".TH injected", "-json", "/etc/rpmfleet/agent.toml"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered page lacks %q:\n%s", want, text)
		}
	}
}
