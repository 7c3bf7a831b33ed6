package protocol

import "time"

// Rollouts (issue 13): an advisory, or every security advisory pending in
// a group, taken to the group's devices in phases. Each phase releases the
// advisories to more of the group's exposed devices (a canary count or
// percentage first, then cumulative percentages); the next phase starts
// only once every device of the current one has a result (its cycle
// applied or failed, or it is no longer exposed), the soak time has passed
// since the phase started, and the phase's failure rate (failed, rolled
// back or abandoned cycles over its devices) is at most MaxFailureRate.
// Above it the rollout pauses by itself, listing the failing devices and
// their cycle errors. While a rollout is running or paused, a device of
// its group gets its advisories in its plan only once a phase released
// them to it; an aborted rollout keeps them from the devices it had not
// reached. A completed rollout gates nothing.

// Paths of rollouts.
const (
	// PathRollouts: GET []Rollout (read-only); POST RolloutRequest
	// (operator), answered with the Rollout.
	PathRollouts = PathPrefix + "/rollouts"
	// PathRollout: GET PathRollout+ID gives a Rollout (read-only); POST
	// PathRollout+ID+"/"+ACTION (operator), ACTION one of RolloutPause,
	// RolloutResume, RolloutAbort, RolloutApprove, answered with the
	// Rollout.
	PathRollout = PathPrefix + "/rollout/"
)

// Rollout actions.
const (
	// RolloutPause holds the rollout where it is.
	RolloutPause = "pause"
	// RolloutResume resumes a paused rollout: its current phase is judged
	// again from the cycles reported after the resume, and its soak starts
	// again.
	RolloutResume = "resume"
	// RolloutAbort ends it: its advisories stay away from the devices it
	// had not reached.
	RolloutAbort = "abort"
	// RolloutApprove starts the next phase now, whatever the gate says.
	RolloutApprove = "approve"
)

// RolloutState is where a rollout stands.
type RolloutState string

// Rollout states.
const (
	RolloutRunning   RolloutState = "running"
	RolloutPaused    RolloutState = "paused"
	RolloutAborted   RolloutState = "aborted"
	RolloutCompleted RolloutState = "completed"
)

// AllPendingSecurity, as RolloutRequest.Advisory, takes every security
// advisory that affects a device of the group when the rollout is created.
const AllPendingSecurity = "all-security"

// Bounds of a rollout request.
const (
	MaxRolloutPhases     = 20
	MaxRolloutAdvisories = 1000
	// DefaultRolloutSoak is the soak time when a request gives none.
	DefaultRolloutSoak = time.Hour
)

// RolloutRequest creates a rollout.
type RolloutRequest struct {
	// Advisory is an advisory id, or AllPendingSecurity.
	Advisory string `json:"advisory"`
	// Group is the group the rollout goes to.
	Group string `json:"group"`
	// Phases are the cumulative share of the group's exposed devices each
	// phase reaches: the first a count ("1") or a percentage ("10%"),
	// the others percentages, rising; the last is made 100% when it is
	// not. Empty means ["1", "10%", "50%", "100%"].
	Phases []string `json:"phases,omitempty"`
	// Soak is how long a phase runs before the next may start (a Go
	// duration, "30m"); "" means DefaultRolloutSoak.
	Soak string `json:"soak,omitempty"`
	// MaxFailureRate is the failure rate (0 to 1) above which the rollout
	// pauses by itself; 0 pauses on the first failure.
	MaxFailureRate float64 `json:"max_failure_rate,omitempty"`
}

// Rollout is a rollout and where it stands.
type Rollout struct {
	ID             string       `json:"id"`
	Group          string       `json:"group"`
	Advisories     []string     `json:"advisories"`
	Phases         []string     `json:"phases"`
	Soak           string       `json:"soak"`
	MaxFailureRate float64      `json:"max_failure_rate"`
	State          RolloutState `json:"state"`
	// Phase is the current phase, 0-based; Total the devices of the group
	// exposed to the advisories when the rollout was created, which the
	// phases' shares count.
	Phase int `json:"phase"`
	Total int `json:"total"`
	// PhaseStarted is when the current phase started (or was resumed).
	PhaseStarted time.Time `json:"phase_started"`
	// Reason says why the rollout is paused, aborted or completed.
	Reason string `json:"reason,omitempty"`
	// CreatedBy is the admin token's name that created it.
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	// Devices are the devices released so far, by phase then name.
	Devices []RolloutDevice `json:"devices,omitempty"`
	// GroupDeleted says the group of an ended rollout was deleted since:
	// where its devices stand is no longer judged, and Devices is empty.
	GroupDeleted bool `json:"group_deleted,omitempty"`
}

// RolloutDevice is one device a rollout released its advisories to.
type RolloutDevice struct {
	Device string `json:"device"`
	Phase  int    `json:"phase"`
	// Result is "pending" (no cycle yet), "applied", "failed" (a cycle
	// failed, rolled back or was abandoned) or "patched" (no longer
	// exposed, whatever did it).
	Result string `json:"result"`
	// Error is the failed cycle's error.
	Error string `json:"error,omitempty"`
}

// Rollout device results.
const (
	ResultPending = "pending"
	ResultApplied = "applied"
	ResultFailed  = "failed"
	ResultPatched = "patched"
)
