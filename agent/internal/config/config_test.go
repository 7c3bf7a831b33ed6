package config

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// moduleRoot walks up from the test's folder to go.mod.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test folder")
		}
		dir = parent
	}
}

func parse(t *testing.T, src string) (*Config, error) {
	t.Helper()
	return Parse(strings.NewReader(src), "agent.toml")
}

// TestShippedConfigs parses the configuration files the rpm package ships,
// as written: the commented example and the default /etc/rpmfleet/agent.toml.
func TestShippedConfigs(t *testing.T) {
	root := moduleRoot(t)
	t.Run("example", func(t *testing.T) {
		name := filepath.Join(root, "cross/rpmpkg/files/agent.toml.example")
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c, err := Parse(f, name)
		if err != nil {
			t.Fatalf("the shipped example does not parse:\n%v", err)
		}
		if c.Server != "" || len(c.Repos) != 2 || c.Repos[1].ID != "appstream" ||
			c.Repos[0].GPGKeys[0] != "/etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-9" || !c.Repos[0].GPGCheck || !c.Repos[0].Enabled {
			t.Errorf("server and repositories read wrong: %+v %+v", c.Server, c.Repos)
		}
		p := c.Policy
		if p.Mode != policy.Notify || !p.SecurityOnly || p.MinSeverity != advisory.Moderate ||
			strings.Join(p.Exclude, " ") != "kernel* grub2*" || p.Reboot != policy.RebootWhenNeeded {
			t.Errorf("policy read wrong: %+v", p)
		}
		if len(p.Windows) != 1 || p.Windows[0].String() != "sat,sun 02:00 for 3h0m0s (Europe/Berlin)" {
			t.Errorf("windows read wrong: %v", p.Windows)
		}
		if c.Poll != (Poll{Interval: 6 * time.Hour, ConnectedInterval: 12 * time.Hour, Jitter: 30 * time.Minute}) || c.MQTT.Broker != "" || c.HomeAssistant.Enabled || c.HomeAssistant.DiscoveryPrefix != "homeassistant" {
			t.Errorf("poll or mqtt read wrong: %+v %+v", c.Poll, c.MQTT)
		}
		if c.Reboot != (Reboot{Group: "default", SessionWait: time.Hour}) {
			t.Errorf("reboot read wrong: %+v", c.Reboot)
		}
	})
	t.Run("default", func(t *testing.T) {
		name := filepath.Join(root, "cross/rpmpkg/files/agent.toml")
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c, err := Parse(f, name)
		if err != nil {
			t.Fatalf("the shipped agent.toml does not parse:\n%v", err)
		}
		if c.Server != "" || c.StateDir != "/var/lib/rpmfleet" || c.Policy.Mode != policy.Notify {
			t.Errorf("read wrong: %+v", c)
		}
	})
}

func TestDefaults(t *testing.T) {
	c, err := parse(t, "# nothing set\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != DefaultStateDir || c.Root != "/" || c.Server != "" || c.Poll.Interval != time.Hour || c.Poll.Jitter != 10*time.Minute {
		t.Errorf("defaults: %+v", c)
	}
	p := c.Policy
	if p.Mode != policy.Notify || !p.SecurityOnly || p.MinSeverity != advisory.SeverityNone || p.Reboot != policy.RebootNever || len(p.Windows) != 0 {
		t.Errorf("policy defaults: %+v", p)
	}
	c, err = parse(t, "[poll]\ninterval = \"5m\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Poll.Jitter != 150*time.Second {
		t.Errorf("default jitter with a 5m interval = %s, want 2m30s (half the interval)", c.Poll.Jitter)
	}
	if c.Poll.Connected() != DefaultPollConnectedInterval {
		t.Errorf("connected interval with a 5m interval = %s, want the default %s", c.Poll.Connected(), DefaultPollConnectedInterval)
	}
	// A long interval set alone is not shortened while connected.
	c, err = parse(t, "[poll]\ninterval = \"24h\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Poll.Connected() != 24*time.Hour {
		t.Errorf("connected interval with a 24h interval = %s, want 24h (the larger)", c.Poll.Connected())
	}
	// Both set: a user who wants 10 minutes while connected too.
	c, err = parse(t, "[poll]\ninterval = \"10m\"\nconnected_interval = \"10m\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Poll.Interval != 10*time.Minute || c.Poll.Connected() != 10*time.Minute {
		t.Errorf("both 10m: interval %s, connected %s", c.Poll.Interval, c.Poll.Connected())
	}
	c, err = parse(t, "[[repo]]\nid = \"local\"\nbaseurl = \"/srv/repo\"\ngpgcheck = false\nenabled = false\n"+
		"[[policy.window]]\ndays = [\"mon-fri\"]\nstart = \"23:30\"\nlength = \"90m\"\n"+
		"[mqtt]\nbroker = \"mqtt://127.0.0.1:1883\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Repos[0].GPGCheck || c.Repos[0].Enabled || c.Policy.Windows[0].Location != time.Local {
		t.Errorf("explicit false or the default zone lost: %+v %v", c.Repos[0], c.Policy.Windows[0])
	}
}

// TestProblems gives one problem per file and wants exactly that error,
// with its line and key.
func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{name: "bad mode", src: "[policy]\nmode = \"sometimes\"\n", want: `agent.toml:2: key "policy.mode": bad value "sometimes": want notify, download or apply`},
		{name: "unknown top key", src: "server = \"https://x.example\"\nstate_dri = \"/var/lib/x\"\n", want: `agent.toml:2: key "state_dri": unknown key`},
		{name: "unknown key in a repo names the element", src: "[[repo]]\nid = \"a\"\nbaseurl = \"https://a.example/\"\ngpgkey = [\"/k\"]\n\n[[repo]]\nid = \"b\"\nbaseurl = \"https://b.example/\"\ngpgkey = [\"/k\"]\nmirrorlist = \"x\"\n", want: `agent.toml:10: key "repo[1].mirrorlist": unknown key`},
		{name: "server_ca gets a hint", src: "server_ca = \"/etc/ca.pem\"\n", want: `agent.toml:1: key "server_ca": unknown key; the server's CA is "ca"`},
		{name: "inline mqtt password refused", src: "[mqtt]\nbroker = \"mqtts://b.example\"\npassword = \"hunter2\"\n", want: `agent.toml:3: key "mqtt.password": unknown key; a password is not kept in the configuration: put it in a file only root can read and name that file with password_file`},
		{name: "syntax error", src: "[policy]\nmode = notify\n", want: `agent.toml:2: syntax error: expected value but found "notify" instead (after key "policy.mode")`},
		{name: "wrong type", src: "[poll]\ninterval = 3600\n", want: `agent.toml:2: key "poll.interval": want a string, not an integer`},
		{name: "bad duration", src: "[poll]\ninterval = \"hourly\"\n", want: `agent.toml:2: key "poll.interval": bad value "hourly": want a duration such as "1h" or "30m"`},
		{name: "zero interval", src: "[poll]\ninterval = \"0s\"\n", want: `agent.toml:2: key "poll.interval": bad value "0s": want more than 0`},
		{name: "jitter not less than interval", src: "[poll]\ninterval = \"10m\"\njitter = \"10m\"\n", want: `agent.toml:3: key "poll.jitter": bad value "10m": want less than the interval (10m0s)`},
		{name: "connected interval not a duration", src: "[poll]\nconnected_interval = \"often\"\n", want: `agent.toml:2: key "poll.connected_interval": bad value "often": want a duration such as "1h" or "30m"`},
		{name: "zero connected interval", src: "[poll]\nconnected_interval = \"0s\"\n", want: `agent.toml:2: key "poll.connected_interval": bad value "0s": want more than 0`},
		{name: "connected interval below the interval", src: "[poll]\ninterval = \"2h\"\n\nconnected_interval = \"30m\"\n", want: `agent.toml:4: key "poll.connected_interval": bad value "30m": want at least the interval (2h0m0s); to poll that often while connected, set interval as well`},
		{name: "connected interval below the default interval", src: "[poll]\nconnected_interval = \"10m\"\n", want: `agent.toml:2: key "poll.connected_interval": bad value "10m": want at least the interval (1h0m0s); to poll that often while connected, set interval as well`},
		{name: "jitter against the default interval", src: "[poll]\njitter = \"2h\"\n", want: `agent.toml:2: key "poll.jitter": bad value "2h": want less than the interval (1h0m0s)`},
		{name: "plain http server", src: "server = \"http://fleet.example.org\"\n", want: `agent.toml:1: key "server": bad value "http://fleet.example.org": want https: plain http is allowed only to a loopback host`},
		{name: "credentials in the server URL", src: "server = \"https://u:p@fleet.example.org\"\n", want: `agent.toml:1: key "server": bad value "https://u:p@fleet.example.org": credentials do not belong in the URL`},
		{name: "relative state_dir", src: "state_dir = \"var/lib\"\n", want: `agent.toml:1: key "state_dir": bad value "var/lib": want an absolute path`},
		{name: "bad severity", src: "[policy]\nmin_severity = \"severe\"\n", want: `agent.toml:2: key "policy.min_severity": bad value "severe": want none, low, moderate, important or critical`},
		{name: "bad glob", src: "[policy]\nexclude = [\"kernel*\", \"grub[\"]\n", want: `agent.toml:2: key "policy.exclude": bad value "grub[": want a package name glob (path.Match syntax: * ? [a-z] \)`},
		{name: "bad reboot", src: "[policy]\nreboot = \"always\"\n", want: `agent.toml:2: key "policy.reboot": bad value "always": want never or when-needed`},
		{name: "exclude not an array", src: "[policy]\nexclude = \"kernel*\"\n", want: `agent.toml:2: key "policy.exclude": want an array of strings, not a string`},
		{name: "bad day", src: "[[policy.window]]\ndays = [\"sat\", \"caturday\"]\nstart = \"02:00\"\nlength = \"2h\"\n", want: `agent.toml:2: key "policy.window[0].days": bad value "caturday": want mon, tue, wed, thu, fri, sat, sun or a range such as mon-fri`},
		{name: "bad start", src: "[[policy.window]]\ndays = [\"sat\"]\nstart = \"2am\"\nlength = \"2h\"\n", want: `agent.toml:3: key "policy.window[0].start": bad value "2am": want HH:MM from 00:00 to 23:59`},
		{name: "too long a window", src: "[[policy.window]]\ndays = [\"sat\"]\nstart = \"02:00\"\nlength = \"169h\"\n", want: `agent.toml:4: key "policy.window[0].length": bad value "169h": want more than 0 and at most 168h0m0s`},
		{name: "unknown time zone", src: "[[policy.window]]\ndays = [\"sat\"]\nstart = \"02:00\"\nlength = \"2h\"\ntimezone = \"Europe/Atlantis\"\n", want: `agent.toml:5: key "policy.window[0].timezone": bad value "Europe/Atlantis": want an IANA time zone such as Europe/Berlin`},
		{name: "window without length", src: "[[policy.window]]\ndays = [\"sat\"]\nstart = \"02:00\"\n", want: `agent.toml:1: key "policy.window[0]": missing length`},
		{name: "single window table instead of an array", src: "[policy.window]\ndays = [\"sat\"]\n", want: `agent.toml:1: key "policy.window": want an array of tables ([[policy.window]]), not a table`},
		{name: "repo without baseurl", src: "[[repo]]\nid = \"a\"\ngpgkey = [\"/k\"]\n", want: `agent.toml:1: key "repo[0]": missing baseurl`},
		{name: "repo with gpgcheck and no key", src: "[[repo]]\nid = \"a\"\nbaseurl = \"https://a.example/\"\n", want: `agent.toml:1: key "repo[0]": gpgcheck is on but no gpgkey is given: packages could not be verified`},
		{name: "gpgkey over the network", src: "[[repo]]\nid = \"a\"\nbaseurl = \"https://a.example/\"\ngpgkey = [\"https://a.example/KEY\"]\n", want: `agent.toml:4: key "repo[0].gpgkey": bad value "https://a.example/KEY": want a key file on the device (an absolute path or file:/// URL); a key fetched over the network pins nothing`},
		{name: "gpgkey a string, not a list", src: "[[repo]]\nid = \"a\"\nbaseurl = \"https://a.example/\"\ngpgkey = \"/k\"\n", want: `agent.toml:4: key "repo[0].gpgkey": want an array of strings, not a string`},
		{name: "bad baseurl scheme", src: "[[repo]]\nid = \"a\"\nbaseurl = \"ftp://a.example/\"\ngpgkey = [\"/k\"]\n", want: `agent.toml:3: key "repo[0].baseurl": bad value "ftp://a.example/": want an http, https or file URL, or an absolute folder`},
		{name: "duplicate repo id", src: "[[repo]]\nid = \"a\"\nbaseurl = \"/r\"\ngpgkey = [\"/k\"]\n[[repo]]\nid = \"a\"\nbaseurl = \"/r\"\ngpgkey = [\"/k\"]\n", want: `agent.toml:6: key "repo[1].id": repository "a" is defined twice`},
		{name: "bad broker scheme", src: "[mqtt]\nbroker = \"http://b.example:1883\"\n", want: `agent.toml:2: key "mqtt.broker": bad value "http://b.example:1883": scheme "http": want mqtt, mqtts (or paho's tcp, ssl, tls)`},
		{name: "websocket broker", src: "[mqtt]\nbroker = \"wss://b.example/mqtt\"\n", want: `agent.toml:2: key "mqtt.broker": bad value "wss://b.example/mqtt": MQTT over WebSocket is not supported; use mqtt:// or mqtts://`},
		{name: "password in clear over the network", src: "[mqtt]\nbroker = \"mqtt://b.example:1883\"\npassword_file = \"/etc/rpmfleet/mqtt-password\"\n", want: `agent.toml:2: key "mqtt.broker": bad value "mqtt://b.example:1883": a password would cross the network in clear; use mqtts://`},
		{name: "notice key neither base64 nor a path", src: "notice_key = \"notice.pub\"\n", want: `agent.toml:1: key "notice_key": bad value: want base64 of a 32-byte Ed25519 public key or a PEM PUBLIC KEY, or an absolute path to a file holding it`},
		{name: "notice key of the wrong size", src: "notice_key = \"AAAA\"\n", want: `agent.toml:1: key "notice_key": bad value: 3 bytes, want 32, or an absolute path to a file holding it`},
		{name: "quoted and dotted keys still located", src: "\"policy\".mode = 'x'\n", want: `agent.toml:1: key "policy.mode": bad value "x": want notify, download or apply`},
		{name: "key after a multi-line string", src: "[policy]\nhealth_checks = [\"\"\"\nmode = 'not a key'\n\"\"\"]\nmode = \"y\"\n", want: `agent.toml:5: key "policy.mode": bad value "y": want notify, download or apply`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse(t, tt.src)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

// TestAllProblemsAtOnce holds the errors for a file with many problems to
// testdata/many-problems.golden: every one is reported, in line order.
func TestAllProblemsAtOnce(t *testing.T) {
	src, err := os.ReadFile("testdata/many-problems.toml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(strings.NewReader(string(src)), "many-problems.toml")
	if err == nil {
		t.Fatal("accepted")
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("not Errors: %T %v", err, err)
	}
	got := err.Error() + "\n"
	golden := "testdata/many-problems.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("errors differ from %s (run go test -update):\n%s", golden, got)
	}
	for i := 1; i < len(errs); i++ {
		if errs[i].Line < errs[i-1].Line {
			t.Errorf("not in line order: %v before %v", errs[i-1], errs[i])
		}
	}
}

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// TestLoad reads the files a configuration points to for trust and secrets,
// and refuses them when others could read or write them.
func TestLoad(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	b64Key := base64.StdEncoding.EncodeToString(pub) + "\n"
	// One key in 64 has base64 that begins with "/", as a path does.
	slashPub := append(ed25519.PublicKey{0xfc}, pub[1:]...)
	slashKey := base64.StdEncoding.EncodeToString(slashPub)
	if !strings.HasPrefix(slashKey, "/") {
		t.Fatalf("%s does not begin with /", slashKey)
	}

	tests := []struct {
		name       string
		files      map[string]string // name -> content, written 0600
		modes      map[string]os.FileMode
		config     string
		configMode os.FileMode
		wantErr    string
		check      func(t *testing.T, c *Config)
	}{
		{
			name:   "notice key file in PEM",
			files:  map[string]string{"notice.pem": pemKey},
			config: "notice_key = \"DIR/notice.pem\"\n",
			check: func(t *testing.T, c *Config) {
				if !pub.Equal(c.NoticeKey) {
					t.Errorf("notice key = %x, want %x", c.NoticeKey, pub)
				}
			},
		},
		{
			name:   "notice key file in base64",
			files:  map[string]string{"notice.pub": b64Key},
			config: "notice_key = \"DIR/notice.pub\"\n",
			check: func(t *testing.T, c *Config) {
				if !pub.Equal(c.NoticeKey) {
					t.Errorf("notice key = %x, want %x", c.NoticeKey, pub)
				}
			},
		},
		{
			name:   "notice key inline beginning with a slash",
			config: "notice_key = \"" + slashKey + "\"\n",
			check: func(t *testing.T, c *Config) {
				if !slashPub.Equal(c.NoticeKey) || c.NoticeKeyFile != "" {
					t.Errorf("notice key = %x, file %q; want %x and no file", c.NoticeKey, c.NoticeKeyFile, slashPub)
				}
			},
		},
		{
			name:   "notice key inline",
			config: "notice_key = \"" + strings.TrimSpace(b64Key) + "\"\n",
			check: func(t *testing.T, c *Config) {
				if !pub.Equal(c.NoticeKey) {
					t.Errorf("notice key = %x, want %x", c.NoticeKey, pub)
				}
			},
		},
		{
			name:    "notice key file missing",
			config:  "notice_key = \"DIR/absent.pub\"\n",
			wantErr: `agent.toml:1: key "notice_key": open DIR/absent.pub: no such file or directory`,
		},
		{
			name:    "notice key file holds something else",
			files:   map[string]string{"notice.pub": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
			config:  "notice_key = \"DIR/notice.pub\"\n",
			wantErr: `agent.toml:1: key "notice_key": DIR/notice.pub: PEM block "CERTIFICATE", want PUBLIC KEY`,
		},
		{
			name:    "notice key file others can write is refused",
			files:   map[string]string{"notice.pub": b64Key},
			modes:   map[string]os.FileMode{"notice.pub": 0o664},
			config:  "notice_key = \"DIR/notice.pub\"\n",
			wantErr: `agent.toml:1: key "notice_key": DIR/notice.pub has mode 0664: whoever may write it chooses whose notices the agent trusts; chmod go-w`,
		},
		{
			name:   "password file 0600 is read",
			files:  map[string]string{"mqtt-password": "s3cret\n"},
			config: "[mqtt]\nbroker = \"mqtts://b.example\"\nusername = \"dev\"\npassword_file = \"DIR/mqtt-password\"\n",
			check: func(t *testing.T, c *Config) {
				if c.MQTT.Password != "s3cret" {
					t.Errorf("password = %q", c.MQTT.Password)
				}
			},
		},
		{
			name:    "password file others can read is refused",
			files:   map[string]string{"mqtt-password": "s3cret\n"},
			modes:   map[string]os.FileMode{"mqtt-password": 0o644},
			config:  "[mqtt]\nbroker = \"mqtts://b.example\"\npassword_file = \"DIR/mqtt-password\"\n",
			wantErr: `agent.toml:3: key "mqtt.password_file": DIR/mqtt-password has mode 0644: a password file must not be readable by group or others; chmod 600`,
		},
		{
			name:    "empty password file",
			files:   map[string]string{"mqtt-password": "\n"},
			config:  "[mqtt]\nbroker = \"mqtts://b.example\"\npassword_file = \"DIR/mqtt-password\"\n",
			wantErr: `agent.toml:3: key "mqtt.password_file": DIR/mqtt-password is empty`,
		},
		{
			name:       "config others can write is refused, with its other problems",
			config:     "[policy]\nmode = \"all\"\n",
			configMode: 0o666,
			wantErr:    "agent.toml: mode 0666 lets group or others write the file that pins the agent's trust; chmod go-w\nagent.toml:2: key \"policy.mode\": bad value \"all\": want notify, download or apply",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				mode := os.FileMode(0o600)
				if m, ok := tt.modes[name]; ok {
					mode = m
				}
				writeFile(t, dir, name, content, mode)
			}
			mode := tt.configMode
			if mode == 0 {
				mode = 0o644
			}
			cfg := writeFile(t, dir, "agent.toml", strings.ReplaceAll(tt.config, "DIR", dir), mode)
			c, err := Load(cfg)
			if tt.wantErr != "" {
				want := strings.ReplaceAll(strings.ReplaceAll(tt.wantErr, "DIR", dir), "agent.toml", cfg)
				if err == nil || err.Error() != want {
					t.Fatalf("error:\n got %v\nwant %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent.toml")); err == nil || errors.Is(err, ErrInvalid) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v, want a read error, not ErrInvalid", err)
	}
}
