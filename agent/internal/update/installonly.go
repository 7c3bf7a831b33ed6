package update

// Install-only packages and plain (allow-listed) updates.
//
// A kernel is never upgraded in place: rpm -U would erase the kernel the
// device runs, and a new one that does not boot would leave nothing to
// fall back on. As dnf does for its installonlypkgs, the cycle installs
// such a package beside the installed versions (rpm -i), then, once the
// cycle is committed, erases the oldest instances beyond the install-only
// limit (dnf's installonly_limit, 3 by default), never the running
// kernel's and never the one just installed. Its rollback erases the new
// instance: the old ones never left. A package is install-only when dnf's
// default list names it (kernel, kernel-core, kernel-modules, ...; the
// Raspberry Pi's raspberrypi2-kernel4) or when the repository says it
// provides installonlypkg(...) or multiversion(kernel).
//
// The transaction is two rpm runs when a cycle holds both kinds: rpm -U of
// the upgrades, then rpm -i of the install-only packages. A cut between
// them leaves a mix the journal and the rpm database show, which is rolled
// back as a cut single transaction is.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// DefaultInstallonlyLimit is dnf's default installonly_limit.
const DefaultInstallonlyLimit = 3

// split returns the new files of the upgrades and of the install-only
// packages.
func (r *runner) split() (upgrades, installs []string) {
	for _, p := range r.c.Packages {
		if p.InstallOnly {
			installs = append(installs, p.New.File)
		} else {
			upgrades = append(upgrades, p.New.File)
		}
	}
	return upgrades, installs
}

// testTransaction is preflight's rpm --test: -U for the upgrades, -i for
// the install-only packages.
func (r *runner) testTransaction(ctx context.Context) (string, error) {
	upgrades, installs := r.split()
	if len(upgrades) > 0 {
		if out, err := r.rpm.Test(ctx, upgrades...); err != nil {
			return out, err
		}
	}
	if len(installs) > 0 {
		return r.rpm.TestInstall(ctx, installs...)
	}
	return "", nil
}

// transaction is apply's rpm run: rpm -U of the upgrades, then rpm -i of
// the install-only packages; their output joined.
func (r *runner) transaction(ctx context.Context) (string, error) {
	upgrades, installs := r.split()
	var outs []string
	if len(upgrades) > 0 {
		out, err := r.rpm.Upgrade(ctx, upgrades...)
		outs = append(outs, out)
		if err != nil {
			return strings.Join(outs, "\n"), err
		}
	}
	if len(installs) > 0 {
		out, err := r.rpm.Install(ctx, installs...)
		outs = append(outs, out)
		if err != nil {
			return strings.Join(outs, "\n"), err
		}
	}
	return strings.Join(outs, "\n"), nil
}

// installedNew names, as rpm -e takes it, the new instance of an
// install-only package.
func (p Package) installedNew() string {
	evr, _ := rpmver.ParseEVR(p.To)
	return rpmver.NEVRA{Name: p.Name, EVR: evr, Arch: p.Arch}.Short()
}

// eraseNew is the rollback of install-only packages: the instances the
// cycle installed are erased; the previous ones never left.
func (r *runner) eraseNew(ctx context.Context, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	var names []string
	for _, i := range idx {
		names = append(names, r.c.Packages[i].installedNew())
	}
	out, err := r.rpm.Erase(ctx, names...)
	if r.c.RollbackOutput != "" {
		out = r.c.RollbackOutput + "\n" + out
	}
	r.c.RollbackOutput = out
	return err
}

// runningRelease is the kernel release the device runs (uname -r):
// Options.RunningKernel, else, on the real root, /proc's.
func (o *Options) runningRelease() string {
	if o.RunningKernel != "" || o.Root != "/" {
		return o.RunningKernel
	}
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// runsKernel reports whether the kernel release (uname -r) is this
// installed instance's: EL kernels say version-release.arch
// ("5.14.0-362.8.1.el9_3.aarch64"), the Raspberry Pi's version-release
// ("6.1.31-v8.1.el9"), variants add "+debug" or "+rt".
func runsKernel(release string, p inventory.Package) bool {
	if release == "" {
		return false
	}
	vr := p.EVR.Version + "-" + p.EVR.Release
	return release == vr || strings.HasPrefix(release, vr+".") || strings.HasPrefix(release, vr+"+")
}

// installonlyRemovals picks the instances of one install-only package
// (one name and arch) to erase so that at most limit stay installed: the
// oldest first, never the running kernel's (running) nor one of keep (the
// cycle's new instance). Protected instances may leave more than limit.
// A limit of 0 keeps every instance.
func installonlyRemovals(instances []inventory.Package, limit int, running string, keep []rpmver.EVR) []inventory.Package {
	if limit <= 0 || len(instances) <= limit {
		return nil
	}
	sorted := slices.Clone(instances)
	slices.SortFunc(sorted, func(a, b inventory.Package) int { return rpmver.Compare(a.EVR, b.EVR) })
	excess := len(sorted) - limit
	var out []inventory.Package
	for _, p := range sorted {
		if excess == 0 {
			break
		}
		if runsKernel(running, p) || slices.ContainsFunc(keep, func(e rpmver.EVR) bool { return rpmver.Compare(e, p.EVR) == 0 }) {
			continue
		}
		out = append(out, p)
		excess--
	}
	return out
}

// prune erases, after a committed cycle, the instances of the install-only
// packages it installed beyond the limit. A failure is noted, not a
// verdict on the update, which is in and healthy: the next cycle prunes
// again.
func (r *runner) prune() {
	limit := r.o.InstallonlyLimit
	if limit == 0 {
		limit = DefaultInstallonlyLimit
	}
	if limit < 0 {
		return
	}
	var io []Package
	for _, p := range r.c.Packages {
		if p.InstallOnly {
			io = append(io, p)
		}
	}
	if len(io) == 0 {
		return
	}
	pkgs, err := r.installed()
	if err != nil {
		r.note(fmt.Sprintf("install-only limit not applied: read rpm database: %v", err))
		return
	}
	running := r.o.runningRelease()
	var erase []string
	for _, p := range io {
		var inst []inventory.Package
		for _, ip := range pkgs {
			if ip.Name == p.Name && ip.Arch == p.Arch {
				inst = append(inst, ip)
			}
		}
		to, _ := rpmver.ParseEVR(p.To)
		for _, x := range installonlyRemovals(inst, limit, running, []rpmver.EVR{to}) {
			erase = append(erase, rpmver.NEVRA{Name: x.Name, EVR: x.EVR, Arch: x.Arch}.Short())
		}
	}
	if len(erase) == 0 {
		return
	}
	// Not cut by a stop: rpm -e half done is what the journal avoids.
	out, err := r.rpm.Erase(context.Background(), erase...)
	if err != nil {
		r.note(fmt.Sprintf("install-only limit %d: rpm -e %s failed: %v", limit, strings.Join(erase, " "), err))
		r.log.Warn("old install-only packages not erased", "packages", erase, "err", err, "output", out)
		return
	}
	r.c.Removed = append(r.c.Removed, erase...)
	r.log.Info("old install-only packages erased", "packages", erase, "limit", limit)
}
