package config

import (
	"net/url"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// DefaultSessionWait is how long a due reboot waits for interactive
// sessions to end when [reboot] session_wait is not set.
const DefaultSessionWait = time.Hour

// Reboot is the [reboot] section: how the agent coordinates a needed
// reboot with the rest of the fleet and with the people logged in
// (docs/architecture.md, "Reboot coordination").
//
//	[reboot]
//	fleetlock_url = ""          # default: the enrolled server's FleetLock; "off": no lock; or any FleetLock server (Airlock)
//	group = "default"           # the FleetLock reboot group
//	id = ""                     # client_params.id; default: the device id (enrolled) or the host name
//	session_wait = "1h"         # wait at most this long for interactive sessions to end; "0s" does not wait
type Reboot struct {
	// FleetLockURL is the lock server's base URL; "" means the enrolled
	// fleet server's own, and none when standalone. FleetLockOff is set
	// for "off".
	FleetLockURL string
	FleetLockOff bool
	// Group is the reboot group; "default" when not set.
	Group string
	// ID is the client_params.id; "" lets the agent choose.
	ID string
	// SessionWait bounds the wait for logged-in users.
	SessionWait time.Duration
}

func (d *decoder) reboot(t *table) Reboot {
	r := Reboot{Group: "default", SessionWait: DefaultSessionWait}
	if t == nil {
		return r
	}
	if s, ok := t.str("fleetlock_url"); ok {
		switch u, err := url.Parse(s); {
		case s == "off":
			r.FleetLockOff = true
		case s == "":
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
			d.errorf(t.key("fleetlock_url"), "bad value %q: want an http or https URL with a host (no credentials, query or fragment), or \"off\"", s)
		case u.Scheme == "http" && !isLoopback(u.Hostname()):
			d.errorf(t.key("fleetlock_url"), "bad value %q: http only to a loopback host; use https", s)
		default:
			r.FleetLockURL = s
		}
	}
	if s, ok := t.str("group"); ok {
		if !protocol.ValidFleetLockGroup(s) {
			d.errorf(t.key("group"), "bad value %q: want ^[a-zA-Z0-9.-]+$, at most 64 bytes", s)
		} else {
			r.Group = s
		}
	}
	if s, ok := t.str("id"); ok {
		if s == "" || len(s) > 128 || !printableASCII(s) {
			d.errorf(t.key("id"), "bad value %q: want 1 to 128 printable ASCII characters", s)
		} else {
			r.ID = s
		}
	}
	if w, ok := t.duration("session_wait"); ok {
		if w < 0 || w > 7*24*time.Hour {
			d.errorf(t.key("session_wait"), "bad value %q: want from 0s to 168h", t.m["session_wait"])
		} else {
			r.SessionWait = w
		}
	}
	t.done()
	return r
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
