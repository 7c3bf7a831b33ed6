package daemon

import (
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
)

// Allow-listed updates (issue 13): packages no advisory names, such as the
// Raspberry Pi's kernel and firmware, that the policy in force (the group
// policy of the signed plan, narrowed by the device's file) lets go to the
// newest build the repositories hold. They are not in the plan: the cycle
// finds them in the repositories' primary.xml (update.Selection.Packages),
// so every act that may apply looks for them, in the same cycle as the
// advisories it applies, under the same signature and checksum checks and
// rollback. A look that finds nothing makes no cycle and no report.

// plainUpdates returns the allow-listed names a cycle may update now:
// those no exclude matches, when the mode is apply, a window is open and
// automatic applies are not held back (holdUntil, a standalone agent
// after a failed cycle).
func plainUpdates(pol *policy.Policy, now, holdUntil time.Time) []string {
	if pol.Mode != policy.Apply || !pol.InWindow(now) || now.Before(holdUntil) {
		return nil
	}
	allowed, _ := pol.PlainUpdates()
	return allowed
}

// downloadUpdates returns the allow-listed names download mode fetches and
// verifies ahead (download.go), so that a later apply needs no package
// from the network: those no exclude matches, when the mode is download.
// As for advisories, the same set is fetched once per daemon run.
func downloadUpdates(pol *policy.Policy) []string {
	if pol.Mode != policy.Download {
		return nil
	}
	allowed, _ := pol.PlainUpdates()
	return allowed
}

// installonlyLimit is update.Options.InstallonlyLimit for the policy's
// installonly_limit, where 0 keeps every instance, as dnf's does.
func installonlyLimit(pol *policy.Policy) int {
	if pol.InstallonlyLimit == 0 {
		return -1
	}
	return pol.InstallonlyLimit
}

// cycleLabel names a cycle of advisories and allow-listed updates.
func cycleLabel(ids string, plain []string) string {
	switch {
	case len(plain) == 0:
		return ids
	case ids == "":
		return "allow-listed updates"
	}
	return ids + " and allow-listed updates"
}

// lookedForPlain follows a look for allow-listed updates alone that found
// nothing newer: no cycle ran, so there is no report to queue and no
// failure to hold applies back for (a standalone agent would otherwise
// hold its next applies, and check again at once, for ever); what came
// during the look is acted on.
func (d *daemon) lookedForPlain() {
	d.spoolWant = true
	switch {
	case d.standalone && d.checkAfter:
		d.checkAfter, d.planDirty = false, false
		d.fetch()
	case d.planDirty:
		d.planDirty = false
		d.act()
	}
}
