package update

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
)

// HealthDir is where, inside the root, executables that judge the device's
// health live: every executable file there is run after an update.
const HealthDir = "etc/rpmfleet/health.d"

// healthTimeout bounds each check.
const healthTimeout = 2 * time.Minute

// maxHealthOutput is how much of a check's output the journal keeps.
const maxHealthOutput = 4096

// healthChecks lists the checks to run: the commands given (run with sh -c),
// then the executables in ROOT/etc/rpmfleet/health.d, by name.
func healthChecks(root string, cmds []string) ([][]string, error) {
	var checks [][]string
	for _, c := range cmds {
		checks = append(checks, []string{"sh", "-c", c})
	}
	dir := filepath.Join(root, HealthDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return checks, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read health checks: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode()&0o111 == 0 {
			continue
		}
		checks = append(checks, []string{filepath.Join(dir, e.Name())})
	}
	return checks, nil
}

// runHealth runs every check and reports each; ok is false when any failed.
// Checks see the device root in RPMFLEET_ROOT.
func runHealth(ctx context.Context, root string, cmds []string) (results []HealthResult, ok bool, err error) {
	checks, err := healthChecks(root, cmds)
	if err != nil {
		return nil, false, err
	}
	ok = true
	for _, argv := range checks {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, healthTimeout)
		cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "RPMFLEET_ROOT="+root)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		rerr := cmd.Run()
		cancel()
		r := HealthResult{Check: argv[len(argv)-1], OK: rerr == nil, Duration: time.Since(start).Round(time.Millisecond).String()}
		var ee *exec.ExitError
		switch {
		case errors.As(rerr, &ee):
			r.ExitCode = ee.ExitCode()
		case rerr != nil:
			r.ExitCode = -1
			out.WriteString(rerr.Error())
		}
		b := out.Bytes()
		if len(b) > maxHealthOutput {
			b = b[len(b)-maxHealthOutput:]
		}
		r.Output = string(b)
		if !r.OK {
			ok = false
		}
		results = append(results, r)
	}
	return results, ok, nil
}

// Health runs the health checks an update cycle runs (the commands, then
// ROOT/etc/rpmfleet/health.d), outside any cycle: the daemon asks it after
// a reboot before it frees its reboot slot. ok is false when any failed.
func Health(ctx context.Context, root string, cmds []string) (results []HealthResult, ok bool, err error) {
	return runHealth(ctx, root, cmds)
}
