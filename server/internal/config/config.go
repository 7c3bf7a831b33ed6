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
//	[http]
//	body_timeout = "10s"         # a small body (enrolment, tokens) whole within this
//	body_min_rate = 1024         # then a report or import keeps up this many bytes a second
//	write_timeout = "2m"         # an answer written within this
//	max_enrolling = 32           # enrolments handled at once (503 beyond)
//
//	[mqtt]
//	listen = "127.0.0.1:1883"    # the embedded broker; "off" for none
//	login_timeout = "10s"        # a new connection sends its CONNECT within this
//	max_pending_logins = 1024    # connections waiting to log in at once
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
//	[[webhook]]                  # signed notifications (webhooks.go)
//	name = "ops"
//	url = "https://hooks.example.org/rpmfleet"
//	secret_file = "/etc/rpmfleet/webhook-ops.secret"
//	min_severity = "Important"
//	silent_after = "24h"
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
	// HTTP bounds the API's requests in time and enrolments in number
	// ([http]).
	HTTP HTTP `toml:"http"`
	// FleetLock is the reboot lock ([fleetlock], fleetops.go).
	FleetLock FleetLock `toml:"fleetlock"`
	// Rollouts sets how often rollouts are judged ([rollouts]).
	Rollouts Rollouts `toml:"rollouts"`
	// Webhooks receive signed notifications ([[webhook]] tables,
	// webhooks.go).
	Webhooks []Webhook `toml:"webhook"`
}

// HTTP holds the API's limits; zero values mean the API's defaults
// (server/internal/api: 10 s, 1024 bytes a second, 2 min, 32).
type HTTP struct {
	// BodyTimeout is how long a small request body may take, and how
	// long a large one (a report, an import) has before MinBodyRate
	// applies.
	BodyTimeout Duration `toml:"body_timeout"`
	// BodyMinRate is the least average rate, in bytes a second, a report
	// or import body must keep up after BodyTimeout.
	BodyMinRate int64 `toml:"body_min_rate"`
	// WriteTimeout bounds writing an answer.
	WriteTimeout Duration `toml:"write_timeout"`
	// MaxEnrolling bounds the enrolments handled at once, and
	// MaxEnrollingPerAddress those from one IPv4 address or IPv6 /64.
	MaxEnrolling           int `toml:"max_enrolling"`
	MaxEnrollingPerAddress int `toml:"max_enrolling_per_address"`
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
	// LoginTimeout is how long a connection to the embedded broker has
	// to send its CONNECT; zero means the broker's default (10 s).
	LoginTimeout Duration `toml:"login_timeout"`
	// MaxPendingLogins bounds the connections to the embedded broker
	// waiting to log in; zero means the broker's default (1024).
	MaxPendingLogins int `toml:"max_pending_logins"`
	// MaxPendingLoginsPerAddress bounds how many of those may come from
	// one IPv4 address or IPv6 /64; zero means the broker's default (64).
	MaxPendingLoginsPerAddress int `toml:"max_pending_logins_per_address"`
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

// Load reads path over the defaults, then the drop-ins of its folder
// (DropIns: server.d/*.toml beside server.toml) in name order, each over
// what came before: a key a drop-in sets replaces the value before it (a
// [[repository]] or [[webhook]] list in a drop-in replaces the whole
// list). Keys it does
// not know are an error naming the file and line, so a misspelt setting
// is never silently ignored.
func Load(path string) (Config, error) {
	c := Default()
	if err := decodeFile(&c, path); err != nil {
		return Config{}, err
	}
	dropins, err := DropIns(path)
	if err != nil {
		return Config{}, err
	}
	for _, d := range dropins {
		if err := decodeFile(&c, d); err != nil {
			return Config{}, err
		}
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
	if err := c.HTTP.check(); err != nil {
		return err
	}
	if err := c.FleetLock.check(); err != nil {
		return err
	}
	if err := c.Rollouts.check(); err != nil {
		return err
	}
	if err := checkWebhooks(c.Webhooks); err != nil {
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
	if m.LoginTimeout < 0 || (m.LoginTimeout > 0 && time.Duration(m.LoginTimeout) < 100*time.Millisecond) || time.Duration(m.LoginTimeout) > 5*time.Minute {
		return fmt.Errorf("config: mqtt.login_timeout: %v is not from 100ms to 5m", time.Duration(m.LoginTimeout))
	}
	if m.MaxPendingLogins < 0 {
		return fmt.Errorf("config: mqtt.max_pending_logins: %d is negative", m.MaxPendingLogins)
	}
	if m.MaxPendingLoginsPerAddress < 0 {
		return fmt.Errorf("config: mqtt.max_pending_logins_per_address: %d is negative", m.MaxPendingLoginsPerAddress)
	}
	if m.Broker != "" && (m.LoginTimeout != 0 || m.MaxPendingLogins != 0 || m.MaxPendingLoginsPerAddress != 0) {
		return errors.New("config: mqtt.login_timeout, mqtt.max_pending_logins and mqtt.max_pending_logins_per_address are for the embedded broker, not mqtt.broker")
	}
	return nil
}

// check reports HTTP limits that cannot work: a body timeout under 100 ms
// or over an hour, a negative rate or count, a write timeout under a
// second.
func (h HTTP) check() error {
	if h.BodyTimeout < 0 || (h.BodyTimeout > 0 && time.Duration(h.BodyTimeout) < 100*time.Millisecond) || time.Duration(h.BodyTimeout) > time.Hour {
		return fmt.Errorf("config: http.body_timeout: %v is not from 100ms to 1h", time.Duration(h.BodyTimeout))
	}
	if h.BodyMinRate < 0 {
		return fmt.Errorf("config: http.body_min_rate: %d is negative", h.BodyMinRate)
	}
	if h.WriteTimeout < 0 || (h.WriteTimeout > 0 && time.Duration(h.WriteTimeout) < 100*time.Millisecond) {
		return fmt.Errorf("config: http.write_timeout: %v is shorter than 100ms", time.Duration(h.WriteTimeout))
	}
	if h.MaxEnrolling < 0 {
		return fmt.Errorf("config: http.max_enrolling: %d is negative", h.MaxEnrolling)
	}
	if h.MaxEnrollingPerAddress < 0 {
		return fmt.Errorf("config: http.max_enrolling_per_address: %d is negative", h.MaxEnrollingPerAddress)
	}
	return nil
}
