package protocol

import "time"

// FleetLock (https://coreos.github.io/zincati/development/fleetlock/protocol/):
// the reboot lock Zincati, Airlock and rpmfleet agents take before a
// reboot. The server serves it beside the API, outside PathPrefix, as the
// protocol fixes its paths. A request is a POST with the header
// FleetLockHeader: true and a FleetLockRequest body; 200 means done, any
// other status a failure with a FleetLockError body. Locks are recursive
// and owned: the holder taking its slot again gets 200, and only the holder
// (or an admin, or the slot's timeout) frees it.
const (
	PathPreReboot   = "/v1/pre-reboot"
	PathSteadyState = "/v1/steady-state"
	// FleetLockHeader must be "true" on every FleetLock request.
	FleetLockHeader = "fleet-lock-protocol"

	// PathFleetLock: GET []FleetLockSlot (read-only); DELETE
	// PathFleetLock+"/"+GROUP+"/"+ID releases a slot (operator), answered
	// 204.
	PathFleetLock = PathPrefix + "/fleetlock"
)

// FleetLockRequest is the body of a FleetLock request.
type FleetLockRequest struct {
	ClientParams FleetLockClient `json:"client_params"`
}

// FleetLockClient names the client and its reboot group.
type FleetLockClient struct {
	// ID identifies the holder, case-sensitive; for an rpmfleet device,
	// its name or its id.
	ID string `json:"id"`
	// Group is the reboot group, ^[a-zA-Z0-9.-]+$, at most
	// MaxFleetLockGroup bytes (ValidFleetLockGroup).
	Group string `json:"group"`
}

// MaxFleetLockGroup bounds a reboot group's name.
const MaxFleetLockGroup = 64

// ValidFleetLockGroup reports whether g is a reboot group name the
// protocol allows: ^[a-zA-Z0-9.-]+$, at most MaxFleetLockGroup bytes.
func ValidFleetLockGroup(g string) bool {
	if g == "" || len(g) > MaxFleetLockGroup {
		return false
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// FleetLockError is the body of a failed FleetLock request. Kind is one of
// the FleetLock* kinds below (a small set, as the protocol asks).
type FleetLockError struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// FleetLock error kinds.
const (
	FleetLockMissingHeader = "missing_fleet_lock_header"
	FleetLockBadRequest    = "bad_request"
	FleetLockUnauthorized  = "unauthorized"
	FleetLockForbidden     = "forbidden"
	FleetLockFull          = "failed_lock_semaphore_full"
	FleetLockInternal      = "internal_error"
)

// FleetLockSlot is a held slot.
type FleetLockSlot struct {
	Group string    `json:"group"`
	ID    string    `json:"id"`
	Taken time.Time `json:"taken"`
	// Expires is when the slot frees itself if its holder never says it
	// is steady again.
	Expires time.Time `json:"expires"`
}
