package update

import (
	"errors"
	"fmt"
)

// Phase is where an update cycle stands. The journal records it before the
// step it names begins, so that a cycle cut short (kill -9, power cut) is
// resumed from the step that may have been half done.
type Phase int

const (
	// Planned: the packages to install and the rollback set are chosen and
	// nothing has been fetched. Next: Downloading, or Failed.
	Planned Phase = iota + 1
	// Downloading: the planned packages and the rollback set are being
	// fetched into the state dir and checked against the repository's size
	// and digest. Next: Verifying, or Failed.
	Downloading
	// Verifying: every downloaded package is checked against the pinned keys
	// and the plan. Next: Preflight, or Failed.
	Verifying
	// Preflight: free space and rpm --test -U of the whole set. Next:
	// Applying, or Failed.
	Preflight
	// Applying: the one rpm -U transaction may be running. Next: HealthCheck
	// (the new versions are installed), Failed (rpm changed nothing), or
	// RollingBack (the database holds a mix, found on resume).
	Applying
	// HealthCheck: the new versions are installed and the health checks run.
	// Next: Committed, or RollingBack.
	HealthCheck
	// RollingBack: the previous versions are being reinstalled with rpm -U
	// --oldpackage. Next: RolledBack, or Failed (the rollback itself failed).
	RollingBack
	// Committed: the new versions are installed and healthy. Final.
	Committed
	// RolledBack: the update was bad and the previous versions are back.
	// Final.
	RolledBack
	// Failed: the cycle stopped; the Error says why and whether the database
	// was left as it was found. Final.
	Failed
)

var phaseNames = map[Phase]string{
	Planned:     "planned",
	Downloading: "downloading",
	Verifying:   "verifying",
	Preflight:   "preflight",
	Applying:    "applying",
	HealthCheck: "health-check",
	RollingBack: "rolling-back",
	Committed:   "committed",
	RolledBack:  "rolled-back",
	Failed:      "failed",
}

// edges are the legal transitions, as the phases' doc comments say.
var edges = map[Phase][]Phase{
	Planned:     {Downloading, Failed},
	Downloading: {Verifying, Failed},
	Verifying:   {Preflight, Failed},
	Preflight:   {Applying, Failed},
	Applying:    {HealthCheck, Failed, RollingBack},
	HealthCheck: {Committed, RollingBack},
	RollingBack: {RolledBack, Failed},
}

func (p Phase) String() string {
	if s, ok := phaseNames[p]; ok {
		return s
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Final reports whether the cycle is over.
func (p Phase) Final() bool { return p == Committed || p == RolledBack || p == Failed }

// MarshalText writes the phase's name, so the journal reads "applying".
func (p Phase) MarshalText() ([]byte, error) {
	if _, ok := phaseNames[p]; !ok {
		return nil, fmt.Errorf("update: unknown phase %d", int(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText reads a phase's name.
func (p *Phase) UnmarshalText(b []byte) error {
	for ph, s := range phaseNames {
		if s == string(b) {
			*p = ph
			return nil
		}
	}
	return fmt.Errorf("update: unknown phase %q", b)
}

// ErrIllegalTransition is returned by transition for an edge the phases'
// doc comments do not allow.
var ErrIllegalTransition = errors.New("update: illegal phase transition")

// transition returns the phase after from when to is a legal next phase.
// Every phase change of a cycle goes through it.
func transition(from, to Phase) (Phase, error) {
	for _, p := range edges[from] {
		if p == to {
			return to, nil
		}
	}
	return from, fmt.Errorf("%w: %s -> %s", ErrIllegalTransition, from, to)
}
