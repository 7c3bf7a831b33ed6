package protocol

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Groups, labels and the server-side policy (issue 13). A group is a named
// label selector: a device belongs to every group whose selector's labels
// it all carries. A group may hold a Policy; a device's policy is that of
// the policy-holding group it belongs to whose selector has the most
// labels (the most specific), ties broken by the group name, and none when
// no such group selects it. The policy travels inside the device's signed
// plan (Plan.Policy); an agent's own [policy] may only narrow it.

// Paths of the fleet operations.
const (
	// PathGroups: GET []Group (read-only).
	PathGroups = PathPrefix + "/groups"
	// PathGroup: GET PathGroup+NAME gives a Group (read-only); PUT
	// PathGroup+NAME a GroupRequest creates or replaces it (admin);
	// DELETE PathGroup+NAME deletes it (admin), answered 204. PUT
	// PathGroup+NAME+PathPolicySuffix a Policy attaches it (admin);
	// DELETE of that path detaches it.
	PathGroup = PathPrefix + "/group/"
	// PathPolicySuffix follows PathGroup+NAME.
	PathPolicySuffix = "/policy"
	// PathLabelsSuffix follows PathDevice+NAME: PUT a LabelsRequest
	// replaces the device's labels (operator), answered with the
	// DeviceSummary.
	PathLabelsSuffix = "/labels"
	// PathApprovals: GET []Approval (read-only); POST an ApprovalRequest
	// approves an advisory at once whatever approve-after-days says
	// (operator); DELETE PathApprovals+"/"+ID withdraws it (operator).
	PathApprovals = PathPrefix + "/approvals"
)

// Selection query parameters, taken by GET PathDevices, PathCVE+ID,
// PathAdvisories and PathSummary: label=k=v (repeatable; every label must
// match) and group=NAME (the group's selector; with labels, both must
// match). An unknown group is 404.
const (
	QueryLabel = "label"
	QueryGroup = "group"
)

// MaxGroups bounds how many groups the server keeps, and MaxSelectorLabels
// the labels of one selector (ValidateLabels' MaxLabels).
const MaxGroups = 1000

// Group is a named label selector, with the policy attached to it.
type Group struct {
	// Name is the group's name, by the device name's rule.
	Name string `json:"name"`
	// Selector are the labels a device must all carry to belong to the
	// group; an empty selector selects every device.
	Selector map[string]string `json:"selector"`
	// Policy is the group's policy; nil when none is attached.
	Policy *Policy `json:"policy,omitempty"`
	// Devices is how many devices the group selects now.
	Devices int `json:"devices"`
	// Created and Updated say when the group was made and last changed.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// GroupRequest creates or replaces a group's selector.
type GroupRequest struct {
	// Selector: see Group.Selector; held to ValidateLabels.
	Selector map[string]string `json:"selector"`
}

// LabelsRequest replaces a device's labels.
type LabelsRequest struct {
	// Labels: held to ValidateLabels.
	Labels map[string]string `json:"labels"`
}

// Approval is an advisory approved by hand: it goes out at once to every
// group whatever its approve-after-days say (rollouts still gate it).
type Approval struct {
	Advisory string    `json:"advisory"`
	Approved time.Time `json:"approved"`
	// By is the name of the admin token that approved it.
	By string `json:"by"`
}

// ApprovalRequest approves an advisory.
type ApprovalRequest struct {
	Advisory string `json:"advisory"`
}

// PolicyVersion is the version of Policy a server writes. An agent reads
// a policy of a version it knows; one of a later version it treats as its
// own local policy alone would (no narrowing by the server can be
// assumed), and says so in its log.
//
//   - 1: 2026-12-05: mode, security only, minimum severity, excludes,
//     maintenance windows with an IANA zone, reboot, approve-after-days.
//     Later the same day, additively: allow_updates. It stays version 1
//     on purpose: an agent that does not know the field ignores it and
//     makes no plain update, which is narrower, while a version 2 would
//     make such an agent drop the whole group policy for its own file.
const PolicyVersion = 1

// Policy modes and reboot settings, as the agent's [policy] spells them.
const (
	PolicyNotify   = "notify"
	PolicyDownload = "download"
	PolicyApply    = "apply"

	RebootNever      = "never"
	RebootWhenNeeded = "when-needed"
)

// Bounds of a policy.
const (
	// MaxPolicyExcludes bounds Policy.Exclude, MaxPolicyWindows
	// Policy.Windows.
	MaxPolicyExcludes = 64
	MaxPolicyWindows  = 16
	// MaxPolicyAllowUpdates bounds Policy.AllowUpdates.
	MaxPolicyAllowUpdates = 64
	// MaxApproveAfterDays bounds each approve-after-days value: a year.
	MaxApproveAfterDays = 366
	// MaxWindowLength bounds a window, as the agent's does: a week would
	// always be open.
	MaxWindowLength = 7 * 24 * time.Hour
)

// Policy is a group's policy: what its devices do with the advisories of
// their plans. The server itself applies SecurityOnly, MinSeverity and
// ApproveAfterDays when it builds a plan (what they leave out is not in
// the plan); Mode, Exclude, Windows and Reboot travel in the plan for the
// agent, whose own [policy] may narrow them (a stricter mode, more
// excludes, narrower windows) but never widen them.
type Policy struct {
	// Version is PolicyVersion when the server wrote it.
	Version int `json:"version"`
	// Mode is notify, download or apply.
	Mode string `json:"mode"`
	// SecurityOnly keeps only security advisories.
	SecurityOnly bool `json:"security_only,omitempty"`
	// MinSeverity keeps only advisories at least this severe ("None",
	// "Low", "Moderate", "Important", "Critical"); "" keeps all.
	MinSeverity string `json:"min_severity,omitempty"`
	// Exclude are package name globs (path.Match) never to update.
	Exclude []string `json:"exclude,omitempty"`
	// Windows are the maintenance windows; none means always.
	Windows []PolicyWindow `json:"windows,omitempty"`
	// Reboot is never or when-needed (inside a window).
	Reboot string `json:"reboot,omitempty"`
	// ApproveAfterDays gives, per severity name, how many days after an
	// advisory was issued it goes out by itself, as an AWS patch baseline
	// does ({"Critical": 0, "Important": 3, "Moderate": 7}). An advisory
	// of a severity not listed goes out only when approved by hand; an
	// empty map approves everything at once.
	ApproveAfterDays map[string]int `json:"approve_after_days,omitempty"`
	// AllowUpdates are package names (exact, no globs) updated without an
	// advisory: the newest version the device's repositories hold, through
	// the same verified cycle (signature, checksum, rollback) and under
	// the same mode, windows and excludes. For packages no advisory names,
	// such as the Raspberry Pi kernel and firmware
	// ("raspberrypi2-kernel4", "raspberrypi2-firmware"). Security only
	// and minimum severity do not apply to them: they carry no severity.
	// The server leaves the list out of the plan of a device that a
	// running or paused rollout to one of its groups has not reached.
	AllowUpdates []string `json:"allow_updates,omitempty"`
	// Group is the group the policy came from, in a plan; ignored when a
	// policy is attached.
	Group string `json:"group,omitempty"`
}

// ValidPackageName reports whether s can be an rpm package name as
// AllowUpdates holds it: letters, digits and ._+- , not starting with a
// dot or a dash, at most MaxPackageFieldLen bytes. Glob characters are
// not names.
func ValidPackageName(s string) bool {
	if s == "" || len(s) > MaxPackageFieldLen || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '+', c == '-':
		default:
			return false
		}
	}
	return true
}

// PolicyWindow is a maintenance window in the agent's [[policy.window]]
// syntax: it opens on each of Days at Start, wall-clock time in Timezone,
// and stays open for Length of real time (the agent's rule across a
// daylight saving change: a skipped Start opens at the instant it would
// have been, a repeated one at the first).
type PolicyWindow struct {
	// Days are day names ("mon" or "monday") or ranges ("mon-fri",
	// "fri-mon").
	Days []string `json:"days"`
	// Start is "HH:MM", 00:00 to 23:59.
	Start string `json:"start"`
	// Length is a Go duration ("3h", "90m"), more than 0 and at most
	// MaxWindowLength.
	Length string `json:"length"`
	// Timezone is an IANA zone name ("Europe/Berlin"); required, as the
	// server cannot know a device's own zone.
	Timezone string `json:"timezone"`
}

var severityNames = []string{"None", "Low", "Moderate", "Important", "Critical"}

// SeverityRank is a severity name's rank (None 0 ... Critical 4), any
// case; false for an unknown name.
func SeverityRank(name string) (int, bool) {
	for i, n := range severityNames {
		if strings.EqualFold(n, name) {
			return i, true
		}
	}
	return 0, false
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat", "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

func validDay(s string) bool {
	return slices.Contains(dayNames, strings.ToLower(strings.TrimSpace(s)))
}

// Validate checks a policy and fills in Version; every refusal is a
// *FieldError naming the field ("policy.windows[1].timezone").
func (p *Policy) Validate() error {
	const f = "policy"
	if p.Version != 0 && p.Version != PolicyVersion {
		return invalid(f+".version", "%d: this server writes version %d", p.Version, PolicyVersion)
	}
	p.Version = PolicyVersion
	switch p.Mode {
	case PolicyNotify, PolicyDownload, PolicyApply:
	default:
		return invalid(f+".mode", "%s: want notify, download or apply", quote(p.Mode))
	}
	if p.MinSeverity != "" {
		r, ok := SeverityRank(p.MinSeverity)
		if !ok {
			return invalid(f+".min_severity", "%s: want None, Low, Moderate, Important or Critical", quote(p.MinSeverity))
		}
		p.MinSeverity = severityNames[r]
	}
	if len(p.Exclude) > MaxPolicyExcludes {
		return invalid(f+".exclude", "%d globs, at most %d allowed", len(p.Exclude), MaxPolicyExcludes)
	}
	for i, g := range p.Exclude {
		field := fmt.Sprintf("%s.exclude[%d]", f, i)
		if g == "" {
			return invalid(field, "empty")
		}
		if err := ValidateText(field, g, MaxPackageFieldLen); err != nil {
			return err
		}
		if _, err := pathMatch(g); err != nil {
			return invalid(field, "%s: %v", quote(g), err)
		}
	}
	if len(p.AllowUpdates) > MaxPolicyAllowUpdates {
		return invalid(f+".allow_updates", "%d names, at most %d allowed", len(p.AllowUpdates), MaxPolicyAllowUpdates)
	}
	for i, n := range p.AllowUpdates {
		if !ValidPackageName(n) {
			return invalid(fmt.Sprintf("%s.allow_updates[%d]", f, i), "%s: not a package name (letters, digits and ._+- only; no globs)", quote(n))
		}
		if slices.Contains(p.AllowUpdates[:i], n) {
			return invalid(fmt.Sprintf("%s.allow_updates[%d]", f, i), "%s: listed twice", quote(n))
		}
	}
	switch p.Reboot {
	case "":
		p.Reboot = RebootNever
	case RebootNever, RebootWhenNeeded:
	default:
		return invalid(f+".reboot", "%s: want never or when-needed", quote(p.Reboot))
	}
	if len(p.Windows) > MaxPolicyWindows {
		return invalid(f+".windows", "%d windows, at most %d allowed", len(p.Windows), MaxPolicyWindows)
	}
	for i := range p.Windows {
		if err := p.Windows[i].validate(fmt.Sprintf("%s.windows[%d]", f, i)); err != nil {
			return err
		}
	}
	for k, v := range p.ApproveAfterDays {
		r, ok := SeverityRank(k)
		if !ok {
			return invalid(f+".approve_after_days", "%s: not a severity; want None, Low, Moderate, Important or Critical", quote(k))
		}
		if v < 0 || v > MaxApproveAfterDays {
			return invalid(f+".approve_after_days."+severityNames[r], "%d: want 0 to %d days", v, MaxApproveAfterDays)
		}
		if k != severityNames[r] {
			delete(p.ApproveAfterDays, k)
			p.ApproveAfterDays[severityNames[r]] = v
		}
	}
	p.Group = ""
	return nil
}

// pathMatch checks a glob's syntax: path.Match reads the whole pattern
// and reports a malformed one whatever the name.
func pathMatch(glob string) (bool, error) { return path.Match(glob, "x") }

func (w *PolicyWindow) validate(field string) error {
	if len(w.Days) == 0 {
		return invalid(field+".days", "no days: the window would never open")
	}
	for _, d := range w.Days {
		from, to, isRange := strings.Cut(d, "-")
		if !validDay(from) || isRange && !validDay(to) {
			return invalid(field+".days", "%s: want mon, tue, wed, thu, fri, sat, sun or a range such as mon-fri", quote(d))
		}
	}
	hh, mm, ok := strings.Cut(w.Start, ":")
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if !ok || len(hh) != 2 || len(mm) != 2 || err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 {
		return invalid(field+".start", "%s: want HH:MM from 00:00 to 23:59", quote(w.Start))
	}
	l, err := time.ParseDuration(w.Length)
	if err != nil || l <= 0 || l > MaxWindowLength {
		return invalid(field+".length", "%s: want a duration more than 0 and at most %s", quote(w.Length), MaxWindowLength)
	}
	if w.Timezone == "" {
		return invalid(field+".timezone", "empty: name an IANA time zone such as Europe/Berlin")
	}
	if _, err := time.LoadLocation(w.Timezone); err != nil || w.Timezone == "Local" {
		return invalid(field+".timezone", "%s: not an IANA time zone such as Europe/Berlin", quote(w.Timezone))
	}
	return nil
}
