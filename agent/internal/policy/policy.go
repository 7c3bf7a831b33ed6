// Package policy holds the agent's update policy and the pure decisions made
// from it: whether a maintenance window is open, when the next one opens,
// what to do with an advisory, and whether a reboot may happen now.
//
// Nothing here reads a clock, a file or the network: every decision takes the
// time as an argument, so the daemon passes time.Now() and the tests pass the
// instants they care about (daylight-saving changes among them). The
// configuration file is parsed into these types by agent/internal/config.
package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// Mode is how far the agent goes on its own with an advisory that applies.
type Mode int

// Modes, from least to most action. The zero value is Notify.
const (
	// Notify only reports what the device needs.
	Notify Mode = iota
	// Download also fetches and verifies the packages, ready to apply.
	Download
	// Apply installs them, inside a maintenance window when there is one.
	Apply
)

var modeNames = [...]string{"notify", "download", "apply"}

func (m Mode) String() string {
	if m < 0 || int(m) >= len(modeNames) {
		return fmt.Sprintf("Mode(%d)", int(m))
	}
	return modeNames[m]
}

// ParseMode reads "notify", "download" or "apply".
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if s == n {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("%w: mode %q: want notify, download or apply", ErrBadValue, s)
}

// Reboot says whether the agent may reboot the device.
type Reboot int

// Reboot policies. The zero value is RebootNever.
const (
	// RebootNever leaves reboots to the admin; the device reports that it
	// needs one.
	RebootNever Reboot = iota
	// RebootWhenNeeded reboots after an update that needs it, only inside a
	// maintenance window.
	RebootWhenNeeded
)

func (r Reboot) String() string {
	switch r {
	case RebootNever:
		return "never"
	case RebootWhenNeeded:
		return "when-needed"
	}
	return fmt.Sprintf("Reboot(%d)", int(r))
}

// ParseReboot reads "never" or "when-needed".
func ParseReboot(s string) (Reboot, error) {
	switch s {
	case "never":
		return RebootNever, nil
	case "when-needed":
		return RebootWhenNeeded, nil
	}
	return 0, fmt.Errorf("%w: reboot %q: want never or when-needed", ErrBadValue, s)
}

// ErrBadValue is wrapped by the Parse functions' errors.
var ErrBadValue = errors.New("policy: bad value")

// Policy is what the device's admin allows the agent to do on its own.
type Policy struct {
	Mode Mode
	// SecurityOnly limits the agent to security advisories.
	SecurityOnly bool
	// MinSeverity is the lowest severity of a security advisory acted on.
	// Bug fix and enhancement advisories carry no rating, so it does not
	// apply to them.
	MinSeverity advisory.Severity
	// Exclude holds package name globs (path.Match syntax, already checked
	// with CheckGlob); a matching package is never updated by the agent.
	Exclude []string
	Reboot  Reboot
	// Windows are the maintenance windows. With none, Apply applies at once
	// and the agent never reboots.
	Windows []Window
	// Within, when set, is a second set of windows that must be open too:
	// the server's, when both it and the device's file set windows
	// (Narrow). InWindow needs one window of each set open.
	Within []Window
	// HealthChecks are commands run with sh -c after an update; one that
	// fails rolls the update back.
	HealthChecks []string
	// AllowUpdates are package names updated without an advisory to the
	// newest version the repositories hold (the Raspberry Pi kernel and
	// firmware), under Mode, the windows and Exclude; SecurityOnly and
	// MinSeverity do not apply, as such updates carry no rating.
	AllowUpdates []string
	// InstallonlyLimit is how many instances of an install-only package
	// (a kernel) a cycle leaves installed, as dnf's installonly_limit: 0
	// keeps every one, else at least 2. The device's own; the server's
	// policy does not carry it.
	InstallonlyLimit int
	// Set says which keys the configuration file gave (Narrow).
	Set Fields
}

// CheckGlob reports whether pattern is a well-formed path.Match pattern.
func CheckGlob(pattern string) error {
	if pattern == "" {
		return fmt.Errorf("%w: empty glob", ErrBadValue)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("%w: glob %q: %v", ErrBadValue, pattern, err)
	}
	return nil
}

// DefaultInstallonlyLimit is dnf's default installonly_limit.
const DefaultInstallonlyLimit = 3

// PlainUpdates returns the allow-listed package names no exclude glob
// matches, and those an exclude took out, each with its glob.
func (p *Policy) PlainUpdates() (allowed, excluded []string) {
	for _, n := range p.AllowUpdates {
		if g := p.Excluded(n); g != "" {
			excluded = append(excluded, n+" ("+g+")")
			continue
		}
		allowed = append(allowed, n)
	}
	return allowed, excluded
}

// Excluded returns the first exclude glob that matches the package name, or
// "" when none does.
func (p *Policy) Excluded(name string) string {
	for _, g := range p.Exclude {
		if ok, _ := path.Match(g, name); ok {
			return g
		}
	}
	return ""
}

// InWindow reports whether a maintenance window is open at t. With no
// window configured it is always true: nothing restricts when to apply.
func (p *Policy) InWindow(t time.Time) bool {
	if len(p.Windows) == 0 {
		return true
	}
	return anyContains(p.Windows, t) && (len(p.Within) == 0 || anyContains(p.Within, t))
}

// NextWindow returns the earliest window opening at or after t, or the zero
// time when there is no window.
// With Within set it is the next instant both sets are open.
func (p *Policy) NextWindow(t time.Time) time.Time {
	if len(p.Within) > 0 && len(p.Windows) > 0 {
		return nextBoth(p.Windows, p.Within, t)
	}
	return nextStart(p.Windows, t)
}

// RebootAllowed reports whether the agent may reboot the device at now:
// only with reboot = "when-needed", and only inside a maintenance window
// (without any window it never reboots on its own).
func (p *Policy) RebootAllowed(now time.Time) bool {
	return p.Reboot == RebootWhenNeeded && len(p.Windows) > 0 && p.InWindow(now)
}

// Verb is what to do with an advisory.
type Verb int

// Verbs, from least to most action.
const (
	Skip Verb = iota
	NotifyOnly
	DownloadOnly
	ApplyNow
)

func (v Verb) String() string {
	switch v {
	case Skip:
		return "skip"
	case NotifyOnly:
		return "notify"
	case DownloadOnly:
		return "download"
	case ApplyNow:
		return "apply"
	}
	return fmt.Sprintf("Verb(%d)", int(v))
}

// Action is the decision for one advisory, with the reason in words for the
// log and the report.
type Action struct {
	Verb   Verb
	Reason string
	// Packages are the advisory's packages the verb applies to: those no
	// exclude glob matches.
	Packages []advisory.Package
	// Excluded names the packages left out, each with the glob that matched
	// ("kernel (kernel*)").
	Excluded []string
}

// Decide says what the agent does with an advisory that applies to the
// device, under policy p at now. The checks, in order: security_only, then
// min_severity (security advisories only), then the exclude globs package by
// package, then the mode; mode apply outside every maintenance window only
// notifies, saying when the next window opens.
func Decide(a *advisory.Advisory, p *Policy, now time.Time) Action {
	typ := a.Type
	if typ == "" {
		typ = advisory.TypeFromID(a.ID)
	}
	if p.SecurityOnly && typ != advisory.Security {
		return Action{Verb: Skip, Reason: fmt.Sprintf("type %q is not security and security_only is set", typ)}
	}
	if typ == advisory.Security && a.Severity < p.MinSeverity {
		return Action{Verb: Skip, Reason: fmt.Sprintf("severity %s is below min_severity %s", a.Severity, p.MinSeverity)}
	}
	var act Action
	for _, pkg := range a.Packages {
		if g := p.Excluded(pkg.Name); g != "" {
			act.Excluded = append(act.Excluded, fmt.Sprintf("%s (%s)", pkg.Name, g))
			continue
		}
		act.Packages = append(act.Packages, pkg)
	}
	if len(act.Packages) == 0 && len(act.Excluded) > 0 {
		act.Verb = Skip
		act.Reason = "every package is excluded: " + strings.Join(act.Excluded, ", ")
		return act
	}
	switch p.Mode {
	case Notify:
		act.Verb, act.Reason = NotifyOnly, "mode is notify"
	case Download:
		act.Verb, act.Reason = DownloadOnly, "mode is download"
	case Apply:
		switch {
		case len(p.Windows) == 0:
			act.Verb, act.Reason = ApplyNow, "mode is apply and no maintenance window is set"
		case p.InWindow(now):
			act.Verb, act.Reason = ApplyNow, "mode is apply and a maintenance window is open"
		default:
			act.Verb = NotifyOnly
			if next := p.NextWindow(now); next.IsZero() {
				act.Reason = "outside the maintenance windows; the server's and the device's never open together"
			} else {
				act.Reason = "outside the maintenance windows; the next opens " + next.Format("2006-01-02 15:04 MST")
			}
		}
	default:
		act.Verb, act.Reason = NotifyOnly, fmt.Sprintf("unknown mode %v", p.Mode)
	}
	if len(act.Excluded) > 0 {
		act.Reason += "; excluded " + strings.Join(act.Excluded, ", ")
	}
	return act
}
