// Package config reads and checks rpmfleet-agent's configuration file,
// /etc/rpmfleet/agent.toml by default, and watches it for changes.
//
// Threat model. The file decides whom the agent trusts: the CA the server's
// certificate must chain to, the server's Ed25519 key that signs notices and
// plans, and the OpenPGP keys packages must be signed with. Whoever can
// write it can make the agent install anything, so Load refuses a file that
// group or others may write. Secrets never sit in it: the MQTT password is
// read from password_file, which Load refuses when group or others may read
// it, and a password written inline is an error. Every key pins a file on
// the device or a value in the file itself; nothing trusted is fetched over
// the network (a gpgkey must be a local file).
//
// The file's shape (every key optional; see
// cross/rpmpkg/files/agent.toml.example for a commented copy):
//
//	server = "https://fleet.example.org" # https, or http to a loopback host; none: standalone
//	ca = "/etc/rpmfleet/server-ca.pem"   # pinned CA of the server's certificate
//	notice_key = "/etc/rpmfleet/notice-key.pub" # or the key itself, base64 of 32 bytes
//	state_dir = "/var/lib/rpmfleet"      # default
//	root = "/"                           # default
//
//	[[repo]]
//	id = "baseos"
//	baseurl = "https://repo.almalinux.org/almalinux/9/BaseOS/aarch64/os/" # or file:///..., or /a/folder
//	gpgkey = ["/etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-9"] # local files (or file:/// URLs)
//	enabled = true                       # default
//	gpgcheck = true                      # default; needs a gpgkey
//
//	[policy]
//	mode = "notify"                      # notify (default), download, apply
//	security_only = true                 # default
//	min_severity = "moderate"            # none (default), low, moderate, important, critical
//	exclude = ["kernel*"]                # package name globs, path.Match syntax
//	allow_updates = ["raspberrypi2-kernel4"] # names updated without an advisory; narrows a group's list
//	installonly_limit = 3                # default, dnf's; kernels kept side by side; 0 keeps all
//	reboot = "never"                     # never (default), when-needed
//	health_checks = ["systemctl is-active nginx"] # run with sh -c after an update
//
//	[[policy.window]]                    # maintenance windows, any number
//	days = ["sat", "sun"]                # mon..sun, full names, ranges "mon-fri"
//	start = "02:00"                      # local wall-clock time
//	length = "3h"                        # Go duration, up to 168h
//	timezone = "Europe/Berlin"           # IANA name; the system's zone when left out
//
//	[poll]
//	interval = "1h"                      # default; while no MQTT link is up
//	connected_interval = "12h"           # default; while it is: max(interval, this)
//	jitter = "10m"                       # default; less than interval
//
//	[mqtt]
//	broker = "mqtts://fleet.example.org:8883" # mqtt, mqtts (or tcp, ssl, tls); not ws, wss
//	username = "device-42"
//	password_file = "/etc/rpmfleet/mqtt-password"
//	ca = "/etc/rpmfleet/mqtt-ca.pem"
//
//	[homeassistant]                      # MQTT discovery on [mqtt] broker
//	enabled = false                      # default
//	discovery_prefix = "homeassistant"   # default, as Home Assistant's
//	node_id = "pi-kitchen"               # default: the host name, cleaned
//
//	[reboot]                             # reboot coordination (reboot.go)
//	fleetlock_url = ""                   # default: the enrolled server's; "off"; or a FleetLock server
//	group = "default"                    # FleetLock reboot group
//	session_wait = "1h"                  # longest wait for logged-in users
//
// Time zones come from the device's own zoneinfo (the tzdata package, which
// every Enterprise Linux install carries). Embedding time/tzdata would make
// the agent independent of it but costs 384 KiB of the arm64 binary's 12 MiB
// budget, so only the tests embed it.
package config

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
)

// DefaultPath is where the agent looks for its configuration.
const DefaultPath = "/etc/rpmfleet/agent.toml"

// Defaults for keys left out.
const (
	DefaultStateDir     = "/var/lib/rpmfleet"
	DefaultRoot         = "/"
	DefaultPollInterval = time.Hour
	DefaultPollJitter   = 10 * time.Minute
	// DefaultPollConnectedInterval is the poll interval while the MQTT
	// link is up, when a push would have woken the agent anyway: the
	// broker hands the retained feed notice over again at every
	// reconnect, so this poll only catches a notice lost inside a live
	// QoS 1 session. Twice a day (dnf-automatic's timer runs daily) keeps
	// an idle day near 40 KB over TLS, where 6 h came to 49.9 KB against
	// issue 5's 50 KB budget (docs/benchmarks.md).
	DefaultPollConnectedInterval = 12 * time.Hour
)

// MaxSize bounds the file: a configuration is a few kilobytes.
const MaxSize = 1 << 20

// Config is the agent's configuration, with defaults filled in.
type Config struct {
	// File is the name the configuration was read from.
	File string
	// Server is the fleet server's base URL; "" runs standalone.
	Server string
	// Servers are more base URLs of the same server's replicas, asked in
	// turn when one fails (client.NewFailover, docs/replicas.md).
	Servers []string
	// CA is the pinned CA certificate file of the server's TLS certificate;
	// "" uses the system's CA store.
	CA string
	// NoticeKey is the server's Ed25519 key that signs notices and plans:
	// written inline in the file, or read by Load from NoticeKeyFile. Nil
	// when not set (before enrolment, or standalone).
	NoticeKey     ed25519.PublicKey
	NoticeKeyFile string
	StateDir      string
	// Root is the filesystem root the agent manages.
	Root   string
	Repos  []Repo
	Policy policy.Policy
	Poll   Poll
	MQTT   MQTT
	// HomeAssistant is the [homeassistant] section.
	HomeAssistant HomeAssistant
	// Metrics is the [metrics] section (metrics.go).
	Metrics Metrics
	// Reboot is the [reboot] section (reboot.go).
	Reboot Reboot

	// lines locates the keys for Load's errors about the files named;
	// files names the drop-in a key came from, when one set it.
	lines map[string]int
	files map[string]string
}

// Repo is a repository the agent reads advisories from and installs from.
type Repo struct {
	ID string
	// BaseURL is an http(s) or file URL, or an absolute folder path.
	BaseURL string
	// GPGKeys are the pinned OpenPGP key files, absolute paths.
	GPGKeys  []string
	Enabled  bool
	GPGCheck bool
}

// Poll is when the agent asks the server for its plan without a push.
type Poll struct {
	// Interval applies while no MQTT link is up (no broker, or the link
	// is down).
	Interval time.Duration
	// ConnectedInterval applies while the MQTT link is up and subscribed,
	// when the poll is only a safety net for a lost push; the effective
	// interval then is Connected().
	ConnectedInterval time.Duration
	// Jitter is the most added at random to each interval.
	Jitter time.Duration
}

// Connected is the poll interval while the MQTT link is up:
// max(Interval, ConnectedInterval), so a short interval set alone never
// makes the connected agent poll more often than it would without push.
func (p Poll) Connected() time.Duration { return max(p.Interval, p.ConnectedInterval) }

// MQTT is the broker the agent takes push notices from.
type MQTT struct {
	// Broker is the broker's URL, of a scheme in protocol.BrokerSchemes
	// (mqtt://, mqtts://, or paho's tcp://, ssl://, tls://); "" when learnt
	// from the server at enrolment.
	Broker       string
	Username     string
	PasswordFile string
	// Password is read from PasswordFile by Load. Never log it.
	Password string
	// CA is the pinned CA certificate file of the broker's certificate.
	CA string
}

// Load reads, parses and checks the configuration at path, then reads the
// files it names that hold trust or secrets (notice_key, password_file) and
// checks their permissions. All problems are returned at once as Errors.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var errs Errors
	if m := info.Mode().Perm(); m&0o022 != 0 {
		errs = append(errs, &Error{File: path, Msg: fmt.Sprintf("mode %#o lets group or others write the file that pins the agent's trust; chmod go-w", m)})
	}
	src, err := parseSource(f, path)
	if err != nil {
		var perr Errors
		if !errors.As(err, &perr) {
			return nil, err
		}
		return nil, append(errs, perr...)
	}
	dropins, derrs := readDropIns(path)
	if len(derrs) > 0 {
		return nil, append(errs, derrs...)
	}
	var files map[string]string
	if len(dropins) > 0 {
		files = map[string]string{}
	}
	for _, di := range dropins {
		merge(&src, files, di)
	}
	c, err := decodeSource(src, files)
	if err != nil {
		var perr Errors
		if !errors.As(err, &perr) {
			return nil, err
		}
		return nil, append(errs, perr...)
	}
	errs = append(errs, c.loadFiles()...)
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// loadFiles reads the notice key file and the MQTT password file.
func (c *Config) loadFiles() Errors {
	var errs Errors
	fail := func(key, format string, args ...any) {
		errs = append(errs, &Error{File: fileOf(c.files, key, c.File), Line: lineOf(c.lines, key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.NoticeKeyFile != "" {
		b, err := os.ReadFile(c.NoticeKeyFile)
		var info os.FileInfo
		if err == nil {
			info, err = os.Stat(c.NoticeKeyFile)
		}
		if err != nil {
			fail("notice_key", "%v", err)
		} else if m := info.Mode().Perm(); m&0o022 != 0 {
			fail("notice_key", "%s has mode %#o: whoever may write it chooses whose notices the agent trusts; chmod go-w", c.NoticeKeyFile, m)
		} else if k, err := parsePublicKey(b); err != nil {
			fail("notice_key", "%s: %v", c.NoticeKeyFile, err)
		} else {
			c.NoticeKey = k
		}
	}
	if p := c.MQTT.PasswordFile; p != "" {
		f, err := os.Open(p)
		if err != nil {
			fail("mqtt.password_file", "%v", err)
			return errs
		}
		defer f.Close()
		info, err := f.Stat()
		switch {
		case err != nil:
			fail("mqtt.password_file", "%v", err)
		case !info.Mode().IsRegular():
			fail("mqtt.password_file", "%s is not a regular file", p)
		case info.Mode().Perm()&0o077 != 0:
			fail("mqtt.password_file", "%s has mode %#o: a password file must not be readable by group or others; chmod 600", p, info.Mode().Perm())
		default:
			b, err := io.ReadAll(io.LimitReader(f, 4096))
			if err != nil {
				fail("mqtt.password_file", "%v", err)
			}
			c.MQTT.Password = strings.TrimRight(string(b), "\r\n")
			if c.MQTT.Password == "" {
				fail("mqtt.password_file", "%s is empty", p)
			}
		}
	}
	return errs
}

// parsePublicKey reads an Ed25519 public key: base64 of the 32 raw bytes,
// or a PEM "PUBLIC KEY" block (PKIX), as openssl pkey -pubout writes it.
func parsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block %q, want PUBLIC KEY", blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("a %T, want an Ed25519 key", k)
		}
		return ek, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, errors.New("want base64 of a 32-byte Ed25519 public key or a PEM PUBLIC KEY")
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%d bytes, want %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// Parse reads a configuration from r; name is used in errors. It checks
// everything that can be checked without reading other files and returns
// every problem at once as Errors, each naming the line and the key.
func Parse(r io.Reader, name string) (*Config, error) {
	s, err := parseSource(r, name)
	if err != nil {
		return nil, err
	}
	return decodeSource(s, nil)
}

// decodeSource decodes a parsed document; files names the drop-in each key
// a drop-in set came from (nil: all from s.name).
func decodeSource(s source, files map[string]string) (*Config, error) {
	d := &decoder{file: s.name, lines: s.lines, files: files}
	c := d.config(d.table("", s.doc))
	if len(d.errs) > 0 {
		d.errs.sort()
		return nil, d.errs
	}
	c.File = s.name
	c.lines = d.lines
	c.files = files
	return c, nil
}

func (d *decoder) config(t *table) *Config {
	c := &Config{StateDir: DefaultStateDir, Root: DefaultRoot}
	if s, ok := t.str("server"); ok {
		if err := checkServer(s); err != nil {
			d.errorf("server", "bad value %q: %v", s, err)
		}
		c.Server = s
	}
	if ss, ok := t.strs("servers"); ok {
		for _, s := range ss {
			if err := checkServer(s); err != nil {
				d.errorf("servers", "bad value %q: %v", s, err)
			}
		}
		c.Servers = ss
	}
	c.CA = d.absPath(t, "ca")
	if s, ok := t.str("notice_key"); ok {
		// A key's base64 begins with "/" for one key in 64, so a value is
		// the key itself whenever it decodes as one and a path otherwise; a
		// path mistaken for a key would be 43 base64 characters and "=".
		k, err := parsePublicKey([]byte(s))
		switch {
		case err == nil:
			c.NoticeKey = k
		case strings.HasPrefix(s, "/"):
			c.NoticeKeyFile = filepath.Clean(s)
		default:
			d.errorf("notice_key", "bad value: %v, or an absolute path to a file holding it", err)
		}
	}
	if s := d.absPath(t, "state_dir"); s != "" {
		c.StateDir = s
	}
	if s := d.absPath(t, "root"); s != "" {
		c.Root = s
	}
	seen := map[string]bool{}
	for _, rt := range t.tables("repo") {
		r := d.repo(rt)
		if r.ID != "" && seen[r.ID] {
			d.errorf(rt.key("id"), "repository %q is defined twice", r.ID)
		}
		seen[r.ID] = true
		c.Repos = append(c.Repos, r)
	}
	c.Policy = d.policy(t.sub("policy"))
	c.Poll = d.poll(t.sub("poll"))
	c.MQTT = d.mqtt(t.sub("mqtt"))
	c.HomeAssistant = d.homeAssistant(t.sub("homeassistant"), c.MQTT)
	c.Metrics = d.metrics(t.sub("metrics"))
	c.Reboot = d.reboot(t.sub("reboot"))
	t.done()
	return c
}

// absPath reads an optional absolute path.
func (d *decoder) absPath(t *table, k string) string {
	s, ok := t.str(k)
	if !ok {
		return ""
	}
	if !filepath.IsAbs(s) {
		d.errorf(t.key(k), "bad value %q: want an absolute path", s)
		return ""
	}
	return filepath.Clean(s)
}
