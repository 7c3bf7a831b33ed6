// Package config reads the fleet server's TOML configuration. Every setting
// has an embedded default, so the server runs with no file at all; flags
// override what the file says. A full file:
//
//	data = "/var/lib/rpmfleet-server"
//	listen = "0.0.0.0:8443"
//	tls = "auto"                 # or tls_cert = "...", tls_key = "..."
//	db = "postgres://rpmfleet@db/rpmfleet"   # empty: SQLite in data
//	allow_insecure_http = false
//
//	[mqtt]
//	listen = "127.0.0.1:1883"    # the embedded broker; "off" for none
//	advertise = "mqtts://fleet.example.org:8883"  # the URL devices are told
//	broker = "mqtts://mqtt.example.org:8883"      # an external broker instead
//	username = "rpmfleet-server" # on the external broker
//	password_file = "/etc/rpmfleet/mqtt.password"
//	ca = "/etc/rpmfleet/mqtt-ca.pem"
//
//	[[repository]]
//	url = "https://repo.almalinux.org/almalinux/9/BaseOS/aarch64/os/"
//	interval = "6h"
//
// Unknown keys are an error, so a misspelt setting is never ignored.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// ErrInsecure is returned by Check for plain HTTP on an address other
// machines can reach, without AllowInsecureHTTP.
var ErrInsecure = errors.New("config: plain HTTP on a non-loopback address")

// Config is the server's configuration.
type Config struct {
	// Data is the folder holding the SQLite database, the admin token and
	// the notice key ("./rpmfleet-data").
	Data string `toml:"data"`
	// Listen is the HTTP API's address ("127.0.0.1:8080").
	Listen string `toml:"listen"`
	// DB selects the store: empty for SQLite in Data, or a
	// postgres:// URL.
	DB string `toml:"db"`
	// AllowInsecureHTTP lets the API serve plain HTTP on a non-loopback
	// address (behind a TLS-terminating proxy, say).
	AllowInsecureHTTP bool `toml:"allow_insecure_http"`
	// TLS is "auto" to serve HTTPS with a CA and server certificate the
	// server makes in Data/tls on first start; empty otherwise.
	TLS string `toml:"tls"`
	// TLSCert and TLSKey are PEM files of a certificate (chain) and key to
	// serve HTTPS with, instead of TLS = "auto".
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// Repositories are synced for advisories on a schedule
	// ([[repository]] tables).
	Repositories []Repository `toml:"repository"`
	// MQTT is where the server pushes feed notices and commands ([mqtt]).
	MQTT MQTT `toml:"mqtt"`
}

// MQTT configures push. With no Broker the server runs its embedded
// broker on Listen; with a Broker it publishes through that one instead
// and runs none.
type MQTT struct {
	// Listen is the embedded broker's address; empty means
	// broker.DefaultListen (and, should that port be taken, no broker: the
	// agents' poll still works), "off" means no broker.
	Listen string `toml:"listen"`
	// Advertise is the broker URL enrolling devices are told; empty means
	// the embedded broker's bound address (mqtt://HOST:PORT) or Broker.
	Advertise string `toml:"advertise"`
	// Broker is an external broker's URL (mqtt://, tcp://, mqtts://,
	// ssl://, tls://).
	Broker string `toml:"broker"`
	// Username and PasswordFile log the server in to Broker; the file's
	// first line is the password.
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	// CA is a PEM file of the roots Broker's TLS certificate is checked
	// against; empty means the system's.
	CA string `toml:"ca"`
}

// DefaultSyncInterval is how often a repository is checked when its
// interval is not given.
const DefaultSyncInterval = 6 * time.Hour

// Repository is one repository to sync advisories from.
type Repository struct {
	// URL is the base URL (repodata/repomd.xml below it).
	URL string `toml:"url"`
	// Interval is how often repomd.xml is checked ("6h"); the
	// advisories are fetched only when it changed.
	Interval Duration `toml:"interval"`
}

// Duration is a time.Duration written as Go writes it ("6h", "90m").
type Duration time.Duration

// UnmarshalText parses a duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// HTTPS reports whether the API is served over TLS.
func (c Config) HTTPS() bool { return c.TLS == "auto" || c.TLSCert != "" }

// Default returns the embedded defaults.
func Default() Config {
	return Config{Data: "rpmfleet-data", Listen: "127.0.0.1:8080"}
}

// Load reads path over the defaults. Keys it does not know are an error
// naming them, so a misspelt setting is never silently ignored.
func Load(path string) (Config, error) {
	c := Default()
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return Config{}, fmt.Errorf("read config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return Config{}, fmt.Errorf("read config %s: unknown key %s", path, strings.Join(keys, ", "))
	}
	return c, nil
}

// Check reports settings that must not run: an empty data folder or listen
// address, a bad db URL, or plain HTTP on a reachable address unless allowed.
func (c Config) Check() error {
	if c.Data == "" {
		return errors.New("config: data: empty")
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("config: listen: %w", err)
	}
	if c.DB != "" && !strings.HasPrefix(c.DB, "postgres://") && !strings.HasPrefix(c.DB, "postgresql://") {
		return fmt.Errorf("config: db: %q is not a postgres:// URL (leave it empty for SQLite)", redact(c.DB))
	}
	if c.TLS != "" && c.TLS != "auto" {
		return fmt.Errorf("config: tls: %q is not \"auto\" (give tls_cert and tls_key for your own certificate)", c.TLS)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("config: tls_cert and tls_key go together")
	}
	if c.TLS == "auto" && c.TLSCert != "" {
		return errors.New("config: tls = \"auto\" and tls_cert both given; choose one")
	}
	for i, r := range c.Repositories {
		if !strings.HasPrefix(r.URL, "http://") && !strings.HasPrefix(r.URL, "https://") {
			return fmt.Errorf("config: repository[%d].url: %q is not an http(s) URL", i, r.URL)
		}
		if r.Interval != 0 && time.Duration(r.Interval) < time.Minute {
			return fmt.Errorf("config: repository[%d].interval: %v is shorter than a minute", i, time.Duration(r.Interval))
		}
	}
	if err := c.MQTT.check(); err != nil {
		return err
	}
	if !c.HTTPS() && !c.AllowInsecureHTTP && !Loopback(host) {
		return fmt.Errorf("%w: listen %s; allow it with --allow-insecure-http (allow_insecure_http = true) only behind TLS", ErrInsecure, c.Listen)
	}
	return nil
}

// Loopback reports whether host names only this machine: "localhost" or a
// loopback IP. An empty host (all interfaces) is not loopback.
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redact hides a password in a URL-like string.
func redact(s string) string {
	if at := strings.LastIndex(s, "@"); at >= 0 {
		if colon := strings.Index(s, "://"); colon >= 0 && colon < at {
			return s[:colon+3] + "***" + s[at:]
		}
	}
	return s
}

// check reports MQTT settings that cannot work.
func (m MQTT) check() error {
	if m.Listen != "" && m.Listen != "off" {
		if _, _, err := net.SplitHostPort(m.Listen); err != nil {
			return fmt.Errorf("config: mqtt.listen: %w (or \"off\")", err)
		}
	}
	for _, u := range []struct{ key, url string }{{"mqtt.advertise", m.Advertise}, {"mqtt.broker", m.Broker}} {
		if u.url == "" {
			continue
		}
		parsed, err := url.Parse(u.url)
		if err != nil {
			return fmt.Errorf("config: %s: %w", u.key, err)
		}
		switch parsed.Scheme {
		case "mqtt", "tcp", "mqtts", "ssl", "tls", "ws", "wss":
		default:
			return fmt.Errorf("config: %s: %q: scheme %q is not mqtt, tcp, mqtts, ssl, tls, ws or wss", u.key, redact(u.url), parsed.Scheme)
		}
		if parsed.Host == "" {
			return fmt.Errorf("config: %s: %q has no host", u.key, redact(u.url))
		}
	}
	if m.Broker == "" && (m.Username != "" || m.PasswordFile != "" || m.CA != "") {
		return errors.New("config: mqtt.username, mqtt.password_file and mqtt.ca are for an external broker: give mqtt.broker too")
	}
	if m.Broker != "" && m.Listen != "" && m.Listen != "off" {
		return errors.New("config: mqtt.broker and mqtt.listen both given: the server either runs its own broker or publishes through an external one")
	}
	if (m.Username == "") != (m.PasswordFile == "") {
		return errors.New("config: mqtt.username and mqtt.password_file go together")
	}
	return nil
}
