package daemon

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestConfigReload: a good new file replaces the policy (the pending
// advisory is applied once the mode says apply); a bad one is refused, its
// error names the line, and the running configuration stays.
func TestConfigReload(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	w.srv.setPlan(t, advisoryPlan(""))
	w.writeConfig(t, policyTOML("notify", ""))
	reload := make(chan struct{}, 1)
	r := w.start(t, func(o *Options) { o.Reload = reload })
	waitFor(t, 30*time.Second, "the advisory pending", func() bool { return len(r.Status().Pending) == 1 })

	t.Run("bad file kept out", func(t *testing.T) {
		if err := os.WriteFile(w.cfgPath, []byte("[policy]\nmode = \"yolo\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the bad file refused", func() bool { return r.Status().ReloadErrors == 1 })
		if !strings.Contains(r.log.String(), `agent.toml:2: key \"policy.mode\": bad value`) {
			t.Errorf("the refusal does not name the line and key:\n%s", r.log.String())
		}
		// SIGHUP reads it again, with the same verdict.
		reload <- struct{}{}
		waitFor(t, 10*time.Second, "the bad file refused on SIGHUP", func() bool { return r.Status().ReloadErrors == 2 })
		if got := w.installed(t); !slices.Equal(got, []string{"demo-lib-1.0-1"}) {
			t.Fatalf("installed %v under the old notify policy", got)
		}
	})
	t.Run("good file applied", func(t *testing.T) {
		w.writeConfig(t, policyTOML("apply", ""))
		waitFor(t, 10*time.Second, "the reload", func() bool { return r.Status().Reloads == 1 })
		waitFor(t, 60*time.Second, "the advisory applied under the new policy", func() bool {
			return slices.Equal(w.installed(t), []string{"demo-lib-1.1-1"})
		})
	})
}

// TestManualChangeReported: someone installs a package by hand with rpm;
// a delta report saying so reaches the server on its own.
func TestManualChangeReported(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	w.writeConfig(t, policyTOML("notify", ""))
	w.start(t)
	waitFor(t, 30*time.Second, "the first full report", func() bool { return len(w.srv.Reports()) == 1 })
	w.rpm(t, "-i", "--nodeps", "--noscripts", "--nosignature", w.rpms["demo-extra-3.0"])
	waitFor(t, 30*time.Second, "the delta report", func() bool { return len(w.srv.Reports()) >= 2 })
	time.Sleep(500 * time.Millisecond) // debounced: one report, not one per file event
	reps := w.srv.Reports()
	if len(reps) != 2 {
		t.Fatalf("%d reports, want the full one and one delta", len(reps))
	}
	inv := reps[1].Inventory
	if inv.Kind != protocol.InventoryDelta || len(inv.Added) != 1 || inv.Added[0].Name != "demo-extra" || len(inv.Removed) != 0 {
		t.Errorf("delta %+v, want demo-extra added", inv)
	}
	if inv.Digest != "" && reps[0].Inventory.Digest == inv.Digest {
		t.Error("the delta's digest is the old set's")
	}
}

// TestStopDuringCycleResumes: the daemon is stopped while the cycle
// downloads; Run returns, the journal holds the unfinished cycle and
// nothing is installed; the next start settles it (update.Run resumes)
// and the device ends patched.
func TestStopDuringCycleResumes(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{repoDelay: 3 * time.Second})
	w.srv.setPlan(t, advisoryPlan(""))
	w.writeConfig(t, policyTOML("apply", ""))
	r := w.start(t)
	waitFor(t, 30*time.Second, "the cycle downloading", func() bool {
		st, err := update.ReadState(w.stateDir)
		if err != nil || st.Active == 0 {
			return false
		}
		c, err := update.ReadCycle(w.stateDir, st.Active)
		return err == nil && c.Phase == update.Downloading
	})
	start := time.Now()
	r.stop(t)
	t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
	st, err := update.ReadState(w.stateDir)
	if err != nil || st.Active == 0 {
		t.Fatalf("journal after the stop: %+v, %v; want the cycle active", st, err)
	}
	if got := w.installed(t); !slices.Equal(got, []string{"demo-lib-1.0-1"}) {
		t.Fatalf("installed %v after a stop in download", got)
	}

	w.start(t)
	waitFor(t, 60*time.Second, "the cycle settled", func() bool {
		st, err := update.ReadState(w.stateDir)
		return err == nil && st.Active == 0
	})
	c, err := update.ReadCycle(w.stateDir, st.Active)
	if err != nil || c.Phase != update.Committed || len(c.Recovery) == 0 {
		t.Fatalf("resumed cycle %+v, %v; want committed with a recovery note", c, err)
	}
	if got := w.installed(t); !slices.Equal(got, []string{"demo-lib-1.1-1"}) {
		t.Fatalf("installed %v after the resumed cycle", got)
	}
	waitFor(t, 30*time.Second, "the resumed cycle reported", func() bool { return cycleReport(w.srv.Reports()) != nil })
}

// TestSystemdNotify: READY=1, STATUS= and WATCHDOG=1 reach a real unixgram
// NOTIFY_SOCKET, the watchdog at half of WATCHDOG_USEC.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	var got []string
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(buf[:n]))
			mu.Unlock()
		}
	}()
	has := func(prefix string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, g := range got {
			if strings.HasPrefix(g, prefix) {
				n++
			}
		}
		return n
	}
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	w := newWorld(t, worldOpts{})
	w.writeConfig(t, policyTOML("notify", ""))
	r := w.start(t)
	waitFor(t, 10*time.Second, "READY=1", func() bool { return has("READY=1") == 1 })
	waitFor(t, 10*time.Second, "an idle STATUS", func() bool { return has("STATUS=idle; next poll ") >= 1 })
	waitFor(t, 10*time.Second, "three watchdog pings", func() bool { return has("WATCHDOG=1") >= 3 })
	r.stop(t)
	waitFor(t, 5*time.Second, "STOPPING=1", func() bool { return has("STOPPING=1") == 1 })
}

// TestSpoolBundle: a signed bundle dropped into the spool folder is applied
// from its own repository and moved to done/; a tampered one is refused,
// moved to failed/ with the reason, and nothing is installed for it.
func TestSpoolBundle(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	w.writeConfig(t, policyTOML("apply", ""))
	spool := filepath.Join(w.stateDir, "spool")
	r := w.start(t)
	waitFor(t, 30*time.Second, "the daemon idle", func() bool { return r.Status().State == "idle" && !r.Status().LastCheck.IsZero() })
	// The online plan is empty; the server does not know this site's repo.

	bundle := func(name string, plan []byte) {
		tmp := filepath.Join(w.dir, name)
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", w.repoDir, filepath.Join(tmp, "repo")).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		if err := os.WriteFile(filepath.Join(tmp, "plan.json"), plan, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(spool, name)); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("tampered", func(t *testing.T) {
		msg := sign(t, w.signer, notice.KindPlan, deviceID, advisoryPlan(""), time.Hour)
		var env map[string]any
		json.Unmarshal(msg, &env)
		env["payload"] = strings.Replace(env["payload"].(string), "A", "B", 1)
		bad, _ := json.Marshal(env)
		bundle("site-a", bad)
		waitFor(t, 10*time.Second, "the bundle refused", func() bool { return r.Status().SpoolFailed == 1 })
		reason, err := os.ReadFile(filepath.Join(spool, "failed", "site-a.reason"))
		if err != nil || !strings.Contains(string(reason), "plan.json") {
			t.Errorf("reason %q, %v; want one naming plan.json", reason, err)
		}
		if got := w.installed(t); !slices.Equal(got, []string{"demo-lib-1.0-1"}) {
			t.Fatalf("installed %v from a tampered bundle", got)
		}
	})
	t.Run("signed", func(t *testing.T) {
		bundle("site-b", sign(t, w.signer, notice.KindPlan, deviceID, advisoryPlan(fileSHA256(t, w.rpms["demo-lib-1.1"])), time.Hour))
		waitFor(t, 60*time.Second, "the bundle applied", func() bool { return r.Status().SpoolDone == 1 })
		if got := w.installed(t); !slices.Equal(got, []string{"demo-lib-1.1-1"}) {
			t.Fatalf("installed %v, want demo-lib-1.1-1 from the bundle", got)
		}
		if reason, err := os.ReadFile(filepath.Join(spool, "done", "site-b.reason")); err != nil || !strings.Contains(string(reason), "committed") {
			t.Errorf("done reason %q, %v", reason, err)
		}
	})
}

// TestRebootInWindow: an applied advisory that needs a reboot, reboot =
// "when-needed" and an open window: the users are warned, then the reboot
// command runs. Both commands are FAKES, scripts that write a file: a test
// cannot reboot the machine.
func TestRebootInWindow(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{rebootSuggested: true})
	w.srv.setPlan(t, advisoryPlan(""))
	w.writeConfig(t, policyTOML("apply", "open", `reboot = "when-needed"`))
	wall, reboot := filepath.Join(w.dir, "wall.out"), filepath.Join(w.dir, "rebooted")
	script := func(name, body string) string {
		p := filepath.Join(w.dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wallCmd := script("fake-wall", `echo "$1" > `+wall)
	rebootCmd := script("fake-reboot", `date > `+reboot)
	r := w.start(t, func(o *Options) {
		o.WallCommand, o.RebootCommand, o.RebootGrace = []string{wallCmd}, []string{rebootCmd}, 300*time.Millisecond
	})
	waitFor(t, 60*time.Second, "the fake reboot", func() bool { _, err := os.Stat(reboot); return err == nil })
	msg, err := os.ReadFile(wall)
	if err != nil || !strings.Contains(string(msg), "reboots in") {
		t.Errorf("wall got %q, %v; want the warning", msg, err)
	}
	if c := r.Status().LastCycle; c == nil || !c.Reboot {
		t.Errorf("last cycle %+v, want one needing a reboot", c)
	}
}

// TestServerDownReportsWait: the server is down at start; the full report
// and a later change wait in the queue, plan fetches back off; when the
// server is back, the next fetch succeeds and the queue drains at once, in
// order, nothing lost.
func TestServerDownReportsWait(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	w.writeConfig(t, policyTOML("notify", ""))
	w.srv.setDown(true)
	r := w.start(t, func(o *Options) {
		o.ReportBackoff.Min, o.ReportBackoff.Max = time.Hour, time.Hour // only the server's return wakes it
	})
	waitFor(t, 30*time.Second, "the first report queued", func() bool { return r.Status().Queued == 1 })
	w.rpm(t, "-i", "--nodeps", "--noscripts", "--nosignature", w.rpms["demo-extra-3.0"])
	waitFor(t, 30*time.Second, "the change queued", func() bool { return r.Status().Queued == 2 })
	if n := len(w.srv.Reports()); n != 0 {
		t.Fatalf("%d reports reached a server that is down", n)
	}
	w.srv.setDown(false)
	waitFor(t, 30*time.Second, "the queue drained", func() bool { return len(w.srv.Reports()) == 2 })
	reps := w.srv.Reports()
	if reps[0].Inventory.Kind != protocol.InventoryFull || reps[1].Inventory.Kind != protocol.InventoryDelta ||
		len(reps[1].Inventory.Added) != 1 || reps[1].Inventory.Added[0].Name != "demo-extra" {
		t.Errorf("reports %+v then %+v, want the full list then demo-extra added", reps[0].Inventory, reps[1].Inventory)
	}
	waitFor(t, 10*time.Second, "the status to show an empty queue", func() bool { return r.Status().Queued == 0 })
}
