package daemon

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// The spool's attack tests (issue 11): whoever can drop a bundle tries to
// stop the daemon (a FIFO it would open and wait on forever), to make it
// read or write as root what is not the spool's (links), or to fill its
// memory or disk (huge files). Each planted bundle carries a plan signed for
// this device, so nothing but the attack can be the reason it is refused.

// secret is a file outside the spool, as /etc/shadow would be.
const secretText = "root:$6$not-for-the-spool$:19000:0:99999:7:::\n"

type spoolWorld struct {
	*world
	r      *running
	spool  string
	secret string
	// reloads asks the loop to reload its configuration: the probe that
	// it still answers.
	reloads chan struct{}
}

func startSpoolWorld(t *testing.T, opts ...func(*Options)) *spoolWorld {
	t.Helper()
	w := newWorld(t, worldOpts{})
	w.writeConfig(t, policyTOML("apply", ""))
	sw := &spoolWorld{world: w, spool: filepath.Join(w.stateDir, "spool"), secret: filepath.Join(w.dir, "shadow"), reloads: make(chan struct{}, 1)}
	if err := os.WriteFile(sw.secret, []byte(secretText), 0o600); err != nil {
		t.Fatal(err)
	}
	sw.r = w.start(t, append([]func(*Options){func(o *Options) { o.Reload = sw.reloads }}, opts...)...)
	waitFor(t, 30*time.Second, "the daemon idle", func() bool { return sw.r.Status().State == "idle" && !sw.r.Status().LastCheck.IsZero() })
	return sw
}

// signedPlan is the test advisory's plan, pinned, signed for this device.
func (sw *spoolWorld) signedPlan(t *testing.T) []byte {
	t.Helper()
	return sign(t, sw.signer, notice.KindPlan, deviceID, advisoryPlan(fileSHA256(t, sw.rpms["demo-lib-1.1"])), time.Hour)
}

// build makes a complete bundle, signed plan and copy of the repository, in
// a scratch folder, lets attack change it, and returns the folder.
func (sw *spoolWorld) build(t *testing.T, name string, plan []byte, attack func(t *testing.T, dir string)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", sw.repoDir, filepath.Join(dir, "repo")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "plan.json"), plan, 0o644); err != nil {
		t.Fatal(err)
	}
	if attack != nil {
		attack(t, dir)
	}
	return dir
}

// drop renames a built bundle into the spool, as the package doc asks.
func (sw *spoolWorld) drop(t *testing.T, dir string) {
	t.Helper()
	if err := os.Rename(dir, filepath.Join(sw.spool, filepath.Base(dir))); err != nil {
		t.Fatal(err)
	}
}

// answers checks the loop still handles events: a reload goes through.
func (sw *spoolWorld) answers(t *testing.T) {
	t.Helper()
	n := sw.r.Status().Reloads
	sw.reloads <- struct{}{}
	waitFor(t, 10*time.Second, "the loop to handle a reload", func() bool { return sw.r.Status().Reloads > n })
}

// untouched checks nothing was installed and the secret is as it was.
func (sw *spoolWorld) untouched(t *testing.T) {
	t.Helper()
	if got := sw.installed(t); !slices.Equal(got, []string{"demo-lib-1.0-1"}) {
		t.Errorf("installed %v from a refused bundle", got)
	}
	if b, err := os.ReadFile(sw.secret); err != nil || string(b) != secretText {
		t.Errorf("the file outside the spool now holds %q (%v)", b, err)
	}
}

// reason reads failed/NAME.reason.
func (sw *spoolWorld) reason(t *testing.T, sub, name string) string {
	t.Helper()
	p := filepath.Join(sw.spool, sub, name+".reason")
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatalf("no reason for %s: %v", name, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s is %v, want a regular file 0600", p, fi.Mode())
	}
	b, _ := os.ReadFile(p)
	return string(b)
}

func mkfifo(t *testing.T, p string) {
	t.Helper()
	os.RemoveAll(p)
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	os.RemoveAll(p)
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// sparse makes p a file of size bytes that takes no disk.
func sparse(t *testing.T, p string, size int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// TestSpoolRefusesWhatIsNotAFile plants, one at a time, bundles whose
// plan.json or repo/ is something other than regular files and folders, or
// too big; each is moved to failed/ with a reason naming what was wrong,
// nothing is installed, nothing outside the spool is read or changed, and
// the loop keeps answering. Then a good bundle still applies.
func TestSpoolRefusesWhatIsNotAFile(t *testing.T) {
	t.Parallel()
	sw := startSpoolWorld(t, func(o *Options) { o.SpoolMaxBytes = 1 << 30 })
	for i, tc := range []struct {
		name   string
		attack func(t *testing.T, dir string)
		want   string
	}{
		{"fifo-plan", func(t *testing.T, dir string) { mkfifo(t, filepath.Join(dir, "plan.json")) },
			"plan.json is a named pipe (FIFO), not a regular file"},
		{"symlink-plan", func(t *testing.T, dir string) {
			// The link leads to a good signed plan: still refused.
			good := filepath.Join(t.TempDir(), "plan.json")
			os.WriteFile(good, sw.signedPlan(t), 0o600)
			symlink(t, good, filepath.Join(dir, "plan.json"))
		}, "plan.json is a symbolic link, not a regular file"},
		{"symlink-plan-to-secret", func(t *testing.T, dir string) { symlink(t, sw.secret, filepath.Join(dir, "plan.json")) },
			"plan.json is a symbolic link, not a regular file"},
		{"folder-plan", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "plan.json"))
			os.Mkdir(filepath.Join(dir, "plan.json"), 0o755)
		}, "plan.json is a folder, not a regular file"},
		{"device-plan", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "plan.json"))
			// /dev/zero's numbers: reading it never ends.
			if err := unix.Mknod(filepath.Join(dir, "plan.json"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))); err != nil {
				t.Fatal(err)
			}
		}, "plan.json is a character device, not a regular file"},
		{"socket-plan", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "plan.json"))
			l, err := net.Listen("unix", filepath.Join(dir, "plan.json"))
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}, "plan.json is a socket, not a regular file"},
		{"huge-plan", func(t *testing.T, dir string) { sparse(t, filepath.Join(dir, "plan.json"), 1<<30) },
			"plan.json is 1073741824 bytes, more than the 4194304 bytes a signed plan may have"},
		{"no-repo", func(t *testing.T, dir string) { os.RemoveAll(filepath.Join(dir, "repo")) },
			"no repo/ folder beside plan.json"},
		{"symlink-repo", func(t *testing.T, dir string) { symlink(t, sw.repoDir, filepath.Join(dir, "repo")) },
			"repo is a symbolic link, not a folder"},
		{"secret-in-repo", func(t *testing.T, dir string) { symlink(t, sw.secret, filepath.Join(dir, "repo", "shadow.rpm")) },
			`"repo/shadow.rpm" is a symbolic link: a bundle holds only regular files and folders`},
		{"fifo-repomd", func(t *testing.T, dir string) { mkfifo(t, filepath.Join(dir, "repo", "repodata", "repomd.xml")) },
			`"repo/repodata/repomd.xml" is a named pipe (FIFO): a bundle holds only regular files and folders`},
		{"huge-repo", func(t *testing.T, dir string) { sparse(t, filepath.Join(dir, "repo", "big.rpm"), 2<<30) },
			"repo/ holds more than 1073741824 bytes"},
		{"deep-repo", func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, "repo", strings.Repeat("d/", 20)), 0o755)
		}, "folders nested more than 16 deep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw.drop(t, sw.build(t, tc.name, sw.signedPlan(t), tc.attack))
			waitFor(t, 20*time.Second, "the bundle refused", func() bool { return sw.r.Status().SpoolFailed == i+1 })
			if got := sw.reason(t, spoolFail, tc.name); !strings.Contains(got, tc.want) {
				t.Errorf("reason %q, want it to say %q", got, tc.want)
			}
			if _, err := os.Lstat(filepath.Join(sw.spool, tc.name)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the bundle is still in the spool: %v", err)
			}
			sw.untouched(t)
			sw.answers(t)
		})
	}
	t.Run("a good bundle still applies", func(t *testing.T) {
		sw.drop(t, sw.build(t, "good", sw.signedPlan(t), nil))
		waitFor(t, 60*time.Second, "the bundle applied", func() bool { return sw.r.Status().SpoolDone == 1 })
		if got := sw.installed(t); !slices.Equal(got, []string{"demo-lib-1.1-1"}) {
			t.Errorf("installed %v, want demo-lib-1.1-1 from the bundle", got)
		}
		if _, err := os.Stat(stagePath(sw.stateDir)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the stage outlived the bundle's cycle: %v", err)
		}
	})
}

// TestSpoolFIFOPlanStop is the regression of issue 11: a FIFO named
// plan.json, which nobody ever writes, used to block the loop in open(2),
// after which it answered nothing, SIGTERM included. The daemon must refuse
// it and stop when asked.
func TestSpoolFIFOPlanStop(t *testing.T) {
	t.Parallel()
	sw := startSpoolWorld(t)
	dir := filepath.Join(sw.spool, "site-fifo")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "repo"), 0o755); err != nil {
		t.Fatal(err)
	}
	mkfifo(t, filepath.Join(dir, "plan.json"))
	waitFor(t, 10*time.Second, "the FIFO bundle refused", func() bool { return sw.r.Status().SpoolFailed == 1 })
	sw.answers(t)
	// A liveness bound, not a speed figure: on the old code Run never
	// returned, and stop gives it 30 s.
	start := time.Now()
	sw.r.stop(t)
	t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
}

// TestSpoolNeverWritesThroughLinks: links planted where the daemon writes
// (the reason file's name; failed/ and done/ themselves) are not followed:
// the file and folder they lead to stay as they were, and the reason is
// written in the spool.
func TestSpoolNeverWritesThroughLinks(t *testing.T) {
	t.Parallel()
	sw := startSpoolWorld(t)
	tampered := func(t *testing.T) []byte {
		msg := sw.signedPlan(t)
		var env map[string]any
		json.Unmarshal(msg, &env)
		sig, err := base64.StdEncoding.DecodeString(env["sig"].(string))
		if err != nil || len(sig) == 0 {
			t.Fatalf("signature %q: %v", env["sig"], err)
		}
		sig[0] ^= 1
		env["sig"] = base64.StdEncoding.EncodeToString(sig)
		bad, _ := json.Marshal(env)
		return bad
	}
	outsideDir := filepath.Join(sw.dir, "etc")
	if err := os.Mkdir(outsideDir, 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("a link at NAME.reason", func(t *testing.T) {
		if err := os.MkdirAll(filepath.Join(sw.spool, spoolFail), 0o700); err != nil {
			t.Fatal(err)
		}
		planted := filepath.Join(sw.spool, spoolFail, "site-a.reason")
		symlink(t, sw.secret, planted)
		sw.drop(t, sw.build(t, "site-a", tampered(t), nil))
		waitFor(t, 20*time.Second, "the bundle refused", func() bool { return sw.r.Status().SpoolFailed == 1 })
		sw.untouched(t)
		if target, err := os.Readlink(planted); err != nil || target != sw.secret {
			t.Errorf("the planted link is now %q, %v", target, err)
		}
		reasons, _ := filepath.Glob(filepath.Join(sw.spool, spoolFail, "site-a.*.reason"))
		if len(reasons) != 1 {
			t.Fatalf("reasons %v, want one beside the planted link", reasons)
		}
		name := strings.TrimSuffix(filepath.Base(reasons[0]), ".reason")
		if got := sw.reason(t, spoolFail, name); !strings.Contains(got, "bad signature") {
			t.Errorf("reason %q, want the signature named", got)
		}
	})
	for i, sub := range []string{spoolFail, spoolDone} {
		t.Run(sub+"/ is a link", func(t *testing.T) {
			os.RemoveAll(filepath.Join(sw.spool, sub))
			symlink(t, outsideDir, filepath.Join(sw.spool, sub))
			plan := tampered(t)
			if sub == spoolDone {
				// A good plan with nothing in it goes to done/.
				plan = sign(t, sw.signer, notice.KindPlan, deviceID, protocol.Plan{}, time.Hour)
			}
			name := "site-link-" + sub
			sw.drop(t, sw.build(t, name, plan, nil))
			waitFor(t, 20*time.Second, "the bundle moved", func() bool {
				st := sw.r.Status()
				return st.SpoolFailed+st.SpoolDone == 2+i
			})
			if des, _ := os.ReadDir(outsideDir); len(des) != 0 {
				t.Errorf("the folder %s/ led to got %v", sub, des)
			}
			fi, err := os.Lstat(filepath.Join(sw.spool, sub))
			if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
				t.Fatalf("%s/ is %v (%v), want a real folder 0700", sub, fi, err)
			}
			if fi, err := os.Lstat(filepath.Join(sw.spool, sub, name)); err != nil || !fi.IsDir() {
				t.Errorf("the bundle in %s/: %v, %v", sub, fi, err)
			}
			sw.reason(t, sub, name)
			aside, _ := filepath.Glob(filepath.Join(sw.spool, "."+sub+".not-a-folder.*"))
			if len(aside) != 1 {
				t.Fatalf("set aside %v, want the link", aside)
			}
			if target, err := os.Readlink(aside[0]); err != nil || target != outsideDir {
				t.Errorf("the link set aside leads to %q (%v)", target, err)
			}
			os.Remove(aside[0])
			sw.untouched(t)
		})
	}
}

// TestSpoolEntriesThatAreNotFolders: a link in the spool leading to a
// complete, validly signed bundle elsewhere, and a FIFO, are moved to
// failed/ as they are (the link, not what it leads to), with a reason.
func TestSpoolEntriesThatAreNotFolders(t *testing.T) {
	t.Parallel()
	sw := startSpoolWorld(t)
	elsewhere := sw.build(t, "elsewhere", sw.signedPlan(t), nil)
	symlink(t, elsewhere, filepath.Join(sw.spool, "linked"))
	mkfifo(t, filepath.Join(sw.spool, "pipe"))
	waitFor(t, 20*time.Second, "both refused", func() bool { return sw.r.Status().SpoolFailed == 2 })
	for name, want := range map[string]string{
		"linked": `"linked" is a symbolic link, not a bundle folder`,
		"pipe":   `"pipe" is a named pipe (FIFO), not a bundle folder`,
	} {
		if got := sw.reason(t, spoolFail, name); !strings.Contains(got, want) {
			t.Errorf("reason %q, want %q", got, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(sw.spool, spoolFail, "linked")); err != nil || target != elsewhere {
		t.Errorf("failed/linked is %q (%v), want the link itself", target, err)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "plan.json")); err != nil {
		t.Errorf("the bundle the link led to was changed: %v", err)
	}
	sw.untouched(t)
	sw.answers(t)
}

// TestSpoolFolderOwnership: a spool folder open to others is set to 0700
// (and says so); one that belongs to another user is not read at all.
func TestSpoolFolderOwnership(t *testing.T) {
	t.Parallel()
	sw := startSpoolWorld(t)
	t.Run("0777 tightened", func(t *testing.T) {
		if err := os.Chmod(sw.spool, 0o777); err != nil {
			t.Fatal(err)
		}
		sw.drop(t, sw.build(t, "empty-plan", sign(t, sw.signer, notice.KindPlan, deviceID, protocol.Plan{}, time.Hour), nil))
		waitFor(t, 20*time.Second, "the bundle done", func() bool { return sw.r.Status().SpoolDone == 1 })
		if fi, err := os.Stat(sw.spool); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("spool folder %v, %v; want 0700", fi.Mode(), err)
		}
		if !strings.Contains(sw.r.log.String(), "spool folder was open to others; set to 0700") {
			t.Errorf("the tightening was not logged:\n%s", sw.r.log.String())
		}
	})
	t.Run("another user's", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Fatal("this test chowns the spool folder: run it as root, as the agent runs")
		}
		if err := os.Chown(sw.spool, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		sw.drop(t, sw.build(t, "not-read", sw.signedPlan(t), nil))
		waitFor(t, 20*time.Second, "the refusal logged", func() bool {
			return strings.Contains(sw.r.log.String(), "statedir: owned by another user")
		})
		if _, err := os.Stat(filepath.Join(sw.spool, "not-read", "plan.json")); err != nil {
			t.Errorf("the bundle in another user's spool was touched: %v", err)
		}
		if st := sw.r.Status(); st.SpoolDone != 1 || st.SpoolFailed != 0 {
			t.Errorf("spool counts %d done, %d failed; want the first test's alone", st.SpoolDone, st.SpoolFailed)
		}
		sw.untouched(t)
		sw.answers(t)
	})
}
