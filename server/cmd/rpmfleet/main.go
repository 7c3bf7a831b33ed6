// Command rpmfleet is the fleet admin's command line: it talks to
// rpmfleet-server's HTTP API with an admin token. Run "rpmfleet help".
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rpmfleet/rpmfleet/server/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
