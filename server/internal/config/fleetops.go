package config

import (
	"fmt"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// FleetLock is the [fleetlock] section: the reboot lock the server serves
// at /v1/pre-reboot and /v1/steady-state (server/internal/api's
// fleetlock.go says who may take a slot).
//
//	[fleetlock]
//	auth = "device"      # or "open": no credential needed but for enrolled devices' ids
//	slots = 1            # devices of one reboot group rebooting at once
//	timeout = "2h"       # a slot whose holder never comes back frees itself
//	[fleetlock.groups]   # slots per reboot group, overriding slots
//	workers = 2
type FleetLock struct {
	Auth    string         `toml:"auth"`
	Slots   int            `toml:"slots"`
	Timeout Duration       `toml:"timeout"`
	Groups  map[string]int `toml:"groups"`
}

// Rollouts is the [rollouts] section: how often the server judges its
// running rollouts ("tick", 5 s by default, at least 100 ms).
type Rollouts struct {
	Tick Duration `toml:"tick"`
}

// DefaultRolloutTick is how often rollouts are judged when [rollouts]
// tick is not set.
const DefaultRolloutTick = 5 * time.Second

// TickOrDefault is Tick, or DefaultRolloutTick when it is zero.
func (r Rollouts) TickOrDefault() time.Duration {
	if r.Tick == 0 {
		return DefaultRolloutTick
	}
	return time.Duration(r.Tick)
}

func (r Rollouts) check() error {
	if r.Tick < 0 || r.Tick > 0 && time.Duration(r.Tick) < 100*time.Millisecond || time.Duration(r.Tick) > time.Hour {
		return fmt.Errorf("config: rollouts.tick: %v is not from 100ms to 1h", time.Duration(r.Tick))
	}
	return nil
}

// check reports FleetLock settings that cannot work.
func (f FleetLock) check() error {
	switch f.Auth {
	case "", "device", "open":
	default:
		return fmt.Errorf("config: fleetlock.auth: %q is not \"device\" or \"open\"", f.Auth)
	}
	if f.Slots < 0 {
		return fmt.Errorf("config: fleetlock.slots: %d is negative", f.Slots)
	}
	if f.Timeout < 0 || f.Timeout > 0 && time.Duration(f.Timeout) < time.Second {
		return fmt.Errorf("config: fleetlock.timeout: %v is shorter than a second", time.Duration(f.Timeout))
	}
	for g, n := range f.Groups {
		if !protocol.ValidFleetLockGroup(g) {
			return fmt.Errorf("config: fleetlock.groups: %q must match ^[a-zA-Z0-9.-]+$ and be at most 64 bytes", g)
		}
		if n < 1 {
			return fmt.Errorf("config: fleetlock.groups.%s: %d slots, want at least 1", g, n)
		}
	}
	return nil
}
