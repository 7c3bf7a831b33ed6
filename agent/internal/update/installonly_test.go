package update

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rpmfleet/rpmfleet/agent/internal/rpmcmd"
	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

func kernelAt(vr string) inventory.Package {
	return inventory.Package{Name: "raspberrypi2-kernel4", EVR: rpmver.MustParseEVR(vr), Arch: "aarch64"}
}

// TestInstallonlyRemovals: what the install-only limit erases, oldest
// first, never the running kernel nor the one just installed.
func TestInstallonlyRemovals(t *testing.T) {
	t.Parallel()
	k := func(vrs ...string) []inventory.Package {
		var out []inventory.Package
		for _, vr := range vrs {
			out = append(out, kernelAt(vr))
		}
		return out
	}
	newest := []rpmver.EVR{rpmver.MustParseEVR("6.1.31-v8.1.el9")}
	tests := []struct {
		name      string
		installed []inventory.Package
		limit     int
		running   string
		keep      []rpmver.EVR
		want      []string
	}{
		{"within the limit: nothing", k("6.1.21-v8.1.el9", "6.1.31-v8.1.el9"), 3, "6.1.21-v8.1.el9", newest, nil},
		{"one over: the oldest goes", k("6.1.31-v8.1.el9", "6.1.19-v8.1.el9", "6.1.21-v8.1.el9", "6.1.25-v8.1.el9"), 3, "6.1.25-v8.1.el9", newest,
			[]string{"6.1.19-v8.1.el9"}},
		{"the oldest runs: the next goes", k("6.1.19-v8.1.el9", "6.1.21-v8.1.el9", "6.1.31-v8.1.el9"), 2, "6.1.19-v8.1.el9", newest,
			[]string{"6.1.21-v8.1.el9"}},
		{"EL release with arch and a variant", k("5.14.0-70.13.1.el9_0", "5.14.0-162.6.1.el9_1", "5.14.0-362.8.1.el9_3"), 2,
			"5.14.0-70.13.1.el9_0.aarch64+debug", []rpmver.EVR{rpmver.MustParseEVR("5.14.0-362.8.1.el9_3")}, []string{"5.14.0-162.6.1.el9_1"}},
		{"running and new protected beyond the limit", k("6.1.19-v8.1.el9", "6.1.31-v8.1.el9"), 1, "6.1.19-v8.1.el9", newest, nil},
		{"no running kernel known: oldest goes, the new stays", k("6.1.19-v8.1.el9", "6.1.21-v8.1.el9", "6.1.31-v8.1.el9"), 2, "", newest,
			[]string{"6.1.19-v8.1.el9"}},
		{"limit 0 keeps all", k("6.1.1-v8.1.el9", "6.1.19-v8.1.el9", "6.1.21-v8.1.el9", "6.1.31-v8.1.el9"), 0, "", newest, nil},
		{"a release that only starts alike is not the running one", k("6.1.1-v8.1.el9", "6.1.19-v8.1.el9", "6.1.31-v8.1.el9"), 2,
			"6.1.1-v8.1.el9x", newest, []string{"6.1.1-v8.1.el9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range installonlyRemovals(tt.installed, tt.limit, tt.running, tt.keep) {
				got = append(got, p.EVR.Short())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("installonlyRemovals = %v, want %v", got, tt.want)
			}
		})
	}
}

// The Raspberry Pi packages of the install-only tests, in the form of
// AlmaLinux's raspberrypi repository (raspberrypi2-kernel4 and
// raspberrypi2-firmware, version-release "6.1.31-v8.1.el9"); no manifest
// of a real Pi image is among the project's fixtures, so the versions are
// of that form, not copied from one. Built for the host rpm's arch (rpmtest.HostArch), so the
// real rpm installs them without --ignorearch. Each kernel's files are
// under its own /lib/modules/VERSION-RELEASE, as a kernel's are, so its
// instances do not conflict; vendor-kernel is in no name list but
// provides installonlypkg(kernel), as dnf's installonlypkgs count.
var piVersions = []string{"6.1.19-v8.1.el9", "6.1.21-v8.1.el9", "6.1.31-v8.1.el9"}

var piRPMs = sync.OnceValues(func() (map[string]string, error) {
	arch, err := rpmtest.HostArch()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rpmfleet-update-pi")
	if err != nil {
		return nil, err
	}
	var pkgs []rpmtest.Package
	var names []string
	for _, vr := range piVersions {
		v, r, _ := strings.Cut(vr, "-")
		pkgs = append(pkgs,
			rpmtest.Package{Name: "raspberrypi2-kernel4", Version: v, Release: r, Arch: arch,
				Files: map[string]string{"/lib/modules/" + vr + "/kernel8.img": "kernel " + vr + "\n"}},
			rpmtest.Package{Name: "raspberrypi2-firmware", Version: v, Release: r, Arch: arch,
				Files: map[string]string{"/boot/firmware/start4.elf": "firmware " + vr + "\n"}},
			rpmtest.Package{Name: "vendor-kernel", Version: v, Release: r, Arch: arch, Provides: []string{"installonlypkg(kernel)"},
				Files: map[string]string{"/lib/modules/vendor-" + vr + "/vmlinuz": "vendor " + vr + "\n"}})
		names = append(names, "raspberrypi2-kernel4-"+vr, "raspberrypi2-firmware-"+vr, "vendor-kernel-"+vr)
	}
	paths, err := rpmtest.Build(dir, pkgs...)
	if err != nil {
		return nil, err
	}
	key, cleanup, err := rpmtest.GenerateKey(rpmtest.KeyEd25519, "rpmfleet-update-pi")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := rpmtest.Sign(key, paths...); err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(key.PublicKeyFile)
	if err != nil {
		return nil, err
	}
	out := map[string]string{"key": filepath.Join(dir, "RPM-GPG-KEY-test")}
	if err := os.WriteFile(out["key"], pub, 0o644); err != nil {
		return nil, err
	}
	for i, n := range names {
		out[n] = paths[i]
	}
	return out, nil
})

// piWorld is a device root running raspberrypi2-kernel4 6.1.19 with 6.1.21
// installed beside it, raspberrypi2-firmware 6.1.21 and vendor-kernel
// 6.1.21, and a repository (createrepo_c, no updateinfo) of every version.
type piWorld struct {
	root, repo, state, key string
}

func newPiWorld(t *testing.T) *piWorld {
	t.Helper()
	rpms, err := piRPMs()
	if err != nil {
		t.Fatalf("build rpms (run make deps): %v", err)
	}
	w := &piWorld{root: t.TempDir(), repo: filepath.Join(t.TempDir(), "repo"), state: t.TempDir(), key: rpms["key"]}
	newAlmaRoot(t, w.root)
	cw := &cycleWorld{root: w.root}
	cw.rpm(t, "-i", "--nodeps", "--noscripts", "--nosignature", rpms["raspberrypi2-kernel4-6.1.19-v8.1.el9"], rpms["raspberrypi2-kernel4-6.1.21-v8.1.el9"],
		rpms["raspberrypi2-firmware-6.1.21-v8.1.el9"], rpms["vendor-kernel-6.1.21-v8.1.el9"])
	var all []string
	for n, p := range rpms {
		if n != "key" {
			all = append(all, p)
		}
	}
	slices.Sort(all)
	if err := rpmtest.NewRepo(w.repo, all, nil); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *piWorld) query(t *testing.T, names ...string) string {
	t.Helper()
	out := (&cycleWorld{root: w.root}).rpm(t, append([]string{"-q", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\n"}, names...)...)
	lines := strings.Fields(out)
	slices.Sort(lines)
	return strings.Join(lines, " ")
}

func (w *piWorld) options(limit int) Options {
	return Options{StateDir: w.state, Root: w.root, Repos: []string{w.repo}, Keys: []string{w.key},
		Select:           Selection{Packages: []string{"raspberrypi2-kernel4", "raspberrypi2-firmware", "vendor-kernel"}},
		InstallonlyLimit: limit, RunningKernel: "6.1.19-v8.1.el9"}
}

// TestPlainUpdateInstallsKernelsSideBySide: allow-listed names with no
// advisory (no updateinfo at all) go to the newest build through the
// verified cycle, with the real rpm: the firmware is upgraded, the two
// kernels (one by name, one by its installonlypkg provide) are installed
// beside the old instances, and the limit of 2 erases the 6.1.21 kernel,
// not the running 6.1.19 one nor the new 6.1.31.
func TestPlainUpdateInstallsKernelsSideBySide(t *testing.T) {
	t.Parallel()
	w := newPiWorld(t)
	res, err := Run(context.Background(), w.options(2))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	c := res.Cycle
	if c == nil || c.Phase != Committed || len(c.Advisories) != 0 || len(c.Packages) != 3 {
		t.Fatalf("cycle = %+v, want committed, no advisory, three packages", c)
	}
	for _, p := range c.Packages {
		wantIO := p.Name != "raspberrypi2-firmware"
		if p.InstallOnly != wantIO || p.To != "6.1.31-v8.1.el9" || p.From != "6.1.21-v8.1.el9" || len(p.Advisories) != 0 {
			t.Errorf("planned %+v, want install-only %v, 6.1.21 -> 6.1.31, no advisory", p, wantIO)
		}
		if wantIO && p.Old != nil {
			t.Errorf("%s: an install-only package needs no rollback set, got %+v", p.Name, p.Old)
		}
	}
	if got, want := w.query(t, "raspberrypi2-kernel4"), "raspberrypi2-kernel4-6.1.19-v8.1.el9 raspberrypi2-kernel4-6.1.31-v8.1.el9"; got != want {
		t.Errorf("kernels after the cycle: %q, want %q (the running one kept, 6.1.21 over the limit erased)", got, want)
	}
	if got, want := w.query(t, "vendor-kernel"), "vendor-kernel-6.1.21-v8.1.el9 vendor-kernel-6.1.31-v8.1.el9"; got != want {
		t.Errorf("vendor kernels: %q, want %q (installed beside, within the limit)", got, want)
	}
	if got, want := w.query(t, "raspberrypi2-firmware"), "raspberrypi2-firmware-6.1.31-v8.1.el9"; got != want {
		t.Errorf("firmware: %q, want %q (upgraded, not beside)", got, want)
	}
	if !slices.Equal(c.Removed, []string{"raspberrypi2-kernel4-6.1.21-v8.1.el9." + hostArch(t)}) {
		t.Errorf("Removed = %q, want the 6.1.21 kernel", c.Removed)
	}
	if !c.Reboot.Needed {
		t.Errorf("a new kernel and firmware need a reboot: %+v", c.Reboot)
	}
	if s := res.Plan.String(); !strings.Contains(s, "install raspberrypi2-kernel4."+hostArch(t)+" 6.1.21-v8.1.el9 -> 6.1.31-v8.1.el9") ||
		!strings.Contains(s, "allow-listed, in no advisory") {
		t.Errorf("plan shown as:\n%s", s)
	}

	// Again: everything is at the newest build, nothing to do.
	res, err = Run(context.Background(), w.options(2))
	if err != nil || res.Cycle != nil || len(res.Plan.Packages) != 0 || len(res.Plan.Dropped) != 0 {
		t.Errorf("second run = %+v, %v; want no cycle and nothing dropped", res, err)
	}
}

// TestPlainUpdateRollbackErasesNewKernel: the health check fails after the
// side-by-side install; the rollback erases the new kernels and brings the
// firmware back, and every old kernel is still there. The limit erased
// nothing: it runs only once a cycle commits.
func TestPlainUpdateRollbackErasesNewKernel(t *testing.T) {
	t.Parallel()
	w := newPiWorld(t)
	o := w.options(2)
	o.HealthChecks = []string{"exit 3"}
	res, err := Run(context.Background(), o)
	if !errors.Is(err, ErrRollback) || res.Cycle == nil || res.Cycle.Phase != RolledBack {
		t.Fatalf("Run = %v (cycle %+v), want a rollback", err, res.Cycle)
	}
	if got, want := w.query(t, "raspberrypi2-kernel4", "vendor-kernel", "raspberrypi2-firmware"),
		"raspberrypi2-firmware-6.1.21-v8.1.el9 raspberrypi2-kernel4-6.1.19-v8.1.el9 raspberrypi2-kernel4-6.1.21-v8.1.el9 vendor-kernel-6.1.21-v8.1.el9"; got != want {
		t.Errorf("after the rollback rpm -q says %q, want %q", got, want)
	}
	if len(res.Cycle.Removed) != 0 {
		t.Errorf("Removed = %q after a rollback, want nothing", res.Cycle.Removed)
	}
}

// hostArch is the arch the install-only tests' packages are built for.
func hostArch(t *testing.T) string {
	t.Helper()
	arch, err := rpmtest.HostArch()
	if err != nil {
		t.Fatal(err)
	}
	return arch
}

// failingInstall is the real rpm with rpm -i failing before it installs
// anything, after the rpm -U of the same cycle went through: a fake only
// for what cannot be made to happen on demand (rpm -i refused or killed
// between the two transactions); with die the agent dies there instead,
// as a power cut would leave it. The rollback is the real rpm.
type failingInstall struct {
	RPM
	die bool
}

func (f *failingInstall) Install(ctx context.Context, files ...string) (string, error) {
	if f.die {
		runtime.Goexit()
	}
	return "error: raspberrypi2-kernel4: install failed\n", errors.New("rpm -i: exit status 1")
}

// TestInstallOnlyCutBetweenTransactions: the firmware's rpm -U went
// through, the kernel's rpm -i did not. The database holds a mix, so the
// cycle rolls the firmware back with the real rpm and leaves the kernels
// as they were: at once when rpm -i fails, and at the next start when the
// agent died between the two.
func TestInstallOnlyCutBetweenTransactions(t *testing.T) {
	t.Parallel()
	const before = "raspberrypi2-firmware-6.1.21-v8.1.el9 raspberrypi2-kernel4-6.1.19-v8.1.el9 raspberrypi2-kernel4-6.1.21-v8.1.el9"
	for _, die := range []bool{false, true} {
		t.Run(fmt.Sprintf("die=%v", die), func(t *testing.T) {
			w := newPiWorld(t)
			o := w.options(2)
			o.Select.Packages = []string{"raspberrypi2-kernel4", "raspberrypi2-firmware"}
			o.NewRPM = func(root, dbPath string) RPM {
				return &failingInstall{RPM: &rpmcmd.Runner{Root: root, DBPath: dbPath}, die: die}
			}
			var res *Result
			var err error
			done := make(chan struct{})
			go func() { // Goexit ends this goroutine, as the agent's death
				defer close(done)
				res, err = Run(context.Background(), o)
			}()
			<-done
			if die {
				if res != nil {
					t.Fatalf("the dead run returned %+v", res)
				}
				if got := w.query(t, "raspberrypi2-firmware"); got != "raspberrypi2-firmware-6.1.31-v8.1.el9" {
					t.Fatalf("before the restart the firmware is %q, want the new one (rpm -U went through)", got)
				}
				o.NewRPM = nil // the restarted agent's rpm works
				o.Select = Selection{}
				res, err = Run(context.Background(), o)
				if res == nil || res.Recovered == nil || res.Recovered.Phase != RolledBack {
					t.Fatalf("restart: %+v, %v; want the cut cycle recovered and rolled back", res, err)
				}
			} else if !errors.Is(err, ErrRollback) || res.Cycle == nil || res.Cycle.Phase != RolledBack || !strings.Contains(res.Cycle.Error, "rpm -i") {
				t.Fatalf("Run = %v (cycle %+v), want a rollback after rpm -i failed", err, res.Cycle)
			}
			if got := w.query(t, "raspberrypi2-kernel4", "raspberrypi2-firmware"); got != before {
				t.Errorf("after the rollback rpm -q says %q, want %q", got, before)
			}
		})
	}
}
