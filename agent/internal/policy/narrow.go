package policy

import (
	"fmt"
	"slices"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Fields is a set of the [policy] keys a configuration file set. A key the
// file leaves out does not narrow the server's policy (Narrow): the
// built-in default (notify, security only) would otherwise narrow every
// group policy to nothing on a device whose file says nothing.
type Fields uint8

// The [policy] keys Narrow weighs by presence. Exclude and windows need
// no flag: an empty list narrows nothing.
const (
	SetMode Fields = 1 << iota
	SetSecurityOnly
	SetMinSeverity
	SetReboot
	// SetAllowUpdates: the file gave allow_updates, even empty (which
	// narrows the server's list to nothing).
	SetAllowUpdates
)

// maxIntersectSteps bounds the search for the next opening of two window
// sets that must both be open: each step passes one opening of either set,
// and 16 + 16 windows open at most 224 times a week, so this looks about
// four weeks ahead.
const maxIntersectSteps = 1000

// FromServer reads the policy of a signed plan into the agent's terms. It
// refuses a policy of a later version than this agent knows
// (protocol.PolicyVersion) or one with a value it cannot read, naming the
// field; the caller then must not assume the server allows anything.
func FromServer(sp *protocol.Policy) (Policy, error) {
	var p Policy
	if sp.Version > protocol.PolicyVersion {
		return p, fmt.Errorf("%w: policy.version %d: this agent reads version %d", ErrBadValue, sp.Version, protocol.PolicyVersion)
	}
	m, err := ParseMode(sp.Mode)
	if err != nil {
		return p, fmt.Errorf("policy.mode: %w", err)
	}
	p.Mode = m
	p.SecurityOnly = sp.SecurityOnly
	if sp.MinSeverity != "" {
		sev, err := advisory.ParseSeverity(sp.MinSeverity)
		if err != nil {
			return p, fmt.Errorf("%w: policy.min_severity %q", ErrBadValue, sp.MinSeverity)
		}
		p.MinSeverity = sev
	}
	for i, g := range sp.Exclude {
		if err := CheckGlob(g); err != nil {
			return p, fmt.Errorf("policy.exclude[%d]: %w", i, err)
		}
		p.Exclude = append(p.Exclude, g)
	}
	p.Reboot = RebootNever
	if sp.Reboot != "" {
		if p.Reboot, err = ParseReboot(sp.Reboot); err != nil {
			return p, fmt.Errorf("policy.reboot: %w", err)
		}
	}
	for i, n := range sp.AllowUpdates {
		if !protocol.ValidPackageName(n) {
			return p, fmt.Errorf("%w: policy.allow_updates[%d] %q: not a package name", ErrBadValue, i, n)
		}
		p.AllowUpdates = append(p.AllowUpdates, n)
	}
	for i, sw := range sp.Windows {
		w, err := serverWindow(sw)
		if err != nil {
			return p, fmt.Errorf("policy.windows[%d]: %w", i, err)
		}
		p.Windows = append(p.Windows, w)
	}
	return p, nil
}

func serverWindow(sw protocol.PolicyWindow) (Window, error) {
	var w Window
	var err error
	if w.Days, err = ParseDays(sw.Days); err != nil {
		return w, err
	}
	if w.Start, err = ParseClock(sw.Start); err != nil {
		return w, err
	}
	w.Length, err = time.ParseDuration(sw.Length)
	if err != nil || w.Length <= 0 || w.Length > MaxWindowLength {
		return w, fmt.Errorf("%w: length %q: want more than 0 and at most %s", ErrBadValue, sw.Length, MaxWindowLength)
	}
	if sw.Timezone == "" || sw.Timezone == "Local" {
		return w, fmt.Errorf("%w: timezone %q: want an IANA zone", ErrBadValue, sw.Timezone)
	}
	if w.Location, err = time.LoadLocation(sw.Timezone); err != nil {
		return w, fmt.Errorf("%w: timezone %q: %v", ErrBadValue, sw.Timezone, err)
	}
	return w, nil
}

// Narrow is the policy the agent follows when the server's plan carries a
// policy: the device's own file may only narrow the server's, never widen
// it. For each key the file sets: the lesser mode (notify < download <
// apply), security only if either says so, the higher minimum severity,
// reboot never if either says never. Excludes are the union of both lists.
// Windows are the intersection: with windows on both sides the agent acts
// only while a server window AND a local window are open; with windows on
// one side only, those. Allow-listed updates are the server's list, or,
// when the file sets allow_updates, only the names both lists hold: a
// device can refuse a plain update, never add one. Health checks and the
// install-only limit are the device's alone.
func Narrow(server, local Policy) Policy {
	out := server
	out.HealthChecks = local.HealthChecks
	out.InstallonlyLimit = local.InstallonlyLimit
	out.AllowUpdates = slices.Clone(server.AllowUpdates)
	if local.Set&SetAllowUpdates != 0 {
		out.AllowUpdates = slices.DeleteFunc(out.AllowUpdates, func(n string) bool { return !slices.Contains(local.AllowUpdates, n) })
	}
	if local.Set&SetMode != 0 {
		out.Mode = min(server.Mode, local.Mode)
	}
	if local.Set&SetSecurityOnly != 0 {
		out.SecurityOnly = server.SecurityOnly || local.SecurityOnly
	}
	if local.Set&SetMinSeverity != 0 {
		out.MinSeverity = max(server.MinSeverity, local.MinSeverity)
	}
	if local.Set&SetReboot != 0 {
		out.Reboot = min(server.Reboot, local.Reboot)
	}
	out.Exclude = slices.Clone(server.Exclude)
	for _, g := range local.Exclude {
		if !slices.Contains(out.Exclude, g) {
			out.Exclude = append(out.Exclude, g)
		}
	}
	switch {
	case len(local.Windows) == 0:
		out.Windows = slices.Clone(server.Windows)
	case len(server.Windows) == 0:
		out.Windows = slices.Clone(local.Windows)
	default:
		out.Windows = slices.Clone(local.Windows)
		out.Within = slices.Clone(server.Windows)
	}
	out.Set = SetMode | SetSecurityOnly | SetMinSeverity | SetReboot | SetAllowUpdates
	return out
}

func anyContains(ws []Window, t time.Time) bool {
	for i := range ws {
		if ws[i].Contains(t) {
			return true
		}
	}
	return false
}

func nextStart(ws []Window, t time.Time) time.Time {
	var next time.Time
	for i := range ws {
		n := ws[i].NextStart(t)
		if !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

// nextBoth returns the earliest instant at or after t where a window of a
// and one of b are open together, an opening of one of them (two
// intervals overlap from the later of their starts), or the zero time when
// none comes within maxIntersectSteps openings.
func nextBoth(a, b []Window, t time.Time) time.Time {
	cur := t
	for range maxIntersectSteps {
		na, nb := nextStart(a, cur), nextStart(b, cur)
		c := na
		if c.IsZero() || !nb.IsZero() && nb.Before(c) {
			c = nb
		}
		if c.IsZero() {
			return time.Time{}
		}
		if anyContains(a, c) && anyContains(b, c) {
			return c
		}
		cur = c.Add(time.Nanosecond)
	}
	return time.Time{}
}
