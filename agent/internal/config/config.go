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
//	broker = "mqtts://fleet.example.org:8883" # mqtt, mqtts, ws, wss
//	username = "device-42"
//	password_file = "/etc/rpmfleet/mqtt-password"
//	ca = "/etc/rpmfleet/mqtt-ca.pem"
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
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
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

	// lines locates the keys for Load's errors about the files named.
	lines map[string]int
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
	// Broker is an mqtt:// or mqtts:// URL; "" when learnt
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
	c, err := Parse(f, path)
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
		errs = append(errs, &Error{File: c.File, Line: lineOf(c.lines, key), Key: key, Msg: fmt.Sprintf(format, args...)})
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
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", name, err)
	}
	if len(b) > MaxSize {
		return nil, Errors{{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxSize)}}
	}
	src := string(b)
	var doc map[string]any
	if _, err := toml.Decode(src, &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := pe.Message
			if pe.LastKey != "" {
				msg += fmt.Sprintf(" (after key %q)", pe.LastKey)
			}
			return nil, Errors{{File: name, Line: pe.Position.Line, Msg: "syntax error: " + msg}}
		}
		return nil, Errors{{File: name, Msg: "syntax error: " + err.Error()}}
	}
	d := &decoder{file: name, lines: locate(src)}
	c := d.config(d.table("", doc))
	if len(d.errs) > 0 {
		d.errs.sort()
		return nil, d.errs
	}
	c.File = name
	c.lines = d.lines
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
	c.CA = d.absPath(t, "ca")
	if s, ok := t.str("notice_key"); ok {
		if strings.HasPrefix(s, "/") {
			c.NoticeKeyFile = filepath.Clean(s)
		} else if k, err := parsePublicKey([]byte(s)); err != nil {
			d.errorf("notice_key", "bad value: %v, or an absolute path to a file holding it", err)
		} else {
			c.NoticeKey = k
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

// isLoopback reports whether a URL host names this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkServer(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return errors.New("want a URL such as https://fleet.example.org")
	case u.User != nil:
		return errors.New("credentials do not belong in the URL")
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case u.Scheme == "http":
		return errors.New("want https: plain http is allowed only to a loopback host")
	default:
		return fmt.Errorf("scheme %q: want https", u.Scheme)
	}
	return nil
}

var repoIDRe = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

func (d *decoder) repo(t *table) Repo {
	r := Repo{Enabled: true, GPGCheck: true}
	if s, ok := t.str("id"); !ok {
		if _, present := t.m["id"]; !present {
			d.errorf(t.path, "missing id")
		}
	} else if !repoIDRe.MatchString(s) {
		d.errorf(t.key("id"), "bad value %q: want letters, digits and _.:-", s)
	} else {
		r.ID = s
	}
	if s, ok := t.str("baseurl"); ok {
		if err := checkBaseURL(s); err != nil {
			d.errorf(t.key("baseurl"), "bad value %q: %v", s, err)
		}
		r.BaseURL = s
	} else if _, present := t.m["baseurl"]; !present {
		d.errorf(t.path, "missing baseurl")
	}
	if keys, ok := t.strs("gpgkey"); ok {
		for _, k := range keys {
			p := strings.TrimPrefix(k, "file://")
			if !filepath.IsAbs(p) {
				why := ""
				if strings.Contains(k, "://") {
					why = "; a key fetched over the network pins nothing"
				}
				d.errorf(t.key("gpgkey"), "bad value %q: want a key file on the device (an absolute path or file:/// URL)%s", k, why)
				continue
			}
			r.GPGKeys = append(r.GPGKeys, filepath.Clean(p))
		}
	}
	if b, ok := t.boolean("enabled"); ok {
		r.Enabled = b
	}
	if b, ok := t.boolean("gpgcheck"); ok {
		r.GPGCheck = b
	}
	if r.GPGCheck && len(r.GPGKeys) == 0 {
		if _, present := t.m["gpgkey"]; !present {
			d.errorf(t.path, "gpgcheck is on but no gpgkey is given: packages could not be verified")
		}
	}
	t.done()
	return r
}

func checkBaseURL(s string) error {
	if filepath.IsAbs(s) {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return errors.New("no host")
		}
	case "file":
		if !strings.HasPrefix(u.Path, "/") {
			return errors.New("want file:///absolute/path")
		}
	default:
		return errors.New("want an http, https or file URL, or an absolute folder")
	}
	return nil
}

func (d *decoder) policy(t *table) policy.Policy {
	p := policy.Policy{Mode: policy.Notify, SecurityOnly: true, MinSeverity: advisory.SeverityNone, Reboot: policy.RebootNever}
	if t == nil {
		return p
	}
	if s, ok := t.str("mode"); ok {
		if m, err := policy.ParseMode(s); err != nil {
			d.errorf(t.key("mode"), "bad value %q: want notify, download or apply", s)
		} else {
			p.Mode = m
		}
	}
	if b, ok := t.boolean("security_only"); ok {
		p.SecurityOnly = b
	}
	if s, ok := t.str("min_severity"); ok {
		if sev, err := advisory.ParseSeverity(s); err != nil {
			d.errorf(t.key("min_severity"), "bad value %q: want none, low, moderate, important or critical", s)
		} else {
			p.MinSeverity = sev
		}
	}
	if globs, ok := t.strs("exclude"); ok {
		for _, g := range globs {
			if err := policy.CheckGlob(g); err != nil {
				d.errorf(t.key("exclude"), "bad value %q: want a package name glob (path.Match syntax: * ? [a-z] \\)", g)
				continue
			}
			p.Exclude = append(p.Exclude, g)
		}
	}
	if s, ok := t.str("reboot"); ok {
		if r, err := policy.ParseReboot(s); err != nil {
			d.errorf(t.key("reboot"), "bad value %q: want never or when-needed", s)
		} else {
			p.Reboot = r
		}
	}
	if cmds, ok := t.strs("health_checks"); ok {
		for _, c := range cmds {
			if strings.TrimSpace(c) == "" {
				d.errorf(t.key("health_checks"), "empty command")
				continue
			}
			p.HealthChecks = append(p.HealthChecks, c)
		}
	}
	for _, wt := range t.tables("window") {
		if w, ok := d.window(wt); ok {
			p.Windows = append(p.Windows, w)
		}
	}
	t.done()
	return p
}

func (d *decoder) window(t *table) (policy.Window, bool) {
	w := policy.Window{Location: time.Local}
	ok := true
	if days, present := t.strs("days"); present {
		for _, s := range days {
			v, err := policy.ParseDays([]string{s})
			if err != nil {
				d.errorf(t.key("days"), "bad value %q: want mon, tue, wed, thu, fri, sat, sun or a range such as mon-fri", s)
				ok = false
			}
			w.Days |= v
		}
		if len(days) == 0 {
			d.errorf(t.key("days"), "no days: the window would never open")
			ok = false
		}
	} else {
		if _, there := t.m["days"]; !there {
			d.errorf(t.path, "missing days")
		}
		ok = false
	}
	if s, present := t.str("start"); present {
		v, err := policy.ParseClock(s)
		if err != nil {
			d.errorf(t.key("start"), "bad value %q: want HH:MM from 00:00 to 23:59", s)
			ok = false
		}
		w.Start = v
	} else {
		if _, there := t.m["start"]; !there {
			d.errorf(t.path, "missing start")
		}
		ok = false
	}
	if v, present := t.duration("length"); present {
		if v <= 0 || v > policy.MaxWindowLength {
			d.errorf(t.key("length"), "bad value %q: want more than 0 and at most %s", t.m["length"], policy.MaxWindowLength)
			ok = false
		}
		w.Length = v
	} else {
		if _, there := t.m["length"]; !there {
			d.errorf(t.path, "missing length")
		}
		ok = false
	}
	if s, present := t.str("timezone"); present {
		loc, err := time.LoadLocation(s)
		if err != nil || s == "" {
			d.errorf(t.key("timezone"), "bad value %q: want an IANA time zone such as Europe/Berlin", s)
			ok = false
		} else {
			w.Location = loc
		}
	}
	t.done()
	return w, ok
}

func (d *decoder) poll(t *table) Poll {
	p := Poll{Interval: DefaultPollInterval, ConnectedInterval: DefaultPollConnectedInterval, Jitter: DefaultPollJitter}
	if t == nil {
		return p
	}
	_, ivPresent := t.m["interval"]
	iv, ivOK := t.duration("interval")
	if ivOK && iv <= 0 {
		d.errorf(t.key("interval"), "bad value %q: want more than 0", t.m["interval"])
		ivOK = false
	}
	if ivOK {
		p.Interval = iv
		// The default jitter shrinks with a short interval.
		p.Jitter = min(p.Jitter, iv/2)
	}
	if j, ok := t.duration("jitter"); ok {
		switch {
		case j < 0:
			d.errorf(t.key("jitter"), "bad value %q: want 0 or more", t.m["jitter"])
		case j >= p.Interval && (ivOK || !ivPresent):
			d.errorf(t.key("jitter"), "bad value %q: want less than the interval (%s)", t.m["jitter"], p.Interval)
		}
		p.Jitter = j
	}
	if ci, ok := t.duration("connected_interval"); ok {
		switch {
		case ci <= 0:
			d.errorf(t.key("connected_interval"), "bad value %q: want more than 0", t.m["connected_interval"])
		case ci < p.Interval && (ivOK || !ivPresent):
			// Honoured as the interval anyway (Connected takes the
			// larger), so a smaller one set on purpose is a mistake.
			d.errorf(t.key("connected_interval"), "bad value %q: want at least the interval (%s); to poll that often while connected, set interval as well", t.m["connected_interval"], p.Interval)
		default:
			p.ConnectedInterval = ci
		}
	}
	t.done()
	return p
}

func (d *decoder) mqtt(t *table) MQTT {
	var m MQTT
	if t == nil {
		return m
	}
	plain := false
	if s, ok := t.str("broker"); ok {
		u, err := url.Parse(s)
		switch {
		case err != nil || u.Hostname() == "":
			d.errorf(t.key("broker"), "bad value %q: want a URL such as mqtts://fleet.example.org:8883", s)
		case u.User != nil:
			d.errorf(t.key("broker"), "bad value %q: credentials do not belong in the URL; use username and password_file", s)
		case u.Scheme == "mqtt":
			plain = !isLoopback(u.Hostname())
		case u.Scheme == "mqtts":
		case u.Scheme == "ws" || u.Scheme == "wss":
			// The agent's MQTT client dials TCP itself (to pin TLS and
			// count bytes); MQTT over WebSocket is not built.
			d.errorf(t.key("broker"), "bad value %q: MQTT over WebSocket is not supported; use mqtt:// or mqtts://", s)
		default:
			d.errorf(t.key("broker"), "bad value %q: scheme %q: want mqtt or mqtts", s, u.Scheme)
		}
		m.Broker = s
	}
	if s, ok := t.str("username"); ok {
		m.Username = s
	}
	m.PasswordFile = d.absPath(t, "password_file")
	if plain && m.PasswordFile != "" {
		d.errorf(t.key("broker"), "bad value %q: a password would cross the network in clear; use mqtts://", m.Broker)
	}
	m.CA = d.absPath(t, "ca")
	t.done()
	return m
}
