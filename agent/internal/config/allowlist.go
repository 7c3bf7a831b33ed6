package config

import (
	"slices"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// maxInstallonlyLimit bounds installonly_limit: more kernels than that on
// a small board's /boot is a typing error.
const maxInstallonlyLimit = 100

// plainUpdates reads [policy]'s allow_updates (package names updated
// without an advisory; under a group policy only the names both lists
// hold, policy.Narrow) and installonly_limit (dnf's: how many instances
// of an install-only package, a kernel, stay installed; 0 keeps all,
// else at least 2; 3 by default).
func (d *decoder) plainUpdates(t *table, p *policy.Policy) {
	if names, ok := t.strs("allow_updates"); ok {
		p.AllowUpdates = []string{}
		p.Set |= policy.SetAllowUpdates
		for _, n := range names {
			switch {
			case !protocol.ValidPackageName(n):
				d.errorf(t.key("allow_updates"), "bad value %q: want a package name (letters, digits and ._+- only; no globs)", n)
			case slices.Contains(p.AllowUpdates, n):
				d.errorf(t.key("allow_updates"), "%q listed twice", n)
			case len(p.AllowUpdates) == protocol.MaxPolicyAllowUpdates:
				d.errorf(t.key("allow_updates"), "more than %d names", protocol.MaxPolicyAllowUpdates)
			default:
				p.AllowUpdates = append(p.AllowUpdates, n)
			}
		}
	}
	if v, ok := t.get("installonly_limit"); ok {
		n, isInt := v.(int64)
		switch {
		case !isInt:
			d.errorf(t.key("installonly_limit"), "want a number, not %s", typeName(v))
		case n == 1 || n < 0 || n > maxInstallonlyLimit:
			d.errorf(t.key("installonly_limit"), "bad value %d: want 0 (keep every kernel) or 2 to %d", n, maxInstallonlyLimit)
		default:
			p.InstallonlyLimit = int(n)
		}
	}
}
