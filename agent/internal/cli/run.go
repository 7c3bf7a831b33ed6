package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/client"
	"github.com/rpmfleet/rpmfleet/agent/internal/config"
	"github.com/rpmfleet/rpmfleet/agent/internal/daemon"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/version"
)

func init() {
	register("run", "run the agent daemon (push, poll, policy, apply, report)", runDaemon)
}

// Environment variables that change the daemon's timing and its reboot, for
// tests and demos; none is needed in production.
const (
	// envRebootCommand replaces "systemctl reboot" (split on spaces):
	// tests set a script that writes a file, a FAKE reboot.
	envRebootCommand = "RPMFLEET_REBOOT_COMMAND"
	// envWallCommand replaces "wall" for the warning before a reboot.
	envWallCommand = "RPMFLEET_WALL_COMMAND"
	// envRebootGrace is the wait between warning and reboot (Go duration).
	envRebootGrace = "RPMFLEET_REBOOT_GRACE"
	// envDebounce is how long the rpm database must stay quiet before a
	// change is reported (Go duration, default 2s).
	envDebounce = "RPMFLEET_DEBOUNCE"
	// envPollRetryMin is the first backoff ceiling after a failed plan
	// fetch (Go duration, default 10s).
	envPollRetryMin = "RPMFLEET_POLL_RETRY_MIN"
	// envSpoolDir is the spool folder (default STATE_DIR/spool).
	envSpoolDir = "RPMFLEET_SPOOL_DIR"
	// envReportRetryMax is the longest wait between two tries of a report
	// (Go duration, default 10m); a successful plan fetch also ends the
	// wait.
	envReportRetryMax = "RPMFLEET_REPORT_RETRY_MAX"
	// envProcRoot replaces /proc where the running kernel
	// (sys/kernel/osrelease) and the boot id (sys/kernel/random/boot_id)
	// are read: tests point it at a folder their FAKE reboot rewrites.
	envProcRoot = "RPMFLEET_PROC_ROOT"
	// envUtmp replaces /run/utmp, the logged-in users a reboot waits for.
	envUtmp = "RPMFLEET_UTMP"
	// envFleetLockRetryMax is the longest wait between two FleetLock
	// requests (Go duration, default 5m; the first wait is at most a
	// fifth of it, 5s by default).
	envFleetLockRetryMax = "RPMFLEET_FLEETLOCK_RETRY_MAX"
	// envSessionPoll is how often a waiting reboot looks at the
	// logged-in users again (Go duration, default 30s).
	envSessionPoll = "RPMFLEET_SESSION_POLL"
)

func runDaemon(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "run", "run [--config FILE]")
	path := fs.String("config", config.DefaultPath, "configuration file")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return ExitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return fail(e, "run", err)
	}
	// Enrolled: server mode. Not enrolled and no server configured:
	// standalone, on the device's own repositories. Enrolling later and
	// restarting switches to server mode.
	cred, err := client.State{Dir: cfg.StateDir}.LoadCredential()
	standalone := errors.Is(err, client.ErrNotEnrolled) && cfg.Server == ""
	if err != nil && !standalone {
		return fail(e, "run", err)
	}
	if standalone {
		cred = client.Credential{}
	}
	o := daemon.Options{
		Config: cfg, ConfigPath: *path, Credential: cred, Log: e.log,
		Info:          func() protocol.DeviceInfo { return deviceInfo(cfg.Root) },
		RebootCommand: envArgv(envRebootCommand),
		WallCommand:   envArgv(envWallCommand),
		SpoolDir:      os.Getenv(envSpoolDir),
		Reboot:        daemon.RebootOptions{ProcRoot: os.Getenv(envProcRoot), Utmp: os.Getenv(envUtmp)},
	}
	for _, d := range []struct {
		env string
		to  *time.Duration
	}{{envRebootGrace, &o.RebootGrace}, {envDebounce, &o.Debounce}, {envPollRetryMin, &o.PollRetryMin}, {envReportRetryMax, &o.ReportBackoff.Max},
		{envFleetLockRetryMax, &o.Reboot.LockBackoff.Max}, {envSessionPoll, &o.Reboot.SessionPoll}} {
		if s := os.Getenv(d.env); s != "" {
			if *d.to, err = time.ParseDuration(s); err != nil {
				return fail(e, "run", fmt.Errorf("%s=%q: %w", d.env, s, err))
			}
		}
	}
	if m := o.Reboot.LockBackoff.Max; m > 0 {
		o.Reboot.LockBackoff.Min = min(5*time.Second, m/5)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	o.Reload = reload
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}()
	if standalone {
		e.log.Info("rpmfleet-agent starting standalone", "version", version.String(), "config", *path, "mode", cfg.Policy.Mode,
			"mqtt", cfg.MQTT.Broker, "home_assistant", cfg.HomeAssistant.Enabled)
	} else {
		e.log.Info("rpmfleet-agent starting", "version", version.String(), "config", *path, "device", cred.Name, "server", cred.Server)
	}
	if err := daemon.Run(ctx, o); err != nil {
		return fail(e, "run", err)
	}
	return ExitOK
}

// envArgv splits an environment variable into a command; nil when unset.
func envArgv(name string) []string {
	f := strings.Fields(os.Getenv(name))
	if len(f) == 0 {
		return nil
	}
	return f
}
