// Command rpmfleet-server is the fleet server: it enrols devices, takes their
// reports, imports advisories and answers which device is exposed to what,
// over the HTTP API under /api/v1. With no arguments it keeps its data in
// ./rpmfleet-data (SQLite) and listens on 127.0.0.1:8080.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rpmfleet/rpmfleet/pkg/logging"
)

func main() {
	fs := flag.NewFlagSet("rpmfleet-server", flag.ContinueOnError)
	var f flags
	fs.StringVar(&f.config, "config", "", "TOML configuration file")
	fs.StringVar(&f.data, "data", "", "data folder (default ./rpmfleet-data)")
	fs.StringVar(&f.listen, "listen", "", "HTTP API address (default 127.0.0.1:8080)")
	fs.StringVar(&f.db, "db", "", "postgres:// URL of a PostgreSQL store (default: SQLite in the data folder)")
	fs.StringVar(&f.tls, "tls", "", "\"auto\": serve HTTPS with a CA and certificate made in DATA/tls")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS with")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM key of --tls-cert")
	fs.BoolVar(&f.allowInsecure, "allow-insecure-http", false, "serve plain HTTP on a non-loopback address")
	fs.StringVar(&f.mqttListen, "mqtt-listen", "", "embedded MQTT broker address (default 127.0.0.1:1883, run without a broker if it is taken); \"off\" for none")
	fs.StringVar(&f.mqttAdvertise, "mqtt-advertise", "", "broker URL enrolling devices are told (default mqtt://ADDR of the embedded broker, or --mqtt-broker)")
	fs.StringVar(&f.mqttBroker, "mqtt-broker", "", "publish through this external MQTT broker (mqtt://, mqtts://) instead of running one")
	fs.StringVar(&f.mqttUsername, "mqtt-username", "", "username on --mqtt-broker")
	fs.StringVar(&f.mqttPasswordFile, "mqtt-password-file", "", "file whose first line is the password on --mqtt-broker")
	fs.StringVar(&f.mqttCA, "mqtt-ca", "", "PEM roots to check --mqtt-broker's TLS certificate (default: the system's)")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	logFormat := fs.String("log-format", os.Getenv("RPMFLEET_LOG_FORMAT"), "how to log: "+logging.Formats+" (auto: journald under systemd, else text); the level is RPMFLEET_LOG")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	switch {
	case fs.NArg() == 1 && fs.Arg(0) == "version":
		f.version = true // "rpmfleet-server version", as the other two programs take it
	case fs.NArg() > 0:
		fmt.Fprintf(os.Stderr, "rpmfleet-server: unexpected argument %q (it takes flags only, and \"version\"; see -h)\n", fs.Arg(0))
		os.Exit(2)
	}
	format, err := logging.ParseFormat(*logFormat)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rpmfleet-server: --log-format: %v\n", err)
		os.Exit(2)
	}
	level, lerr := logging.ParseLevel(os.Getenv(logging.LevelEnv))
	log := logging.New(logging.Options{Format: format, Level: level, Identifier: "rpmfleet-server", Stderr: os.Stderr})
	if lerr != nil {
		log.Warn("log level ignored", "env", logging.LevelEnv, "err", lerr)
	}
	// Nothing the server makes is for other users (datadir.go makes its
	// files 0600 whatever the umask; this covers what a library makes).
	syscall.Umask(0o077)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, f, log)
	stop()
	if err != nil {
		log.Error("server stopped", "err", err)
		os.Exit(1)
	}
}
