package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestDaemonSIGTERMDuringCycle: systemd stops the agent (SIGTERM to the
// agent alone, KillMode=mixed) at three moments of an update cycle. In
// each the agent exits 0 without reporting a verdict it does not have, and
// started again it finishes the one cycle, which the server then sees:
//
//   - during the preflight's rpm --test: the check is cut (it changes
//     nothing) and runs again at the next start;
//   - during the rpm -U transaction: rpm is never cut; the agent waits
//     for it and records the cycle committed before it exits;
//   - during a health check: the check is cut, the update is NOT rolled
//     back for it, and the checks run again at the next start.
//
// A slow step is made with a wrapper first on the agent's PATH that runs
// the real rpm 3 s late (a stand-in for a transaction on an SD card, which
// takes minutes), or with a health check that sleeps; each marks when it
// started, so the test stops the agent inside the step.
func TestDaemonSIGTERMDuringCycle(t *testing.T) {
	realRPM, err := exec.LookPath("rpm")
	if err != nil {
		t.Fatal("rpm not found: run make deps")
	}
	repo := newFleetRepo(t)
	srv, _ := startPushServer(t, filepath.Join(t.TempDir(), "data"))
	dumpOnFailure(t, srv)

	type stopCase struct {
		name string
		// slow are shell case branches on rpm's arguments that pick the
		// call to slow down (marked STEP); "" for none.
		slow string
		// health is a health check that waits; "" for none.
		health string
		// waited is whether the agent must wait for the step (rpm -U)
		// rather than cut it.
		waited  bool
		a       *agent
		started string
	}
	cases := []*stopCase{
		{name: "preflight", slow: `*" --test "*) STEP ;;`},
		{name: "transaction", slow: `*" --test "*) ;; *" -U "*) STEP ;;`, waited: true},
		{name: "health-check", health: "sleep 3"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		c.started = filepath.Join(dir, "step-started")
		env := []string{}
		cfg := agentConfig{Mode: "apply"}
		if c.slow != "" {
			// From the agent's side the step runs from the moment it
			// started rpm until rpm exits.
			step := fmt.Sprintf(": >%s; sleep 3", c.started)
			script := fmt.Sprintf("#!/bin/sh\ncase \" $* \" in %s esac\nexec %s \"$@\"\n",
				strings.ReplaceAll(c.slow, "STEP", step), realRPM)
			if err := os.WriteFile(filepath.Join(dir, "rpm"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			env = append(env, "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		}
		if c.health != "" {
			cfg.HealthChecks = []string{fmt.Sprintf(": >%s; %s", c.started, c.health)}
		}
		c.a = enrollAgent(t, srv, repo, "pi-stop-"+c.name, repo.deviceRoot(t))
		c.a.env = env
		c.a.writeConfig(t, cfg)
		c.a.start(t)
	}
	for _, c := range cases {
		waitReported(t, srv, c.a)
	}

	marks := map[string]int{}
	for _, c := range cases {
		marks[c.name] = c.a.log.Len()
	}
	importFix(t, srv, repo)
	// Each agent gets its SIGTERM as soon as its slow step has started,
	// all three within the 3 s the steps take.
	signalled := map[string]bool{}
	waitFor(t, pushDeadline, "every slow step to start", func() (bool, string) {
		for _, c := range cases {
			if _, err := os.Stat(c.started); err == nil && !signalled[c.name] {
				c.a.signal(t, syscall.SIGTERM)
				signalled[c.name] = true
			}
		}
		return len(signalled) == len(cases), fmt.Sprintf("started: %v", signalled)
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := c.a
			a.waitExit(t, 20*time.Second)
			log := a.logSince(marks[c.name])
			if !strings.Contains(log, "waiting for the update cycle to reach a step boundary") {
				t.Errorf("the agent did not say it waited for its cycle; its log:\n%s", log)
			}
			if strings.Contains(log, "phase=failed") || strings.Contains(log, "phase=rolling-back") {
				t.Errorf("stopping the agent was taken for a failed update; its log:\n%s", log)
			}
			v := installed(t, a.root, "demo-lib")
			switch {
			case c.waited:
				if v != newLib {
					t.Errorf("demo-lib is %q after the stop, want %s: the transaction was cut short", v, newLib)
				}
				if !strings.Contains(log, "phase=committed") {
					t.Errorf("the cycle was not committed before the agent exited; its log:\n%s", log)
				}
			case c.name == "preflight":
				if v != oldLib {
					t.Errorf("demo-lib is %q after a stop in the preflight, want %s untouched", v, oldLib)
				}
			default: // health check: installed, not yet judged
				if v != newLib {
					t.Errorf("demo-lib is %q after a stop in the health check, want %s (not rolled back)", v, newLib)
				}
			}

			// Started again, the one cycle ends committed and the server
			// learns of it; nothing runs twice.
			mark := a.log.Len()
			a.start(t)
			if !c.waited {
				a.waitLog(t, mark, pushDeadline, "update cycle finished", "phase=committed")
			}
			waitDevice(t, srv, a.name, pushDeadline, "the device patched", func(d protocol.Device) bool {
				return statusOf(d) == protocol.StatusPatched
			})
			if v := installed(t, a.root, "demo-lib"); v != newLib {
				t.Errorf("after the restart demo-lib is %q, want %s", v, newLib)
			}
			out := must(t, nil, "rpmfleet-agent", "history", "--state-dir", a.state, "--json")
			var hist struct {
				Cycles []struct {
					Phase string `json:"phase"`
				} `json:"cycles"`
			}
			if err := json.Unmarshal([]byte(out.stdout), &hist); err != nil {
				t.Fatalf("history --json: %v\n%s", err, out.stdout)
			}
			if len(hist.Cycles) != 1 || hist.Cycles[0].Phase != "committed" {
				t.Errorf("history after the restart = %s, want one committed cycle", out.stdout)
			}
		})
	}
}

// TestDaemonSIGHUPReload: "systemctl reload" (SIGHUP) re-reads the
// configuration even when the change is one the file watch cannot see:
// here agent.toml is a symlink into another folder, as configuration
// management tools lay it out, and only the target changes.
func TestDaemonSIGHUPReload(t *testing.T) {
	repo := newFleetRepo(t)
	srv, _ := startPushServer(t, filepath.Join(t.TempDir(), "data"))
	dumpOnFailure(t, srv)
	a := enrollAgent(t, srv, repo, "pi-sighup", repo.deviceRoot(t))
	target := filepath.Join(t.TempDir(), "agent.toml")
	write := func(cfg agentConfig) {
		t.Helper()
		tmp := target + ".new"
		if err := os.WriteFile(tmp, []byte(cfg.toml(a)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(tmp, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, target); err != nil {
			t.Fatal(err)
		}
	}
	write(agentConfig{Mode: "notify"})
	if err := os.Symlink(target, a.cfgPath); err != nil {
		t.Fatal(err)
	}
	a.start(t)
	waitReported(t, srv, a)
	mark := a.log.Len()
	importFix(t, srv, repo)
	a.waitLog(t, mark, pushDeadline, fixAdvisory)

	mark = a.log.Len()
	write(agentConfig{Mode: "apply"})
	time.Sleep(2 * time.Second) // the file watch's delay is 200 ms
	if strings.Contains(a.logSince(mark), "configuration reloaded") {
		t.Fatalf("the watch saw a change behind the symlink; this test no longer tests SIGHUP:\n%s", a.logSince(mark))
	}
	if v := installed(t, a.root, "demo-lib"); v != oldLib {
		t.Fatalf("before the reload the agent installed demo-lib %s", v)
	}
	a.signal(t, syscall.SIGHUP)
	a.waitLog(t, mark, 20*time.Second, "configuration reloaded", "mode=apply")
	a.waitInstalled(t, pushDeadline, "demo-lib", newLib)
	waitExposure(t, srv, fixCVE, 20*time.Second, nil, []string{a.name})
}
