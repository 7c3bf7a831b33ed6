package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/config"
	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
)

func init() {
	register("config", "check the configuration file (config check [--config FILE])", runConfig)
}

// configNow is the clock config check shows the next window from; tests
// set it.
var configNow = time.Now

const configUsage = "config check [--config FILE | FILE]"

func runConfig(_ context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintf(e.stderr, "Usage: rpmfleet-agent %s\n", configUsage)
			return ExitOK
		}
		fmt.Fprintf(e.stderr, "Usage: rpmfleet-agent %s\n", configUsage)
		return ExitUsage
	}
	fs := newFlagSet(e, "config check", configUsage)
	path := fs.String("config", config.DefaultPath, "configuration file to check")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	switch fs.NArg() {
	case 0:
	case 1:
		*path = fs.Arg(0)
	default:
		fs.Usage()
		return ExitUsage
	}
	c, err := config.Load(*path)
	if err != nil {
		var errs config.Errors
		if !errors.As(err, &errs) {
			return fail(e, "config check", err)
		}
		fmt.Fprintln(e.stderr, errs.Error())
		n := "1 problem"
		if len(errs) > 1 {
			n = fmt.Sprintf("%d problems", len(errs))
		}
		fmt.Fprintf(e.stderr, "%s: %s\n", *path, n)
		return ExitError
	}
	fmt.Fprintf(e.stdout, "%s: OK\n", *path)
	printConfig(e.stdout, c, configNow())
	return ExitOK
}

// printConfig summarizes the effective configuration, defaults included.
func printConfig(w io.Writer, c *config.Config, now time.Time) {
	line := func(k, format string, args ...any) {
		fmt.Fprintf(w, "  %-13s %s\n", k+":", fmt.Sprintf(format, args...))
	}
	if c.Server == "" {
		line("server", "none: standalone (plans made from the repositories; enrolled, the enrolment's server)")
	} else {
		line("server", "%s", c.Server)
	}
	var repos []string
	for _, r := range c.Repos {
		s := r.ID
		if !r.Enabled {
			s += " (disabled)"
		} else if !r.GPGCheck {
			s += " (gpgcheck off: packages not verified)"
		}
		repos = append(repos, s)
	}
	if len(repos) == 0 {
		repos = append(repos, "the device's yum.repos.d")
	}
	line("repositories", "%s", strings.Join(repos, ", "))
	p := c.Policy
	what := "all advisories"
	if p.SecurityOnly {
		what = "security advisories only"
	}
	if p.MinSeverity > 0 {
		what += fmt.Sprintf(", security ones of at least %s", p.MinSeverity)
	}
	line("mode", "%s (%s)", p.Mode, what)
	if len(p.Exclude) > 0 {
		line("exclude", "%s", strings.Join(p.Exclude, ", "))
	}
	reboot := p.Reboot.String()
	if p.Reboot == policy.RebootWhenNeeded && len(p.Windows) == 0 {
		reboot += " (no window: the agent never reboots)"
	}
	line("reboot", "%s", reboot)
	for i := range p.Windows {
		line("window", "%s", p.Windows[i].String())
	}
	switch {
	case len(p.Windows) == 0:
		line("windows", "none: apply at once")
	case p.InWindow(now):
		line("next window", "open now")
	default:
		line("next window", "%s", p.NextWindow(now).Format("Mon 2006-01-02 15:04 MST"))
	}
	for _, h := range p.HealthChecks {
		line("health check", "%s", h)
	}
	if c.Server == "" {
		// Standalone, no push wakes the agent: it reads the repositories
		// every interval, MQTT or not; only an enrolled one relaxes.
		line("poll", "every %s, up to %s later at random (enrolled: %s while the MQTT link is up)", c.Poll.Interval, c.Poll.Jitter, c.Poll.Connected())
	} else {
		line("poll", "every %s, %s while the MQTT link is up, up to %s later at random", c.Poll.Interval, c.Poll.Connected(), c.Poll.Jitter)
	}
	if c.MQTT.Broker != "" {
		line("mqtt", "%s", c.MQTT.Broker)
	}
	if h := c.HomeAssistant; h.Enabled {
		line("ha discovery", "under %s/ as node %s", h.DiscoveryPrefix, h.NodeID)
	}
	line("state_dir", "%s", c.StateDir)
	line("root", "%s", c.Root)
}
