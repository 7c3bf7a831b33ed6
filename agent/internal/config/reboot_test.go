package config

import (
	"testing"
	"time"
)

// TestReboot: the [reboot] section's defaults and values, and each bad
// value refused with the file, line and key.
func TestReboot(t *testing.T) {
	c, err := parse(t, "# nothing set\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Reboot != (Reboot{Group: "default", SessionWait: time.Hour}) {
		t.Errorf("defaults = %+v", c.Reboot)
	}
	for _, tc := range []struct {
		name, src string
		want      Reboot
	}{
		{"airlock", "[reboot]\nfleetlock_url = \"https://airlock.example.org/base\"\ngroup = \"workers\"\nid = \"pi-7\"\nsession_wait = \"15m\"\n",
			Reboot{FleetLockURL: "https://airlock.example.org/base", Group: "workers", ID: "pi-7", SessionWait: 15 * time.Minute}},
		{"off, no wait", "[reboot]\nfleetlock_url = \"off\"\nsession_wait = \"0s\"\n", Reboot{FleetLockOff: true, Group: "default"}},
		{"http to loopback", "[reboot]\nfleetlock_url = \"http://127.0.0.1:3333\"\n", Reboot{FleetLockURL: "http://127.0.0.1:3333", Group: "default", SessionWait: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(t, tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if c.Reboot != tc.want {
				t.Errorf("= %+v, want %+v", c.Reboot, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, src, want string }{
		{"plain http elsewhere", "[reboot]\nfleetlock_url = \"http://lock.example.org\"\n", `agent.toml:2: key "reboot.fleetlock_url": bad value "http://lock.example.org": http only to a loopback host; use https`},
		{"not a URL", "[reboot]\nfleetlock_url = \"lock.example.org\"\n", `agent.toml:2: key "reboot.fleetlock_url": bad value "lock.example.org": want an http or https URL with a host (no credentials, query or fragment), or "off"`},
		{"credentials in the URL", "[reboot]\nfleetlock_url = \"https://u:p@lock.example.org\"\n", `agent.toml:2: key "reboot.fleetlock_url": bad value "https://u:p@lock.example.org": want an http or https URL with a host (no credentials, query or fragment), or "off"`},
		{"bad group", "[reboot]\n\ngroup = \"west wing\"\n", `agent.toml:3: key "reboot.group": bad value "west wing": want ^[a-zA-Z0-9.-]+$, at most 64 bytes`},
		{"escape in id", "[reboot]\nid = \"pi\\u001b[2J\"\n", `agent.toml:2: key "reboot.id": bad value "pi\x1b[2J": want 1 to 128 printable ASCII characters`},
		{"negative wait", "[reboot]\nsession_wait = \"-1m\"\n", `agent.toml:2: key "reboot.session_wait": bad value "-1m": want from 0s to 168h`},
		{"unknown key", "[reboot]\ncommand = \"reboot -f\"\n", `agent.toml:2: key "reboot.command": unknown key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.src)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
}
