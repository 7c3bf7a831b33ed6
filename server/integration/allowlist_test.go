package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// The Raspberry Pi packages of TestFleetAllowListPiKernel, named as in
// AlmaLinux's raspberrypi repository, with version-releases of its form
// ("6.1.31-v8.1.el9"); the project's fixtures hold no manifest of a real
// Pi image, so they are of that form, not copied from one. They are built
// for this machine's arch (rpmArch), so the real rpm installs them without
// --ignorearch. Each kernel's file is under its own
// /lib/modules/VERSION-RELEASE, so its instances do not conflict.
var piKernels = []string{"6.1.19-v8.1.el9", "6.1.21-v8.1.el9", "6.1.31-v8.1.el9"}

// newPiRepo builds the Pi packages with rpmbuild, signs them with a key of
// the test's own (rpmsign), and serves them from a createrepo_c repository
// over loopback HTTP; no updateinfo: no advisory names them.
func newPiRepo(t *testing.T) *fleetRepo {
	t.Helper()
	arch := rpmArch(t)
	var pkgs []rpmtest.Package
	for _, vr := range piKernels {
		v, r, _ := strings.Cut(vr, "-")
		pkgs = append(pkgs,
			rpmtest.Package{Name: "raspberrypi2-kernel4", Version: v, Release: r, Arch: arch,
				Files: map[string]string{"/lib/modules/" + vr + "/kernel8.img": "kernel " + vr + "\n"}},
			rpmtest.Package{Name: "raspberrypi2-firmware", Version: v, Release: r, Arch: arch,
				Files: map[string]string{"/boot/firmware/start4.elf": "firmware " + vr + "\n"}})
	}
	dir := t.TempDir()
	paths, err := rpmtest.Build(filepath.Join(dir, "rpms"), pkgs...)
	if err != nil {
		t.Fatalf("build rpms (run make deps): %v", err)
	}
	key := rpmtest.NewKey(t, rpmtest.KeyRSA4096, "rpmfleet-pi-it")
	if err := rpmtest.Sign(key, paths...); err != nil {
		t.Logf("rpmsign failed once (gpg-agent's weather), trying again: %v", err)
		if err := rpmtest.Sign(key, paths...); err != nil {
			t.Fatal(err)
		}
	}
	r := &fleetRepo{dir: filepath.Join(dir, "repo"), key: key.PublicKeyFile, rpms: map[string]string{}}
	for i, p := range pkgs {
		r.rpms[p.Name+"-"+p.Version+"-"+p.Release] = paths[i]
	}
	if err := rpmtest.NewRepo(r.dir, paths, nil); err != nil {
		t.Fatal(err)
	}
	r.srv = rpmtest.Serve(t, r.dir)
	return r
}

// piRoot is a device root with two kernels installed side by side (6.1.19
// and 6.1.21) and the 6.1.21 firmware, by the real rpm.
func (r *fleetRepo) piRoot(t *testing.T) string {
	t.Helper()
	osr, err := os.ReadFile(filepath.Join(fixtures(t), "os-release", "almalinux-9.2-host.os-release"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := rpmtest.NewDevRoot(root, osr, nil); err != nil {
		t.Fatalf("make device root (run make deps if rpm is missing): %v", err)
	}
	rpmIn(t, root, "-i", r.rpms["raspberrypi2-kernel4-6.1.19-v8.1.el9"], r.rpms["raspberrypi2-kernel4-6.1.21-v8.1.el9"],
		r.rpms["raspberrypi2-firmware-6.1.21-v8.1.el9"])
	return root
}

// instances lists every installed version-release of name in root, sorted,
// as rpm -q prints them.
func instances(t *testing.T, root, name string) string {
	t.Helper()
	cmd := exec.Command("rpm", "--root", root, "--dbpath", rpmtest.DBPath, "-q", "--qf", "%{VERSION}-%{RELEASE}\n", name)
	cmd.Env = append(os.Environ(), "HOME=/root")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rpm -q %s in %s: %v", name, root, err)
	}
	vs := strings.Fields(string(out))
	slices.Sort(vs)
	return strings.Join(vs, " ")
}

// TestFleetAllowListPiKernel: a Pi kernel update by allow-list, on the
// real binaries. The group "pi" has a policy allow-listing
// raspberrypi2-kernel4 and raspberrypi2-firmware, packages no advisory
// names. Three real agents (mode apply, window open) on device roots with
// kernels 6.1.19 and 6.1.21 side by side and firmware 6.1.21:
//   - "pi-allowed", in the group, installonly_limit = 2: installs kernel
//     6.1.31 beside the others with rpm -i, then erases the oldest (the
//     test root runs no kernel, so none is protected as running; the unit
//     tests of update cover that), upgrades the firmware, and reports the
//     cycle, which the server stores with no advisory;
//   - "pi-narrowed", in the group, whose own file allow-lists only the
//     firmware: gets the firmware, never the kernel;
//   - "pi-outside", in no group: its file alone, with no allow-list, gets
//     neither.
func TestFleetAllowListPiKernel(t *testing.T) {
	repo := newPiRepo(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	srv, _ := startPushServer(t, data)
	dumpOnFailure(t, srv)
	admin := adminEnv(srv)

	must(t, admin, "rpmfleet", "group", "set", "pi", "site=pi")
	pf := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(pf, []byte(`{"mode": "apply", "allow_updates": ["raspberrypi2-kernel4", "raspberrypi2-firmware"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := must(t, admin, "rpmfleet", "group", "policy", "pi", pf).stdout; !strings.Contains(out, "updating without advisory raspberrypi2-kernel4 raspberrypi2-firmware") {
		t.Errorf("rpmfleet group policy printed %q, want the allow-list named", out)
	}

	start := func(name, site, extra string) *agent {
		a := enrollAgent(t, srv, repo, name, repo.piRoot(t))
		if site != "" {
			must(t, admin, "rpmfleet", "labels", name, "site="+site)
		}
		conf := agentConfig{Mode: "apply", Window: "open"}.toml(a)
		const anchor = "exclude = [\"kernel*\"]\n"
		if !strings.Contains(conf, anchor) {
			t.Fatalf("the harness's agent.toml changed; no %q in:\n%s", anchor, conf)
		}
		a.writeConfig(t, agentConfig{Raw: strings.Replace(conf, anchor, anchor+extra, 1)})
		a.start(t)
		return a
	}
	allowed := start("pi-allowed", "pi", "installonly_limit = 2\n")
	narrowed := start("pi-narrowed", "pi", "allow_updates = [\"raspberrypi2-firmware\"]\n")
	outside := start("pi-outside", "", "")

	waitFor(t, 90*time.Second, "pi-allowed's new kernel and firmware", func() (bool, string) {
		k, f := instances(t, allowed.root, "raspberrypi2-kernel4"), instances(t, allowed.root, "raspberrypi2-firmware")
		return k == "6.1.21-v8.1.el9 6.1.31-v8.1.el9" && f == "6.1.31-v8.1.el9", "kernels " + k + ", firmware " + f
	})
	waitFor(t, 90*time.Second, "pi-narrowed's new firmware", func() (bool, string) {
		f := instances(t, narrowed.root, "raspberrypi2-firmware")
		return f == "6.1.31-v8.1.el9", "firmware " + f
	})
	for _, a := range []*agent{allowed, narrowed, outside} {
		waitReported(t, srv, a)
	}
	// pi-outside has fetched its plan and acted on it by now (it reported
	// after its first fetch); its plan carries no policy.
	if plan, _ := fetchPlan(t, srv, outside); plan.Policy != nil {
		t.Errorf("pi-outside's plan carries a policy: %+v", plan.Policy)
	}
	if plan, _ := fetchPlan(t, srv, allowed); plan.Policy == nil || !slices.Equal(plan.Policy.AllowUpdates, []string{"raspberrypi2-kernel4", "raspberrypi2-firmware"}) {
		t.Errorf("pi-allowed's plan policy = %+v, want the group's allow-list", plan.Policy)
	}
	if k := instances(t, narrowed.root, "raspberrypi2-kernel4"); k != "6.1.19-v8.1.el9 6.1.21-v8.1.el9" {
		t.Errorf("pi-narrowed, whose file allow-lists only the firmware, has kernels %s", k)
	}
	if k, f := instances(t, outside.root, "raspberrypi2-kernel4"), instances(t, outside.root, "raspberrypi2-firmware"); k != "6.1.19-v8.1.el9 6.1.21-v8.1.el9" || f != "6.1.21-v8.1.el9" {
		t.Errorf("pi-outside, in no group, has kernels %s and firmware %s; want them untouched", k, f)
	}
	if !strings.Contains(allowed.log.String(), "allow-listed updates") {
		t.Errorf("pi-allowed's log names no cycle of allow-listed updates")
	}

	// The audit log says who attached the allow-list, when, what it
	// allowed, and how it ended.
	var audit []protocol.AuditEntry
	if err := jsonDecode(must(t, admin, "rpmfleet", "audit", "--limit", "100", "--json").stdout, &audit); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(audit, func(e protocol.AuditEntry) bool { return e.Action == "policy.put" })
	if i < 0 {
		t.Fatalf("the audit log lacks policy.put: %+v", audit)
	}
	if e := audit[i]; e.Target != "pi" || e.Actor != "initial-admin" || e.Status != 200 || e.Error != "" || e.Time.IsZero() ||
		time.Since(e.Time) > 10*time.Minute || !strings.Contains(e.Detail, `"allow_updates":["raspberrypi2-kernel4","raspberrypi2-firmware"]`) {
		t.Errorf("policy.put entry = %+v; want group pi, by initial-admin, now, 200, its allow-list in the detail", e)
	}

	// The cycle's report reached the server: wait for the queue to empty,
	// stop the server, and read what it stored.
	waitFor(t, 60*time.Second, "pi-allowed's reports delivered", func() (bool, string) {
		q := allowed.queued(t)
		return len(q) == 0, fmt.Sprint(q)
	})
	srv.stop(t)
	st, err := sqlite.Open(t.Context(), filepath.Join(data, "rpmfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cycles, err := st.Cycles(t.Context(), []string{allowed.id}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var applied *protocol.CycleResult
	for i := range cycles {
		if c := &cycles[i].Cycle; c.Outcome == protocol.OutcomeApplied {
			applied = c
		}
	}
	if applied == nil {
		t.Fatalf("the server stored no applied cycle of pi-allowed: %+v", cycles)
	}
	after := map[string]string{}
	for _, p := range applied.After {
		after[p.Name] = p.Version + "-" + p.Release
	}
	if len(applied.Advisories) != 0 || after["raspberrypi2-kernel4"] != "6.1.31-v8.1.el9" || after["raspberrypi2-firmware"] != "6.1.31-v8.1.el9" || !applied.RebootNeeded {
		t.Errorf("stored cycle = %+v; want no advisory, the 6.1.31 kernel and firmware after, a reboot needed", applied)
	}
}

// TestApplyUpdateByName: rpmfleet-agent apply --update NAME, the
// allow-list by hand. A dry run shows the kernel as installed beside the
// old ones and both packages as in no advisory, and changes nothing; the
// real run installs them and keeps --installonly-limit; a glob is refused.
func TestApplyUpdateByName(t *testing.T) {
	repo := newPiRepo(t)
	root := repo.piRoot(t)
	state := t.TempDir()
	args := []string{"apply", "--root", root, "--repo", repo.url(), "--gpgkey", repo.key, "--state-dir", state,
		"--update", "raspberrypi2-kernel4", "--update", "raspberrypi2-firmware"}
	arch := rpmArch(t)
	out := must(t, nil, "rpmfleet-agent", append(args, "--dry-run")...).stdout
	for _, want := range []string{
		"install raspberrypi2-kernel4." + arch + " 6.1.21-v8.1.el9 -> 6.1.31-v8.1.el9 (beside 6.1.21-v8.1.el9; rollback: erase it; allow-listed, in no advisory)",
		"upgrade raspberrypi2-firmware." + arch + " 6.1.21-v8.1.el9 -> 6.1.31-v8.1.el9 (rollback: raspberrypi2-firmware-6.1.21-v8.1.el9; allow-listed, in no advisory)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("apply --dry-run printed:\n%s\nwant a line %q", out, want)
		}
	}
	if k := instances(t, root, "raspberrypi2-kernel4"); k != "6.1.19-v8.1.el9 6.1.21-v8.1.el9" {
		t.Errorf("a dry run changed the kernels: %s", k)
	}
	out = must(t, nil, "rpmfleet-agent", append(args, "--installonly-limit", "3")...).stdout
	if k, f := instances(t, root, "raspberrypi2-kernel4"), instances(t, root, "raspberrypi2-firmware"); k != "6.1.19-v8.1.el9 6.1.21-v8.1.el9 6.1.31-v8.1.el9" || f != "6.1.31-v8.1.el9" {
		t.Errorf("after apply: kernels %s, firmware %s; want three kernels side by side (limit 3) and the new firmware\n%s", k, f, out)
	}
	if !strings.Contains(out, "(installed beside)  (no advisory: allow-listed)") {
		t.Errorf("apply printed:\n%s\nwant the kernel shown as installed beside, in no advisory", out)
	}
	if r := run(t, nil, "rpmfleet-agent", "apply", "--root", root, "--state-dir", state, "--update", "raspberrypi2-*"); r.code == 0 || !strings.Contains(r.stderr, "not a package name") {
		t.Errorf("apply --update with a glob: exit %d, stderr %q; want a refusal", r.code, r.stderr)
	}
}
