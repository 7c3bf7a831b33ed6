// Command rpmfleet-agent keeps one RPM-based device patched: it tells which
// advisories apply, applies them verifiably and reports to a fleet server.
// Run "rpmfleet-agent help" for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rpmfleet/rpmfleet/agent/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
