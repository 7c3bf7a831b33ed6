package policy

import (
	"slices"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// PlanOptions are what a plan's decision takes beyond the policy.
type PlanOptions struct {
	// Force names advisories an apply command forces, whatever the mode
	// and the windows; never past an exclude.
	Force []string
	// HoldUntil holds automatic applies back until then (a standalone
	// agent after a failed cycle); the zero time holds nothing.
	HoldUntil time.Time
}

// PlanDecision is what to do with a plan: the advisories to apply now and
// those to download ahead, each with the SHA-256 digests the plan pins for
// their packages, and those held back, with why.
type PlanDecision struct {
	// Apply and Download are advisory ids, in plan order.
	Apply, Download []string
	// Pins are the digests pinned for the packages of Apply, DownloadPins
	// those of Download (update.Options.Pins).
	Pins, DownloadPins map[rpmver.Key]string
	// Held are the advisories not applied now, in plan order, Download's
	// among them.
	Held []Held
	// Waiting says an advisory waits for a maintenance window to open.
	Waiting bool
}

// Held is a plan's advisory not applied now.
type Held struct {
	ID string
	// Action is what is done with it instead: a Verb's String (Skip's
	// "skip" among them), or protocol.ActionRefused.
	Action string
	Reason string
	// Excluded: a package of it is excluded, so no cycle applies it (a
	// cycle applies whole advisories).
	Excluded bool
}

// DecidePlan decides, with Decide under p at now, what to do with each
// advisory of plan. An advisory with an excluded package is never applied
// (a cycle applies whole advisories), not even when forced; a forced one is
// applied otherwise, whatever the mode and windows; one the policy would
// apply now waits while o.HoldUntil is ahead.
func DecidePlan(plan *protocol.Plan, p *Policy, now time.Time, o PlanOptions) PlanDecision {
	d := PlanDecision{Pins: map[rpmver.Key]string{}, DownloadPins: map[rpmver.Key]string{}}
	for _, pa := range plan.Advisories {
		adv := planAdvisory(pa)
		act := Decide(&adv, p, now)
		forced := slices.Contains(o.Force, pa.ID)
		excluded := len(act.Excluded) > 0
		switch {
		case forced && act.Verb == Skip && excluded:
			d.Held = append(d.Held, Held{ID: pa.ID, Action: protocol.ActionRefused, Reason: act.Reason, Excluded: true})
		case excluded && (forced || act.Verb == ApplyNow):
			d.Held = append(d.Held, Held{ID: pa.ID, Action: NotifyOnly.String(), Reason: act.Reason + "; a cycle applies whole advisories", Excluded: true})
		case !forced && act.Verb == ApplyNow && now.Before(o.HoldUntil):
			d.Held = append(d.Held, Held{ID: pa.ID, Action: NotifyOnly.String(), Reason: "the last update cycle failed; tried again at the next check after " + o.HoldUntil.Format(time.RFC3339)})
		case forced, act.Verb == ApplyNow:
			d.Apply = append(d.Apply, pa.ID)
			addPins(d.Pins, pa)
		default:
			if act.Verb == DownloadOnly && !excluded {
				d.Download = append(d.Download, pa.ID)
				addPins(d.DownloadPins, pa)
			}
			d.Held = append(d.Held, Held{ID: pa.ID, Action: act.Verb.String(), Reason: act.Reason, Excluded: excluded})
			if act.Verb != Skip && p.Mode == Apply && !p.InWindow(now) {
				d.Waiting = true
			}
		}
	}
	return d
}

// planAdvisory is what Decide reads of a plan's advisory. A fixed version
// that does not parse leaves the package's EVR empty: Decide reads names
// only.
func planAdvisory(pa protocol.PlanAdvisory) advisory.Advisory {
	sev, _ := advisory.ParseSeverity(pa.Severity)
	a := advisory.Advisory{ID: pa.ID, Type: advisory.Type(strings.ToLower(pa.Type)), Severity: sev, RebootSuggested: pa.RebootSuggested}
	for _, pp := range pa.Packages {
		e, _ := rpmver.ParseEVR(pp.Fixed)
		a.Packages = append(a.Packages, advisory.Package{Name: pp.Name, EVR: e, Arch: pp.Arch})
	}
	return a
}

// addPins adds the digests pa pins to pins, by package build.
func addPins(pins map[rpmver.Key]string, pa protocol.PlanAdvisory) {
	for _, pp := range pa.Packages {
		if pp.SHA256 == "" {
			continue
		}
		if e, err := rpmver.ParseEVR(pp.Fixed); err == nil {
			pins[rpmver.NEVRA{Name: pp.Name, EVR: e, Arch: pp.Arch}.Key()] = pp.SHA256
		}
	}
}
