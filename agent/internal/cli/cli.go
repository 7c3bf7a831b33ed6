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
	"os"
	"sort"
	"strings"

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
}

// Main runs the agent's command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{
		stdout: stdout,
		stderr: stderr,
		log:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel()})),
	}
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
		fmt.Fprintf(stderr, "rpmfleet-agent: unknown command %q; run 'rpmfleet-agent help'\n", args[0])
		return ExitUsage
	}
	return c.run(ctx, e, args[1:])
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
}

// logLevel reads RPMFLEET_LOG: debug, info (the default), warn or error.
func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("RPMFLEET_LOG"))); err != nil {
		return slog.LevelInfo
	}
	return l
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
