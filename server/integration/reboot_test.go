package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// The reboot coordination tests (issue 13): real agents that need a reboot
// take the real server's FleetLock slot before it and free it after it.
// Only the reboot itself is FAKE (a test cannot reboot this machine): the
// agent's reboot command is a script that records when it ran, "boots" by
// writing a new boot id (and, when asked, a new kernel release) into the
// agent's fake /proc (RPMFLEET_PROC_ROOT), and stops the agent with
// SIGTERM; the test then starts the agent process again, as the boot
// would.

// newRebootRepo is newFleetRepo's repository with the fix's advisory
// suggesting a reboot, so every device that applies it needs one.
func newRebootRepo(t *testing.T) *fleetRepo { return makeFleetRepo(t, true) }

// rebooter is one device whose reboot is FAKE: its reboot script, its fake
// /proc and the record of its reboots.
type rebooter struct {
	*agent
	proc    string // RPMFLEET_PROC_ROOT
	reboots string // one line per reboot: unix nanoseconds
	// restarts are when the test started the agent again after a
	// reboot ("booted").
	restarts []time.Time
}

// startRebooter enrols a device whose policy applies in an open window and
// reboots when needed, polling every 3 s, and starts its agent with the
// FAKE reboot; extra is appended to its agent.toml.
func startRebooter(t *testing.T, srv *server, repo *fleetRepo, name, root, extra string, env ...string) *rebooter {
	t.Helper()
	return startRebooterPolicy(t, srv, repo, name, root, "", extra, env...)
}

// startRebooterPolicy is startRebooter with policyExtra added to [policy].
func startRebooterPolicy(t *testing.T, srv *server, repo *fleetRepo, name, root, policyExtra, extra string, env ...string) *rebooter {
	t.Helper()
	if root == "" {
		root = repo.deviceRoot(t)
	}
	a := enrollAgent(t, srv, repo, name, root)
	dir := t.TempDir()
	r := &rebooter{agent: a, proc: filepath.Join(dir, "proc"), reboots: filepath.Join(dir, "reboots")}
	if err := os.MkdirAll(filepath.Join(r.proc, "sys", "kernel", "random"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.writeProc(t, "boot-1", "5.14.0-362.8.1.el9_3."+rpmArch(t))
	script := filepath.Join(dir, "fake-reboot")
	// A FAKE reboot (see the top of this file): record, new boot id, and
	// stop the agent (its parent), which the test starts again.
	body := fmt.Sprintf("#!/bin/sh\ndate +%%s%%N >> %q\necho boot-$(date +%%s%%N) > %q\nkill -TERM $PPID\n",
		r.reboots, filepath.Join(r.proc, "sys", "kernel", "random", "boot_id"))
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := agentConfig{Mode: "apply", Window: "open", Poll: "3s"}.toml(a)
	cfg = strings.Replace(cfg, "[policy]\n", "[policy]\nreboot = \"when-needed\"\n"+policyExtra, 1) + "\n[reboot]\n" + extra
	cfg = strings.Replace(cfg, `exclude = ["kernel*"]`, "exclude = []", 1)
	a.writeConfig(t, agentConfig{Raw: cfg})
	a.env = append([]string{
		"RPMFLEET_REBOOT_COMMAND=" + script,
		"RPMFLEET_PROC_ROOT=" + r.proc,
		"RPMFLEET_UTMP=" + filepath.Join(dir, "utmp-none"),
		"RPMFLEET_REBOOT_GRACE=300ms",
		"RPMFLEET_FLEETLOCK_RETRY_MAX=1s",
		"RPMFLEET_SESSION_POLL=200ms",
	}, env...)
	a.start(t)
	return r
}

func (r *rebooter) writeProc(t *testing.T, bootID, osrelease string) {
	t.Helper()
	for f, v := range map[string]string{"sys/kernel/random/boot_id": bootID, "sys/kernel/osrelease": osrelease} {
		if err := os.WriteFile(filepath.Join(r.proc, f), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rebootTimes are the FAKE reboot's records.
func (r *rebooter) rebootTimes(t *testing.T) []time.Time {
	t.Helper()
	b, err := os.ReadFile(r.reboots)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, l := range strings.Fields(string(b)) {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			t.Fatalf("%s: %q", r.reboots, l)
		}
		out = append(out, time.Unix(0, n))
	}
	return out
}

// rebootTakes is how long a FAKE reboot keeps the device down: long
// enough that devices rebooting without the lock would overlap.
const rebootTakes = time.Second

// boot starts the agent again rebootTakes after its FAKE reboot stopped
// it: the device is back.
func (r *rebooter) boot(t *testing.T) {
	t.Helper()
	rt := r.rebootTimes(t)
	if len(rt) <= len(r.restarts) || r.running() || time.Since(rt[len(rt)-1]) < rebootTakes {
		return
	}
	r.waitExit(t, 20*time.Second) // it stopped on SIGTERM, cleanly
	r.restarts = append(r.restarts, time.Now())
	r.start(t)
}

// slotEvents are the server's audit entries of FleetLock slots, oldest
// first.
func slotEvents(t *testing.T, srv *server) []protocol.AuditEntry {
	t.Helper()
	var all []protocol.AuditEntry
	if err := json.Unmarshal([]byte(must(t, adminEnv(srv), "rpmfleet", "audit", "--limit", "1000", "--json").stdout), &all); err != nil {
		t.Fatal(err)
	}
	var out []protocol.AuditEntry
	for _, e := range all {
		if strings.HasPrefix(e.Action, "fleetlock.") {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// checkOneAtATime sweeps the audit log's slot events in the server's own
// order: never two holders of the one slot.
func checkOneAtATime(t *testing.T, events []protocol.AuditEntry) {
	t.Helper()
	var holders []string
	for _, e := range events {
		switch e.Action {
		case "fleetlock.lock":
			if !slices.Contains(holders, e.Target) {
				holders = append(holders, e.Target)
			}
		case "fleetlock.unlock", "fleetlock.release":
			holders = slices.DeleteFunc(holders, func(h string) bool { return h == e.Target })
		}
		if len(holders) > 1 {
			t.Errorf("audit entry %d (%s %s): %v hold the one slot together", e.ID, e.Action, e.Target, holders)
		}
	}
}

// TestAgentsRebootOneAtATime: five real agents apply a fix that needs a
// reboot, in an open window, with one FleetLock slot on the real server:
// each takes the slot, warns (wall), waits for its logged-in user, reboots
// (FAKE), and frees the slot once back; never two reboot at once, all five
// reboot once and free their slot.
func TestAgentsRebootOneAtATime(t *testing.T) {
	repo := newRebootRepo(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "server.toml", "[fleetlock]\nslots = 1\n")
	srv := startServer(t, filepath.Join(dir, "data"), "--mqtt-listen", "off", "--config", cfg)
	dumpOnFailure(t, srv)

	// pi-1's user is logged in (a real utmp record of a live process)
	// until the test logs them out.
	session := exec.Command("sleep", "600")
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { session.Process.Kill(); session.Wait() })
	utmpFile := filepath.Join(dir, "utmp")
	if err := os.WriteFile(utmpFile, utmpRecord(session.Process.Pid, "pts/0", "alice"), 0o644); err != nil {
		t.Fatal(err)
	}
	wallOut := filepath.Join(dir, "wall.out")
	wall := writeFile(t, dir, "fake-wall", fmt.Sprintf("#!/bin/sh\n# A FAKE wall: records the broadcast instead of writing to this machine's terminals.\necho \"$1\" >> %q\n", wallOut))
	os.Chmod(wall, 0o755)

	var devs []*rebooter
	for i := 1; i <= 5; i++ {
		name := fmt.Sprintf("pi-%d", i)
		var env []string
		if i == 1 {
			env = []string{"RPMFLEET_UTMP=" + utmpFile, "RPMFLEET_WALL_COMMAND=" + wall}
		}
		devs = append(devs, startRebooter(t, srv, repo, name, "", "session_wait = \"10m\"\n", env...))
	}
	for _, d := range devs {
		waitReported(t, srv, d.agent)
	}
	importFix(t, srv, repo)

	// Boot every device whose FAKE reboot ran, until all five are back
	// and have freed their slot; log pi-1's user out once its agent waits
	// for them.
	var loggedOut time.Time
	deadline := time.Now().Add(3 * time.Minute)
	for {
		for _, d := range devs {
			d.boot(t)
		}
		if loggedOut.IsZero() && strings.Contains(devs[0].log.String(), "reboot waits for interactive sessions to end") {
			if len(devs[0].rebootTimes(t)) != 0 {
				t.Fatal("pi-1 rebooted while its user was logged in")
			}
			time.Sleep(time.Second) // it keeps waiting
			if len(devs[0].rebootTimes(t)) != 0 {
				t.Fatal("pi-1 rebooted while its user was logged in")
			}
			session.Process.Kill()
			session.Wait()
			loggedOut = time.Now()
		}
		back := 0
		for _, d := range devs {
			if _, err := os.Stat(filepath.Join(d.state, "reboot.json")); len(d.restarts) > 0 && os.IsNotExist(err) {
				back++
			}
		}
		if back == len(devs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 3 minutes %d of 5 devices were back and done with their reboot", back)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Each device rebooted once, under the lock; the intervals from the
	// reboot to the boot never overlap.
	type interval struct {
		name       string
		start, end time.Time
	}
	var ivs []interval
	for _, d := range devs {
		rt := d.rebootTimes(t)
		if len(rt) != 1 || len(d.restarts) != 1 {
			t.Fatalf("%s rebooted %d times, booted %d; want once", d.name, len(rt), len(d.restarts))
		}
		ivs = append(ivs, interval{d.name, rt[0], d.restarts[0]})
		if installed(t, d.root, "demo-lib") != newLib {
			t.Errorf("%s did not install the fix", d.name)
		}
		if _, err := os.Stat(filepath.Join(d.state, "reboot.json")); !os.IsNotExist(err) {
			t.Errorf("%s's reboot record is still there: %v", d.name, err)
		}
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].start.Before(ivs[j].start) })
	for i := 1; i < len(ivs); i++ {
		if !ivs[i].start.After(ivs[i-1].end) {
			t.Errorf("%s rebooted at %v, before %s (rebooted %v) was back at %v", ivs[i].name, ivs[i].start.Format(time.StampMicro),
				ivs[i-1].name, ivs[i-1].start.Format(time.StampMicro), ivs[i-1].end.Format(time.StampMicro))
		}
	}
	for _, iv := range ivs {
		t.Logf("%s: reboot %s, back %s", iv.name, iv.start.Format(time.StampMilli), iv.end.Format(time.StampMilli))
	}
	if rt := devs[0].rebootTimes(t); rt[0].Before(loggedOut) {
		t.Errorf("pi-1 rebooted at %v, before its user logged out at %v", rt[0], loggedOut)
	}
	if b, err := os.ReadFile(wallOut); err != nil || !strings.Contains(string(b), "reboots in") {
		t.Errorf("wall got %q, %v; want the warning", b, err)
	}

	// The server's own order: five locks, five unlocks, never two holders.
	events := slotEvents(t, srv)
	checkOneAtATime(t, events)
	count := map[string]int{}
	for _, e := range events {
		count[e.Action]++
	}
	if count["fleetlock.lock"] != 5 || count["fleetlock.unlock"] != 5 {
		t.Errorf("slot events %v, want 5 locks and 5 unlocks", count)
	}
	// Each reboot happened inside its own device's slot, by the server's
	// clock (the same machine's).
	for _, d := range devs {
		var locked, unlocked time.Time
		for _, e := range events {
			if e.Target == "default/"+d.name && e.Action == "fleetlock.lock" {
				locked = e.Time
			}
			if e.Target == "default/"+d.name && e.Action == "fleetlock.unlock" {
				unlocked = e.Time
			}
		}
		if at := d.rebootTimes(t)[0]; !locked.Before(at) || !at.Before(unlocked) {
			t.Errorf("%s rebooted at %v, outside its slot [%v, %v]", d.name, at.Format(time.StampMicro), locked.Format(time.StampMicro), unlocked.Format(time.StampMicro))
		}
	}
	var slots []protocol.FleetLockSlot
	if code, raw := call(t, "GET", srv.url+protocol.PathFleetLock, srv.admin, nil, &slots); code != 200 || len(slots) != 0 {
		t.Errorf("slots held at the end: %d %s", code, raw)
	}
}

// utmpRecord is a USER_PROCESS record of glibc's struct utmp (384 bytes,
// the layout agent/internal/utmp reads and who(1) agrees with).
func utmpRecord(pid int, line, user string) []byte {
	r := make([]byte, 384)
	r[0] = 7 // USER_PROCESS
	for i := 0; i < 4; i++ {
		r[4+i] = byte(uint32(pid) >> (8 * i))
	}
	copy(r[8:40], line)
	copy(r[44:76], user)
	return r
}

// TestRebootDeviceDies: three real agents, one slot. The first to take it
// reboots and never comes back (its FAKE reboot stops it and the test does
// not start it again): its slot stays held and the others wait, asking
// again, until an admin frees it (rpmfleet fleetlock release). The next
// one dies too and nobody frees its slot: the server's slot timeout (5 s
// here) lets the last one go.
func TestRebootDeviceDies(t *testing.T) {
	repo := newRebootRepo(t)
	dir := t.TempDir()
	const timeout = 5 * time.Second
	cfg := writeFile(t, dir, "server.toml", fmt.Sprintf("[fleetlock]\nslots = 1\ntimeout = %q\n", timeout.String()))
	srv := startServer(t, filepath.Join(dir, "data"), "--mqtt-listen", "off", "--config", cfg)
	dumpOnFailure(t, srv)
	admin := adminEnv(srv)
	var devs []*rebooter
	for _, n := range []string{"pi-a", "pi-b", "pi-c"} {
		devs = append(devs, startRebooter(t, srv, repo, n, "", ""))
	}
	for _, d := range devs {
		waitReported(t, srv, d.agent)
	}
	importFix(t, srv, repo)

	// dead are the devices that rebooted and never came back, in order.
	rebooted := func() []*rebooter {
		var out []*rebooter
		for _, d := range devs {
			if len(d.rebootTimes(t)) > 0 {
				out = append(out, d)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].rebootTimes(t)[0].Before(out[j].rebootTimes(t)[0]) })
		return out
	}
	waitFor(t, 90*time.Second, "a first device to reboot", func() (bool, string) { return len(rebooted()) > 0, "" })
	first := rebooted()[0]
	t.Logf("%s rebooted and does not come back", first.name)
	// The others have applied the fix and ask for the slot; none gets it.
	for _, d := range devs {
		if d != first {
			d.waitLog(t, 0, 90*time.Second, "reboot slots all held by others")
		}
	}
	time.Sleep(2 * time.Second) // well under the slot's timeout
	if got := rebooted(); len(got) != 1 {
		t.Fatalf("%d devices rebooted while %s, dead, held the one slot", len(got), first.name)
	}
	if out := must(t, admin, "rpmfleet", "fleetlock", "list").stdout; !strings.Contains(out, first.name) {
		t.Errorf("rpmfleet fleetlock list:\n%s\nwant %s's slot", out, first.name)
	}
	released := time.Now()
	must(t, admin, "rpmfleet", "fleetlock", "release", "default", first.name)

	waitFor(t, 60*time.Second, "a second device to reboot after the release", func() (bool, string) { return len(rebooted()) > 1, "" })
	second := rebooted()[1]
	secondAt := second.rebootTimes(t)[0]
	if secondAt.Before(released) {
		t.Errorf("%s rebooted at %v, before the release at %v", second.name, secondAt, released)
	}
	if held := secondAt.Sub(released); held > timeout {
		t.Errorf("%s rebooted %v after the release; the release, not the timeout, should have let it go", second.name, held)
	}
	t.Logf("%s rebooted %v after the admin's release, and dies too", second.name, secondAt.Sub(released).Round(time.Millisecond))

	// Nobody frees the second dead device's slot: the timeout does.
	waitFor(t, 60*time.Second, "the last device to reboot after the slot's timeout", func() (bool, string) { return len(rebooted()) > 2, "" })
	last := rebooted()[2]
	lastAt := last.rebootTimes(t)[0]
	if lastAt.Sub(secondAt) < timeout-time.Second {
		t.Errorf("%s rebooted %v after %s took the slot, before its %v timeout", last.name, lastAt.Sub(secondAt), second.name, timeout)
	}
	t.Logf("%s rebooted %v after %s's reboot (slot timeout %v)", last.name, lastAt.Sub(secondAt).Round(time.Millisecond), second.name, timeout)
	last.boot(t)
	waitFor(t, 30*time.Second, last.name+" back and its slot freed", func() (bool, string) {
		last.boot(t)
		return strings.Contains(last.log.String(), "reboot slot freed"), ""
	})

	// The dead devices' agents stopped at their FAKE reboot, cleanly.
	first.waitExit(t, 20*time.Second)
	second.waitExit(t, 20*time.Second)

	events := slotEvents(t, srv)
	checkOneAtATime(t, expireTimedOut(events, second.name))
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action+" "+e.Target)
	}
	want := []string{"fleetlock.lock default/" + first.name, "fleetlock.release default/" + first.name,
		"fleetlock.lock default/" + second.name, "fleetlock.lock default/" + last.name, "fleetlock.unlock default/" + last.name}
	if !slices.Equal(actions, want) {
		t.Errorf("slot events %v, want %v", actions, want)
	}
}

// expireTimedOut inserts, before the next lock after it, the end of the
// slot the named device held until its timeout (the server records no
// event for a slot that times out).
func expireTimedOut(events []protocol.AuditEntry, name string) []protocol.AuditEntry {
	var out []protocol.AuditEntry
	held := false
	for _, e := range events {
		if e.Action == "fleetlock.lock" && held && e.Target != "default/"+name {
			out = append(out, protocol.AuditEntry{ID: e.ID, Action: "fleetlock.release", Target: "default/" + name})
			held = false
		}
		if e.Action == "fleetlock.lock" && e.Target == "default/"+name {
			held = true
		}
		out = append(out, e)
	}
	return out
}

// Kernel builds of TestRebootWrongKernel: the one installed, and its fix.
const (
	oldKernel = "5.14.0-1.el9"
	newKernel = "5.14.0-2.el9"
	kernelAdv = "RFSA-2026:1302"
)

// newKernelRepo is a signed repository whose advisory updates kernel-core
// from oldKernel to newKernel (a kernel needs a reboot by its name).
func newKernelRepo(t *testing.T) (*fleetRepo, string) {
	t.Helper()
	arch := rpmArch(t)
	var pkgs []rpmtest.Package
	for _, vr := range []string{oldKernel, newKernel} {
		v, r, _ := strings.Cut(vr, "-")
		pkgs = append(pkgs, rpmtest.Package{Name: "kernel-core", Version: v, Release: r, Arch: arch,
			Files: map[string]string{"/lib/modules/" + vr + "." + arch + "/vmlinuz": "kernel " + vr + "\n"}})
	}
	dir := t.TempDir()
	paths, err := rpmtest.Build(filepath.Join(dir, "rpms"), pkgs...)
	if err != nil {
		t.Fatalf("build kernel rpms (run make deps): %v", err)
	}
	key := rpmtest.NewKey(t, rpmtest.KeyRSA4096, "rpmfleet-kernel-it")
	if err := rpmtest.Sign(key, paths...); err != nil {
		t.Fatal(err)
	}
	adv := &advisory.Advisory{
		ID: kernelAdv, Type: advisory.Security, Severity: advisory.Important, Title: "kernel security update",
		Issued:     time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC),
		References: []advisory.Reference{{Type: "cve", ID: "CVE-2026-1302", URL: "https://www.cve.org/CVERecord?id=CVE-2026-1302", Title: "CVE-2026-1302"}},
		Packages:   []advisory.Package{{Name: "kernel-core", EVR: rpmver.MustParseEVR(newKernel), Arch: arch, Filename: pkgs[1].FileName()}},
	}
	var ui bytes.Buffer
	w := updateinfo.NewWriter(&ui)
	if err := w.Write(adv); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r := &fleetRepo{dir: filepath.Join(dir, "repo"), key: key.PublicKeyFile, rpms: map[string]string{}}
	if err := rpmtest.NewRepo(r.dir, paths, ui.Bytes()); err != nil {
		t.Fatal(err)
	}
	r.srv = rpmtest.Serve(t, r.dir)
	return r, paths[0]
}

// TestRebootWrongKernel: two real agents install a kernel update and need
// a reboot, one slot. The first comes back from its (FAKE) reboot on the
// old kernel, as after a boot loader that kept the old default or fell
// back: it says so in its log and its reboot record, and keeps the slot,
// so the second does not reboot into the same trouble. An admin looks and
// frees the slot; the second reboots, comes back on the new kernel and
// frees it.
func TestRebootWrongKernel(t *testing.T) {
	repo, oldRPM := newKernelRepo(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "server.toml", "[fleetlock]\nslots = 1\n")
	srv := startServer(t, filepath.Join(dir, "data"), "--mqtt-listen", "off", "--config", cfg)
	dumpOnFailure(t, srv)
	arch := rpmArch(t)
	var devs []*rebooter
	for _, n := range []string{"pi-k1", "pi-k2"} {
		osr, err := os.ReadFile(filepath.Join(fixtures(t), "os-release", "almalinux-9.2-host.os-release"))
		if err != nil {
			t.Fatal(err)
		}
		root := t.TempDir()
		if err := rpmtest.NewDevRoot(root, osr, nil); err != nil {
			t.Fatalf("make device root: %v", err)
		}
		rpmIn(t, root, "-i", oldRPM)
		d := startRebooter(t, srv, repo, n, root, "")
		// It runs the old kernel (read only after a boot).
		if err := os.WriteFile(filepath.Join(d.proc, "sys", "kernel", "osrelease"), []byte(oldKernel+"."+arch+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d)
	}
	for _, d := range devs {
		waitReported(t, srv, d.agent)
	}
	must(t, adminEnv(srv), "rpmfleet", "import", repo.url())

	rebooted := func() []*rebooter {
		var out []*rebooter
		for _, d := range devs {
			if len(d.rebootTimes(t)) > 0 {
				out = append(out, d)
			}
		}
		return out
	}
	waitFor(t, 90*time.Second, "a first device to reboot", func() (bool, string) { return len(rebooted()) > 0, "" })
	first := rebooted()[0]
	second := devs[0]
	if second == first {
		second = devs[1]
	}
	if v := installed(t, first.root, "kernel-core"); !strings.Contains(v, newKernel) || !strings.Contains(v, oldKernel) {
		t.Errorf("%s has kernel-core %q, want %s beside %s (installed side by side)", first.name, v, newKernel, oldKernel)
	}
	// Its boot comes back on the old kernel: the FAKE /proc still says
	// oldKernel.
	mark := first.log.Len()
	waitFor(t, 30*time.Second, first.name+" back", func() (bool, string) { first.boot(t); return len(first.restarts) == 1, "" })
	first.waitLog(t, mark, 30*time.Second, "booted a kernel other than the one the update installed")
	var rec struct {
		Stage, Kernel, Running, Group, ID string
	}
	b, err := os.ReadFile(filepath.Join(first.state, "reboot.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Stage != "wrong-kernel" || rec.Kernel != newKernel || rec.Running != oldKernel+"."+arch || rec.Group != "default" || rec.ID != first.id {
		t.Errorf("%s's reboot record %s (%v): want stage wrong-kernel, kernel %s, running %s.%s, its slot", first.name, b, err, newKernel, oldKernel, arch)
	}
	// It keeps the slot: the second waits.
	second.waitLog(t, 0, 60*time.Second, "reboot slots all held by others")
	time.Sleep(2 * time.Second)
	if len(second.rebootTimes(t)) != 0 {
		t.Fatalf("%s rebooted while %s, on the wrong kernel, held the slot", second.name, first.name)
	}
	if strings.Contains(first.log.String(), "reboot slot freed") {
		t.Errorf("%s freed its slot though it runs the old kernel", first.name)
	}
	// The admin frees it; the second reboots and comes back on the new
	// kernel (its FAKE /proc says newKernel after the reboot).
	must(t, adminEnv(srv), "rpmfleet", "fleetlock", "release", "default", first.name)
	waitFor(t, 60*time.Second, second.name+" rebooted", func() (bool, string) { return len(second.rebootTimes(t)) > 0, "" })
	if err := os.WriteFile(filepath.Join(second.proc, "sys", "kernel", "osrelease"), []byte(newKernel+"."+arch+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, second.name+" back and its slot freed", func() (bool, string) {
		second.boot(t)
		return strings.Contains(second.log.String(), "reboot slot freed"), ""
	})
	if _, err := os.Stat(filepath.Join(second.state, "reboot.json")); !os.IsNotExist(err) {
		t.Errorf("%s's reboot record is still there: %v", second.name, err)
	}
	var actions []string
	for _, e := range slotEvents(t, srv) {
		actions = append(actions, e.Action+" "+e.Target)
	}
	want := []string{"fleetlock.lock default/" + first.name, "fleetlock.release default/" + first.name,
		"fleetlock.lock default/" + second.name, "fleetlock.unlock default/" + second.name}
	if !slices.Equal(actions, want) {
		t.Errorf("slot events %v, want %v", actions, want)
	}
}

// TestRebootAgentRestartsAndUserStays: an agent holding its slot and
// waiting for a logged-in user is restarted (systemd, an upgrade of the
// agent) before its reboot: it asks for its slot again (recursive: the
// same holder gets it again) and schedules the reboot again. The user never logs out: after
// session_wait the reboot goes on anyway. There is no wall on this device:
// the log says the users could not be warned.
func TestRebootAgentRestartsAndUserStays(t *testing.T) {
	repo := newRebootRepo(t)
	dir := t.TempDir()
	srv := startServer(t, filepath.Join(dir, "data"), "--mqtt-listen", "off")
	dumpOnFailure(t, srv)
	session := exec.Command("sleep", "600")
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { session.Process.Kill(); session.Wait() })
	utmpFile := writeFile(t, dir, "utmp", string(utmpRecord(session.Process.Pid, "tty1", "bob")))
	const wait = 4 * time.Second
	d := startRebooter(t, srv, repo, "pi-r", "", fmt.Sprintf("session_wait = %q\n", wait.String()),
		"RPMFLEET_UTMP="+utmpFile, "RPMFLEET_WALL_COMMAND="+filepath.Join(dir, "no-such-wall"))
	waitReported(t, srv, d.agent)
	importFix(t, srv, repo)

	d.waitLog(t, 0, 90*time.Second, "reboot waits for interactive sessions to end")
	if !strings.Contains(d.log.String(), "no wall to warn users with") {
		t.Error("the log does not say that there is no wall")
	}
	d.stop(t)
	b, err := os.ReadFile(filepath.Join(d.state, "reboot.json"))
	if err != nil || !strings.Contains(string(b), `"stage": "locked"`) {
		t.Fatalf("reboot record while stopped: %s, %v; want stage locked", b, err)
	}
	mark := d.log.Len()
	restarted := time.Now()
	d.start(t)
	d.waitLog(t, mark, 30*time.Second, "agent restarted before the reboot it had a slot for")
	waitFor(t, 60*time.Second, "the reboot", func() (bool, string) { return len(d.rebootTimes(t)) == 1, "" })
	at := d.rebootTimes(t)[0]
	if at.Sub(restarted) < wait {
		t.Errorf("rebooted %v after the restart, before session_wait (%v) ran out", at.Sub(restarted), wait)
	}
	if err := session.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("bob's session ended (%v); the test wanted it to stay", err)
	}
	if !strings.Contains(d.logSince(mark), "interactive sessions still open after session_wait: rebooting anyway") {
		t.Error("the log does not say the reboot went on with a user logged in")
	}
	waitFor(t, 30*time.Second, "back and the slot freed", func() (bool, string) {
		d.boot(t)
		return strings.Contains(d.logSince(mark), "reboot slot freed"), ""
	})
	var actions []string
	for _, e := range slotEvents(t, srv) {
		actions = append(actions, e.Action+" "+e.Target)
	}
	// Locked, locked again after the restart (the lock is recursive: the
	// agent asks again, since a slot may time out while it is down),
	// unlocked once back.
	if want := []string{"fleetlock.lock default/pi-r", "fleetlock.lock default/pi-r", "fleetlock.unlock default/pi-r"}; !slices.Equal(actions, want) {
		t.Errorf("slot events %v, want %v", actions, want)
	}
}

// TestRebootThirdPartyLockServer: an agent enrolled with one server takes
// its reboot slot from another FleetLock server ([reboot] fleetlock_url;
// here a second rpmfleet-server with auth = "open", standing in for
// Airlock): it gets and frees the slot there under its group and id, and
// never sends that server its device credential (which the second server
// would refuse as unknown, 401).
func TestRebootThirdPartyLockServer(t *testing.T) {
	repo := newRebootRepo(t)
	dir := t.TempDir()
	srv := startServer(t, filepath.Join(dir, "fleet"), "--mqtt-listen", "off")
	dumpOnFailure(t, srv)
	lockCfg := writeFile(t, dir, "lock.toml", "[fleetlock]\nauth = \"open\"\n[fleetlock.groups]\nlab = 1\n")
	lock := startServer(t, filepath.Join(dir, "lock"), "--mqtt-listen", "off", "--config", lockCfg)
	dumpOnFailure(t, lock)
	d := startRebooter(t, srv, repo, "pi-x", "", fmt.Sprintf("fleetlock_url = %q\ngroup = \"lab\"\nid = \"pi-x.lab\"\n", lock.url))
	waitReported(t, srv, d.agent)
	importFix(t, srv, repo)
	waitFor(t, 90*time.Second, "the reboot", func() (bool, string) { return len(d.rebootTimes(t)) == 1, "" })
	var slots []protocol.FleetLockSlot
	if code, raw := call(t, "GET", lock.url+protocol.PathFleetLock, lock.admin, nil, &slots); code != 200 || len(slots) != 1 || slots[0].Group != "lab" || slots[0].ID != "pi-x.lab" {
		t.Errorf("the lock server's slots while pi-x reboots: %d %s, want lab/pi-x.lab", code, raw)
	}
	waitFor(t, 30*time.Second, "back and the slot freed", func() (bool, string) {
		d.boot(t)
		return strings.Contains(d.log.String(), "reboot slot freed"), ""
	})
	var actions []string
	for _, e := range slotEvents(t, lock) {
		actions = append(actions, e.Action+" "+e.Target+" by "+e.Actor)
	}
	if want := []string{"fleetlock.lock lab/pi-x.lab by fleetlock client pi-x.lab", "fleetlock.unlock lab/pi-x.lab by fleetlock client pi-x.lab"}; !slices.Equal(actions, want) {
		t.Errorf("the lock server's slot events %v, want %v", actions, want)
	}
	if ev := slotEvents(t, srv); len(ev) != 0 {
		t.Errorf("the fleet server saw slot events %+v; the lock is elsewhere", ev)
	}
}

// TestRebootUnhealthyBoot: a device comes back on the right kernel but its
// health check ([policy] health_checks, which passed when the update was
// applied) now fails: it keeps its slot, so the other device of the group
// waits, and says so; once the admin has fixed the service and restarted
// the agent, the checks pass, the slot is freed and the other device
// reboots.
func TestRebootUnhealthyBoot(t *testing.T) {
	repo := newRebootRepo(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "server.toml", "[fleetlock]\nslots = 1\n")
	srv := startServer(t, filepath.Join(dir, "data"), "--mqtt-listen", "off", "--config", cfg)
	dumpOnFailure(t, srv)
	healthy := writeFile(t, dir, "service-up", "up\n")
	check := fmt.Sprintf("health_checks = [%q]\n", "test -e "+healthy)
	var devs []*rebooter
	for _, n := range []string{"pi-h1", "pi-h2"} {
		devs = append(devs, startRebooterPolicy(t, srv, repo, n, "", check, ""))
	}
	for _, d := range devs {
		waitReported(t, srv, d.agent)
	}
	importFix(t, srv, repo)
	var first, second *rebooter
	waitFor(t, 90*time.Second, "a first reboot", func() (bool, string) {
		for i, d := range devs {
			if len(d.rebootTimes(t)) > 0 {
				first, second = d, devs[1-i]
				return true, ""
			}
		}
		return false, ""
	})
	// Both have applied the fix (the second needs its own reboot, and
	// waits for the slot) before the service breaks: a second still
	// applying would fail its health check and need no reboot at all.
	second.waitLog(t, 0, 60*time.Second, "update cycle finished")
	// The service does not come back with the boot.
	if err := os.Remove(healthy); err != nil {
		t.Fatal(err)
	}
	mark := first.log.Len()
	waitFor(t, 30*time.Second, first.name+" back", func() (bool, string) { first.boot(t); return len(first.restarts) == 1, "" })
	first.waitLog(t, mark, 60*time.Second, "unhealthy after the reboot: keeping the reboot slot")
	if b, err := os.ReadFile(filepath.Join(first.state, "reboot.json")); err != nil || !strings.Contains(string(b), `"stage": "unhealthy"`) {
		t.Errorf("%s's reboot record: %s, %v; want stage unhealthy", first.name, b, err)
	}
	second.waitLog(t, 0, 60*time.Second, "reboot slots all held by others")
	time.Sleep(2 * time.Second)
	if len(second.rebootTimes(t)) != 0 {
		t.Fatalf("%s rebooted while %s, unhealthy, held the slot", second.name, first.name)
	}
	// The admin brings the service back and restarts the agent.
	writeFile(t, dir, "service-up", "up\n")
	first.stop(t)
	mark = first.log.Len()
	first.start(t)
	first.waitLog(t, mark, 60*time.Second, "reboot slot freed")
	waitFor(t, 60*time.Second, second.name+" rebooted", func() (bool, string) { return len(second.rebootTimes(t)) == 1, "" })
	waitFor(t, 30*time.Second, second.name+" back and its slot freed", func() (bool, string) {
		second.boot(t)
		return strings.Contains(second.log.String(), "reboot slot freed"), ""
	})
	checkOneAtATime(t, slotEvents(t, srv))
}
