package integration

// Issue 11's agent-side attacks and permissions, on the real rpmfleet-agent
// run process: a hostile spool must not stop it, and under umask 0 its
// state must still be readable by root alone.

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestAgentSpoolFIFO is the regression of issue 11 on the real binary: a
// FIFO named plan.json, which nobody ever writes, used to block the daemon's
// loop in open(2): it reported nothing more and ignored SIGTERM. Planted
// with a FIFO repomd.xml in another bundle's repo/ and a plan.json that is
// a link to a secret, the agent must refuse all three with their reasons,
// keep reporting (a package installed by hand reaches the server), and
// stop on SIGTERM.
func TestAgentSpoolFIFO(t *testing.T) {
	repo := newFleetRepo(t)
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), "--mqtt-listen", "off")
	dumpOnFailure(t, srv)
	a := startAgent(t, srv, repo, "pi-spool", repo.deviceRoot(t), agentConfig{Mode: "apply"})
	waitReported(t, srv, a)
	before := device(t, srv, a.name).Packages

	secret := filepath.Join(t.TempDir(), "shadow")
	const secretText = "root:$6$not-for-the-spool$:19000:0:99999:7:::\n"
	if err := os.WriteFile(secret, []byte(secretText), 0o600); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(a.state, "spool")
	bundle := func(name string, plant func(dir string) error) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), name)
		err := os.MkdirAll(filepath.Join(dir, "repo", "repodata"), 0o755)
		if err == nil {
			err = plant(dir)
		}
		if err == nil {
			err = os.Rename(dir, filepath.Join(spool, name))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	mark := a.log.Len()
	bundle("a-fifo-plan", func(dir string) error { return syscall.Mkfifo(filepath.Join(dir, "plan.json"), 0o644) })
	bundle("b-fifo-repomd", func(dir string) error {
		if err := os.WriteFile(filepath.Join(dir, "plan.json"), []byte("{}"), 0o644); err != nil {
			return err
		}
		return syscall.Mkfifo(filepath.Join(dir, "repo", "repodata", "repomd.xml"), 0o644)
	})
	bundle("c-linked-plan", func(dir string) error { return os.Symlink(secret, filepath.Join(dir, "plan.json")) })

	for name, want := range map[string]string{
		"a-fifo-plan":   "plan.json is a named pipe (FIFO), not a regular file",
		"b-fifo-repomd": `"repo/repodata/repomd.xml" is a named pipe (FIFO)`,
		"c-linked-plan": "plan.json is a symbolic link, not a regular file",
	} {
		a.waitLog(t, mark, 30*time.Second, "spool bundle moved", "bundle="+name, "to=failed")
		b, err := os.ReadFile(filepath.Join(spool, "failed", name+".reason"))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: reason %q (%v), want it to say %q", name, b, err, want)
		}
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != secretText {
		t.Errorf("the file the link led to now holds %q (%v)", b, err)
	}

	// Still answering: a package installed by hand is reported.
	rpmIn(t, a.root, "-i", repo.rpms["demo-tool-1.0"])
	waitDevice(t, srv, a.name, 30*time.Second, "demo-tool reported", func(d protocol.Device) bool { return d.Packages == before+1 })

	// And it stops when told: a liveness bound, not a speed figure (the
	// old agent never stopped).
	start := time.Now()
	a.signal(t, syscall.SIGTERM)
	a.waitExit(t, 10*time.Second)
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}

// TestAgentStateModesUnderUmask0: with umask 0 in force (as a careless
// unit file or shell would leave it) and a state folder that already
// exists with mode 0777, a whole life of the agent (enrol, a daemon that
// reports, fetches a signed plan and applies it from an HTTP repository, a
// report --once) leaves every folder of the state 0700 and every file
// 0600: nothing in it is readable by anyone but root.
func TestAgentStateModesUnderUmask0(t *testing.T) {
	old := syscall.Umask(0) // the agent processes inherit it; no test here runs in parallel
	defer syscall.Umask(old)

	repo := newFleetRepo(t)
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), "--mqtt-listen", "off")
	dumpOnFailure(t, srv)
	importFix(t, srv, repo)

	dir := t.TempDir()
	a := &agent{name: "pi-umask", root: repo.deviceRoot(t), state: filepath.Join(dir, "state"), cfgPath: filepath.Join(dir, "agent.toml"),
		server: srv.url, repo: repo, log: &syncBuffer{}}
	if err := os.Mkdir(a.state, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(a.state, 0o777); err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(must(t, adminEnv(srv), "rpmfleet", "enroll-token", "create").stdout)
	must(t, nil, "rpmfleet-agent", "enroll", "--server", srv.url, "--token", tok, "--name", a.name, "--state-dir", a.state, "--root", a.root)
	if fi, err := os.Stat(a.state); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("after enroll the state folder is %v (%v), want 0700", fi.Mode(), err)
	}
	b, err := os.ReadFile(filepath.Join(a.state, "credential.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cred struct {
		DeviceID   string `json:"device_id"`
		Credential string `json:"credential"`
	}
	if err := json.Unmarshal(b, &cred); err != nil {
		t.Fatal(err)
	}
	a.id, a.credential = cred.DeviceID, cred.Credential

	// No broker: the plan comes with a poll, every 3 s, once the first
	// report has told the server what the device holds.
	a.writeConfig(t, agentConfig{Mode: "apply", Window: "open", Poll: "3s"})
	a.start(t)
	a.waitInstalled(t, 60*time.Second, "demo-lib", newLib)
	waitDevice(t, srv, a.name, 30*time.Second, "patched", func(d protocol.Device) bool { return statusOf(d) != protocol.StatusAffected })
	a.stop(t)
	must(t, nil, "rpmfleet-agent", "report", "--once", "--root", a.root, "--state-dir", a.state)

	// What the life above must have written, so the walk below judges
	// every kind of file the agent keeps.
	for _, p := range []string{
		"credential.json", "inventory-acked.json", "cycles-reported.json", "notice-guard.json", "plan-last.json",
		"state.json", "lock", "cycles/000001.json", "packages", "reports", "reports/.lock", "reports/bad", "metadata", "spool",
	} {
		if _, err := os.Lstat(filepath.Join(a.state, p)); err != nil {
			t.Errorf("the agent's life left no %s: %v", p, err)
		}
	}
	pkgs, _ := filepath.Glob(filepath.Join(a.state, "packages", "*.rpm"))
	if len(pkgs) == 0 {
		t.Error("no downloaded package in packages/")
	}
	var bad []string
	n := 0
	err = filepath.WalkDir(a.state, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n++
		fi, err := de.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a.state, p)
		want := fs.FileMode(0o600)
		switch {
		case fi.IsDir():
			want = fs.ModeDir | 0o700
		case !fi.Mode().IsRegular():
			bad = append(bad, fmt.Sprintf("%s is %v, not a file or folder", rel, fi.Mode()))
			return nil
		}
		if fi.Mode() != want {
			bad = append(bad, fmt.Sprintf("%s is %v, want %v", rel, fi.Mode(), want))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(bad)
	for _, b := range bad {
		t.Error(b)
	}
	t.Logf("%d files and folders checked", n)
}
