// Package cli implements rpmfleet-agent's command line: one function per
// subcommand, each parsing its own flags and returning an exit code. It holds
// no logic of its own beyond presenting what the agent packages compute.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/cmdline"
	"github.com/rpmfleet/rpmfleet/pkg/logging"
	"github.com/rpmfleet/rpmfleet/pkg/version"
)

// Exit codes shared by the commands. check follows dnf check-update: 100
// means updates are available.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitUsage   = 2
	ExitUpdates = 100
)

// env is what every command gets: where to write, and a logger on stderr.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) int
}

var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, e *env, args []string) int) {
	commands[name] = command{summary: summary, run: run}
}

func init() {
	register("version", "print the agent's version", runVersion)
	register("help", "list the commands", nil)
	register("completion", "print the shell completion script (bash, zsh, fish)", runCompletion)
}

// Main runs the agent's command line and returns the process exit code.
// A leading --log-format (or RPMFLEET_LOG_FORMAT) chooses how the logger
// writes: under systemd it is journald's own protocol by default.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	format := os.Getenv("RPMFLEET_LOG_FORMAT")
	if len(args) > 0 {
		if v, ok := strings.CutPrefix(args[0], "--log-format="); ok {
			format, args = v, args[1:]
		} else if args[0] == "--log-format" && len(args) > 1 {
			format, args = args[1], args[2:]
		}
	}
	log, err := newLogger(stderr, format)
	if err != nil {
		fmt.Fprintf(stderr, "rpmfleet-agent: %v\n", err)
		return ExitUsage
	}
	e := &env{stdout: stdout, stderr: stderr, log: log}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	c, ok := commands[args[0]]
	if !ok || c.run == nil {
		cmdline.Unknown(stderr, "rpmfleet-agent", args[0], slices.Collect(maps.Keys(commands)))
		return ExitUsage
	}
	return c.run(ctx, e, args[1:])
}

// runCompletion writes the shell completion script.
func runCompletion(_ context.Context, e *env, args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(e.stderr, "Usage: rpmfleet-agent completion SHELL (%s)\n  bash: source <(rpmfleet-agent completion bash)\n", cmdline.Shells)
		return ExitUsage
	}
	err := cmdline.Completion(e.stdout, args[0], "rpmfleet-agent", slices.Collect(maps.Keys(commands)),
		map[string][]string{"config": {"check"}, "completion": {"bash", "zsh", "fish"}})
	if err != nil {
		fmt.Fprintf(e.stderr, "rpmfleet-agent: %v\n", err)
		return ExitUsage
	}
	return ExitOK
}

// newLogger makes the logger of --log-format at the level RPMFLEET_LOG
// names (info when unset; an unknown name is said and info used, so a typo
// does not stop a daemon).
func newLogger(stderr io.Writer, format string) (*slog.Logger, error) {
	f, err := logging.ParseFormat(format)
	if err != nil {
		return nil, err
	}
	level, lerr := logging.ParseLevel(os.Getenv(logging.LevelEnv))
	log := logging.New(logging.Options{Format: f, Level: level, Identifier: "rpmfleet-agent", Stderr: stderr})
	if lerr != nil {
		log.Warn("log level ignored", "env", logging.LevelEnv, "err", lerr)
	}
	return log, nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "rpmfleet-agent %s: keeps this device patched against RPM security advisories.\n\nUsage: rpmfleet-agent COMMAND [flags]\n\nCommands:\n", version.String())
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'rpmfleet-agent COMMAND -h' for a command's flags.\n")
	fmt.Fprintf(w, "Logging: --log-format %s before the command (or RPMFLEET_LOG_FORMAT); RPMFLEET_LOG=debug|info|warn|error.\n", logging.Formats)
}

// newFlagSet makes a command's flag set that reports errors to stderr and
// does not exit.
func newFlagSet(e *env, name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: rpmfleet-agent %s\n\nFlags:\n", usageLine)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and maps -h and bad flags to exit codes.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	return 0, true
}

// fail prints an error the way every command does and returns ExitError.
func fail(e *env, cmd string, err error) int {
	fmt.Fprintf(e.stderr, "rpmfleet-agent %s: %v\n", cmd, err)
	return ExitError
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runVersion(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "version", "version")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Fprintf(e.stdout, "rpmfleet-agent %s\n", version.String())
	return ExitOK
}
