package report

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// cycleResults turns the finished update cycles newer than after into the
// report's cycle results, oldest first, and returns the newest id among them
// (after when there are none). Cycles still running are left for a later
// report.
func cycleResults(cycles []*update.Cycle, after int) ([]protocol.CycleResult, int) {
	var out []protocol.CycleResult
	last := after
	for _, c := range cycles {
		if c.ID <= after || !c.Phase.Final() {
			continue
		}
		r := protocol.CycleResult{ID: int64(c.ID), Error: c.Error, Started: c.Started.UTC(), Finished: c.Finished.UTC()}
		switch c.Phase {
		case update.Committed:
			r.Outcome = protocol.OutcomeApplied
			r.RebootNeeded = c.Reboot.Needed
		case update.RolledBack:
			r.Outcome = protocol.OutcomeRolledBack
		default:
			r.Outcome = protocol.OutcomeFailed
		}
		for _, a := range c.Advisories {
			r.Advisories = append(r.Advisories, a.ID)
		}
		for _, p := range c.Packages {
			if old, ok := cyclePackage(p.Name, p.Arch, p.From); ok {
				r.Before = append(r.Before, old)
			}
			if r.Outcome == protocol.OutcomeApplied {
				if nw, ok := cyclePackage(p.Name, p.Arch, p.To); ok {
					r.After = append(r.After, nw)
				}
			}
		}
		out = append(out, r)
		last = max(last, c.ID)
	}
	return out, last
}

func cyclePackage(name, arch, evr string) (protocol.Package, bool) {
	if evr == "" {
		return protocol.Package{}, false
	}
	e, err := rpmver.ParseEVR(evr)
	if err != nil {
		return protocol.Package{}, false
	}
	return protocol.Package{Name: name, Epoch: e.Epoch, Version: e.Version, Release: e.Release, Arch: arch}, true
}

// rebootPending reports whether the newest applied cycle needs a reboot
// the machine has not made since: it finished after the kernel booted.
func rebootPending(cycles []*update.Cycle, booted time.Time) bool {
	var newest *update.Cycle
	for _, c := range cycles {
		if c.Phase == update.Committed && (newest == nil || c.Finished.After(newest.Finished)) {
			newest = c
		}
	}
	return newest != nil && newest.Reboot.Needed && !booted.IsZero() && newest.Finished.After(booted)
}

// wrongKernel reports whether the daemon's reboot record
// (STATE/reboot.json, agent/internal/daemon/rebootlock.go) says the device
// came back from its reboot on a kernel other than the one its update
// installed: the fix is then not running, and the report says a reboot is
// still pending, whatever the boot time says.
func wrongKernel(stateDir string) bool {
	f, err := os.Open(filepath.Join(stateDir, "reboot.json"))
	if err != nil {
		return false
	}
	defer f.Close()
	var rec struct {
		Stage string `json:"stage"`
	}
	return json.NewDecoder(io.LimitReader(f, 64<<10)).Decode(&rec) == nil && rec.Stage == "wrong-kernel"
}

// bootTime is when the running kernel booted (/proc/stat btime); zero when
// unknown.
func bootTime() time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(n, 0)
			}
		}
	}
	return time.Time{}
}
