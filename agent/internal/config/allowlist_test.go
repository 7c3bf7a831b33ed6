package config

import (
	"errors"
	"slices"
	"testing"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
)

// TestAllowUpdates: [policy] allow_updates and installonly_limit are read
// with their defaults, and every bad value is refused naming its line.
func TestAllowUpdates(t *testing.T) {
	c, err := parse(t, "[policy]\nmode = \"apply\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.AllowUpdates != nil || c.Policy.Set&policy.SetAllowUpdates != 0 || c.Policy.InstallonlyLimit != 3 {
		t.Errorf("defaults: allow_updates %q (set %v), installonly_limit %d; want none, unset, 3",
			c.Policy.AllowUpdates, c.Policy.Set&policy.SetAllowUpdates != 0, c.Policy.InstallonlyLimit)
	}
	c, err = parse(t, "[policy]\nallow_updates = [\"raspberrypi2-kernel4\", \"raspberrypi2-firmware\"]\ninstallonly_limit = 2\n")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Policy.AllowUpdates, []string{"raspberrypi2-kernel4", "raspberrypi2-firmware"}) || c.Policy.Set&policy.SetAllowUpdates == 0 || c.Policy.InstallonlyLimit != 2 {
		t.Errorf("read allow_updates %q, installonly_limit %d", c.Policy.AllowUpdates, c.Policy.InstallonlyLimit)
	}
	c, err = parse(t, "[policy]\nallow_updates = []\ninstallonly_limit = 0\n")
	if err != nil || c.Policy.AllowUpdates == nil || len(c.Policy.AllowUpdates) != 0 || c.Policy.Set&policy.SetAllowUpdates == 0 || c.Policy.InstallonlyLimit != 0 {
		t.Errorf("an empty list (refusing every group name) and 0 (keep all): %+v, %v", c, err)
	}
	for _, tt := range []struct{ name, src, want string }{
		{"glob", "[policy]\n\nallow_updates = [\"raspberrypi2-*\"]\n", `agent.toml:3: key "policy.allow_updates": bad value "raspberrypi2-*": want a package name (letters, digits and ._+- only; no globs)`},
		{"escape code", "[policy]\nallow_updates = [\"k\\u001b[2J\"]\n", `agent.toml:2: key "policy.allow_updates": bad value "k\x1b[2J": want a package name (letters, digits and ._+- only; no globs)`},
		{"twice", "[policy]\nallow_updates = [\"a\", \"a\"]\n", `agent.toml:2: key "policy.allow_updates": "a" listed twice`},
		{"not a list", "[policy]\nallow_updates = \"kernel\"\n", `agent.toml:2: key "policy.allow_updates": want an array of strings, not a string`},
		{"limit 1", "[policy]\ninstallonly_limit = 1\n", `agent.toml:2: key "policy.installonly_limit": bad value 1: want 0 (keep every kernel) or 2 to 100`},
		{"negative limit", "[policy]\ninstallonly_limit = -3\n", `agent.toml:2: key "policy.installonly_limit": bad value -3: want 0 (keep every kernel) or 2 to 100`},
		{"limit a string", "[policy]\ninstallonly_limit = \"3\"\n", `agent.toml:2: key "policy.installonly_limit": want a number, not a string`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.src)
			if !errors.Is(err, ErrInvalid) || err.Error() != tt.want {
				t.Errorf("error:\n got %v\nwant %s", err, tt.want)
			}
		})
	}
}
