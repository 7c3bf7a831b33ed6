package protocol

import "time"

// The audit log (issue 13): every admin action the API takes (imports,
// tokens, enrolment tokens, device labels, revocations and deletions,
// commands, groups, policies, approvals, rollouts, FleetLock releases) and
// every decision the server takes by itself on a rollout, with who, when,
// what and the result. It never holds a secret: what a request carried is
// described by its target and a short detail, never copied.

// PathAudit: GET []AuditEntry (admin), newest first; query limit=N (1 to
// MaxAuditPage, default 100), before=ID (entries older than that id),
// action=NAME.
const PathAudit = PathPrefix + "/audit"

// MaxAuditPage bounds a page of the audit log.
const MaxAuditPage = 1000

// ActorSystem is the actor of what the server decided by itself (a
// rollout paused for its failure rate, a phase started after its soak).
const ActorSystem = "system"

// AuditEntry is one recorded action.
type AuditEntry struct {
	// ID orders the entries; a later entry has a greater id.
	ID int64 `json:"id"`
	// Time is when the action ended.
	Time time.Time `json:"time"`
	// ActorID and Actor are the admin token's id and name (ActorSystem
	// for the server itself); Role is its role.
	ActorID string `json:"actor_id"`
	Actor   string `json:"actor"`
	Role    Role   `json:"role,omitempty"`
	// Action names what was done ("import", "token.create",
	// "device.revoke", "rollout.pause").
	Action string `json:"action"`
	// Target is what it was done to (a device, group, token or rollout
	// id; "" when none).
	Target string `json:"target,omitempty"`
	// Detail says more (the request's query, the rollout's reason), never
	// a secret.
	Detail string `json:"detail,omitempty"`
	// Status is the HTTP status of the answer (0 for the server's own
	// decisions); Error is the error the answer carried, "" on success.
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}
