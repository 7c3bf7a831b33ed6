package store

import (
	"context"
	"errors"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Fleet operations (issue 13): labels set by admins, groups (named label
// selectors) with their policies, advisories approved by hand, rollouts,
// the audit log and the FleetLock reboot slots. What the store keeps of
// them is plain state; what it means (which policy a device gets, when a
// rollout's phase moves) is server/internal/fleet's.

// ErrConflict is a change refused because the row changed meanwhile (a
// rollout moved on since it was read) or exists already.
var ErrConflict = errors.New("store: conflict")

// Group is a stored group.
type Group struct {
	Name     string
	Selector map[string]string
	// Policy is nil when none is attached.
	Policy  *protocol.Policy
	Created time.Time
	Updated time.Time
}

// AuditFilter pages the audit log, newest first.
type AuditFilter struct {
	// Before keeps entries with a smaller id; 0 keeps all.
	Before int64
	// Limit bounds the entries returned (at least 1).
	Limit int
	// Action keeps entries of that action only, when set.
	Action string
}

// Rollout is a stored rollout. Spec holds what was asked (Advisories,
// Phases, Soak, MaxFailureRate, Group); the rest is where it stands.
type Rollout struct {
	ID           string
	Group        string
	Advisories   []string
	Phases       []string
	Soak         time.Duration
	MaxFailure   float64
	State        protocol.RolloutState
	Phase        int
	Total        int
	PhaseStarted time.Time
	Reason       string
	CreatedBy    string
	Created      time.Time
	Updated      time.Time
}

// RolloutMember is a device a rollout released its advisories to.
type RolloutMember struct {
	DeviceID string
	Name     string
	Phase    int
	Added    time.Time
}

// DeviceRef names a device.
type DeviceRef struct {
	ID   string
	Name string
}

// CycleRecord is one update cycle a device reported, with when the
// server received its report.
type CycleRecord struct {
	DeviceID string
	Received time.Time
	Cycle    protocol.CycleResult
}

// PlanGate is what decides which advisories of a device's plan it gets:
// its labels, every group, the advisories approved by hand, when the
// plan's advisories were issued, and the rollouts holding any of them.
type PlanGate struct {
	Labels   map[string]string
	Groups   []Group
	Approved map[string]bool
	Issued   map[string]time.Time
	// Rollouts are newest first.
	Rollouts []GateRollout
}

// GateRollout is a rollout (in any state) that takes some of a plan's
// advisories.
type GateRollout struct {
	ID         string
	Group      string
	State      protocol.RolloutState
	Advisories []string
	// Released says the rollout released its advisories to the device.
	Released bool
}

// FleetOps keeps what issue 13's fleet operations need.
type FleetOps interface {
	// SetDeviceLabels replaces the labels of the device called name;
	// ErrNotFound for an unknown name.
	SetDeviceLabels(ctx context.Context, name string, labels map[string]string) (deviceID string, err error)

	// PutGroup creates the group or replaces its selector, keeping its
	// policy.
	PutGroup(ctx context.Context, g Group) error
	// SetGroupPolicy attaches p (nil detaches); ErrNotFound for an
	// unknown group.
	SetGroupPolicy(ctx context.Context, name string, p *protocol.Policy, at time.Time) error
	// Group returns one group or ErrNotFound; Groups every group by name.
	Group(ctx context.Context, name string) (Group, error)
	Groups(ctx context.Context) ([]Group, error)
	// DeleteGroup deletes a group; ErrNotFound for an unknown one, and
	// ErrConflict while a running or paused rollout goes to it.
	DeleteGroup(ctx context.Context, name string) error

	// AdvisoriesFor is Advisories with the counts taken over the devices
	// carrying every label of labels only.
	AdvisoriesFor(ctx context.Context, min advisory.Severity, labels map[string]string) ([]protocol.AdvisorySummary, error)
	// Exposed lists the devices carrying every label of labels that are
	// exposed (affected or failed) to any of the advisories, by name.
	Exposed(ctx context.Context, labels map[string]string, advisories []string) ([]DeviceRef, error)

	// Approve approves an advisory by hand (again: keeps the first);
	// Unapprove withdraws it (ErrNotFound when it was not approved).
	Approve(ctx context.Context, a protocol.Approval) error
	Unapprove(ctx context.Context, advisoryID string) error
	Approvals(ctx context.Context) ([]protocol.Approval, error)

	// PlanGate gathers what gates the plan of the device with id
	// deviceID, whose plan holds advisories.
	PlanGate(ctx context.Context, deviceID string, advisories []string) (PlanGate, error)

	// CreateRollout stores a new rollout and the devices of its first
	// phase.
	CreateRollout(ctx context.Context, r Rollout, first []string) error
	// Rollout returns one rollout or ErrNotFound; Rollouts every rollout,
	// newest first, or only those in the given states.
	Rollout(ctx context.Context, id string) (Rollout, error)
	Rollouts(ctx context.Context, states ...protocol.RolloutState) ([]Rollout, error)
	// UpdateRollout writes r's state, phase, phase start and reason, and
	// adds the devices add to r.Phase, in one transaction, if the stored
	// rollout was last updated at prev; ErrConflict otherwise.
	UpdateRollout(ctx context.Context, r Rollout, prev time.Time, add []string) error
	// RolloutMembers lists the devices a rollout released to, by phase
	// then name.
	RolloutMembers(ctx context.Context, id string) ([]RolloutMember, error)
	// RolloutsReaching returns the ids of the rollouts that released
	// their advisories to the device with id deviceID (the plan's gate
	// for allow-listed updates, read per plan: by the device's index).
	RolloutsReaching(ctx context.Context, deviceID string) (map[string]bool, error)
	// Cycles returns the cycles the devices reported in reports received
	// at or after since, oldest first.
	Cycles(ctx context.Context, deviceIDs []string, since time.Time) ([]CycleRecord, error)

	// AddAudit appends an entry (its ID is assigned); Audit reads a page.
	AddAudit(ctx context.Context, e protocol.AuditEntry) error
	Audit(ctx context.Context, f AuditFilter) ([]protocol.AuditEntry, error)

	// LockSlot takes a FleetLock slot of group for holder, first freeing
	// the group's slots expired at now: true when holder holds one then
	// (already held: its expiry is renewed), false when all slots are
	// held by others.
	LockSlot(ctx context.Context, group, holder string, slots int, now, expires time.Time) (bool, error)
	// UnlockSlot frees holder's slot of group; false when it held none.
	UnlockSlot(ctx context.Context, group, holder string) (bool, error)
	// Slots lists the slots held and not expired at now.
	Slots(ctx context.Context, now time.Time) ([]protocol.FleetLockSlot, error)
}
