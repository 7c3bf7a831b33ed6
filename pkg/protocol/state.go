package protocol

import "time"

// The device's retained state (DeviceStateTopic): what its agent is doing,
// published by rpmfleet-agent run whenever something a reader sees there
// changes, and read by dashboards (Home Assistant's among them) and the
// fleet's operators. It is a wire format of its own, versioned apart from
// the HTTP API.

// StateVersion is the version of DeviceState's layout. It goes up only when
// a field changes meaning or goes away; new fields and new states are added
// under the same version, so a reader ignores what it does not know.
//
//   - 1: 2026-12-05: the layout agents have published since the daemon
//     came (issue 5), now with its version.
const StateVersion = 1

// AgentState is what the agent is doing, DeviceState.State.
type AgentState string

// Agent states.
const (
	// StateStarting: the daemon has not finished its first steps.
	StateStarting AgentState = "starting"
	// StateIdle: waiting for a push, a poll or a window.
	StateIdle AgentState = "idle"
	// StateChecking: fetching the plan; systemd's STATUS shows it, the
	// retained state shows it as StateIdle, since it lasts one round trip.
	StateChecking AgentState = "checking"
	// StateDownloading: fetching and verifying packages ahead of an apply
	// (policy mode download).
	StateDownloading AgentState = "downloading"
	// StateApplying: an update cycle runs; DeviceState.Applying says for
	// what.
	StateApplying AgentState = "applying"
	// StateRebooting: the reboot command ran.
	StateRebooting AgentState = "rebooting"
)

// DeviceState is the payload of the retained state topic.
type DeviceState struct {
	// Version is StateVersion; 0 from an agent before it.
	Version int `json:"version,omitempty"`
	// State is what the agent is doing.
	State AgentState `json:"status"`
	// Applying names the advisories (or the spool bundle) of the running
	// cycle.
	Applying string `json:"applying,omitempty"`
	// LastCheck is when the plan was last fetched (or, standalone,
	// derived); a dashboard tells from it that the device still reaches
	// its server.
	LastCheck time.Time `json:"last_check,omitzero"`
	// NextPoll is when the next plan fetch is due.
	NextPoll time.Time `json:"next_poll,omitzero"`
	// Pending are the plan's advisories not being applied, with why.
	Pending []PendingAdvisory `json:"pending_advisories,omitempty"`
	// Queued is how many reports wait for delivery.
	Queued int `json:"queued_reports"`
	// Notices counts the signed messages accepted and refused, by reason.
	Notices NoticeStats `json:"notices"`
	// LastCycle is the newest update cycle the agent ran or settled.
	LastCycle *CycleSummary `json:"last_cycle,omitempty"`
	// RebootAt is when a needed reboot is scheduled; zero when none is.
	RebootAt time.Time `json:"reboot_at,omitzero"`
	// RebootWait is what a needed reboot waits for; empty when it waits
	// for nothing, or none is needed.
	RebootWait RebootWait `json:"reboot_wait,omitempty"`
	// Reloads and ReloadErrors count configuration reloads, and refusals.
	Reloads      int `json:"config_reloads"`
	ReloadErrors int `json:"config_reload_errors"`
	// SpoolDone and SpoolFailed count the spool bundles handled.
	SpoolDone   int `json:"spool_done,omitempty"`
	SpoolFailed int `json:"spool_failed,omitempty"`
	// MQTT says whether the agent's MQTT link is up.
	MQTT bool `json:"mqtt_connected"`
}

// RebootWait is what a needed reboot waits for, DeviceState.RebootWait.
type RebootWait string

// What a reboot waits for.
const (
	// RebootWaitWindow: the maintenance window that allows it (RebootAt
	// says when it opens).
	RebootWaitWindow RebootWait = "window"
	// RebootWaitSlot: a reboot slot from the FleetLock server, held by
	// other devices of the group (or the server is not reachable).
	RebootWaitSlot RebootWait = "slot"
	// RebootWaitSessions: logged-in users to log out, at most the
	// configured session_wait (RebootAt says until when).
	RebootWaitSessions RebootWait = "sessions"
)

// Pending actions beyond the policy's verbs ("notify", "download",
// "skip"), PendingAdvisory.Action.
const (
	// ActionRefused: an apply command forced the advisory, but the policy
	// excludes every package of it.
	ActionRefused = "refused"
)

// PendingAdvisory is a plan's advisory the agent's policy holds back.
type PendingAdvisory struct {
	// ID is the advisory's id.
	ID string `json:"id"`
	// Action is what the agent does with it instead: "notify",
	// "download" or ActionRefused.
	Action string `json:"action"`
	// Reason says why, in words.
	Reason string `json:"reason"`
	// Excluded: a package of it is excluded by the policy, so no cycle
	// applies it (a cycle applies whole advisories).
	Excluded bool `json:"excluded,omitempty"`
}

// CycleSummary is one update cycle in the state.
type CycleSummary struct {
	// ID is the device's own cycle number, as CycleResult.ID.
	ID int `json:"id"`
	// Phase is the cycle's phase ("committed", "rolled-back", ...).
	Phase string `json:"phase"`
	// Advisories are the advisories the cycle applies.
	Advisories []string `json:"advisories,omitempty"`
	// Error is why the cycle failed.
	Error string `json:"error,omitempty"`
	// Reboot says the cycle needs a reboot to take effect.
	Reboot bool `json:"reboot_needed,omitempty"`
}

// NoticeStats counts the signed messages (pkg/notice) an agent accepted
// and refused, by reason, since it started.
type NoticeStats struct {
	Accepted     uint64 `json:"accepted"`
	Malformed    uint64 `json:"malformed"`
	UnknownKey   uint64 `json:"unknown_key"`
	BadSignature uint64 `json:"bad_signature"`
	WrongKind    uint64 `json:"wrong_kind"`
	WrongDevice  uint64 `json:"wrong_device"`
	Expired      uint64 `json:"expired"`
	NotYetValid  uint64 `json:"not_yet_valid"`
	Replayed     uint64 `json:"replayed"`
	// Repeated counts the last accepted message seen again, which a broker
	// does for a retained message at every reconnect.
	Repeated uint64 `json:"repeated"`
	// Other counts failures that say nothing about the message: the replay
	// guard could not be saved.
	Other uint64 `json:"other"`
}
