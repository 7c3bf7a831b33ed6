// Command mkrpm builds one of rpmfleet's RPM packages (see package rpmpkg).
// It signs the package when RPMFLEET_SIGNING_KEY names an armored OpenPGP
// private key file (unlocked with RPMFLEET_SIGNING_PASSPHRASE if needed).
//
//	mkrpm -name rpmfleet-agent -version 1.2.3 -release 1 -arch aarch64 \
//	      -bin dist/rpmfleet-agent_linux_arm64 -help-from dist/host/rpmfleet-agent -out dist
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rpmfleet/rpmfleet/cross/rpmpkg"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var o rpmpkg.Options
	var bins multi
	flag.StringVar(&o.Name, "name", "rpmfleet-agent", "package `name`: rpmfleet-agent or rpmfleet-server")
	flag.StringVar(&o.Version, "version", "", "package `version` (no '-')")
	flag.StringVar(&o.Release, "release", "1", "package `release`")
	flag.StringVar(&o.Arch, "arch", "", "RPM `arch`itecture: aarch64, armv7hl, x86_64")
	flag.Var(&bins, "bin", "binary to install into /usr/bin (repeatable; the package's own first)")
	flag.StringVar(&o.HelpFrom, "help-from", "", "a native build of the binary whose help makes the man page")
	flag.StringVar(&o.OutDir, "out", "dist", "output `dir`ectory")
	flag.Parse()
	o.Binaries = bins
	o.SigningKey = os.Getenv("RPMFLEET_SIGNING_KEY")
	o.Passphrase = os.Getenv("RPMFLEET_SIGNING_PASSPHRASE")

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	path, err := rpmpkg.Build(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkrpm: %v\n", err)
		os.Exit(1)
	}
	log.Info("built package", "path", path, "signed", o.SigningKey != "")
}
