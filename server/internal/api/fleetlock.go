package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// FleetLock: the reboot lock of Zincati's protocol
// (https://coreos.github.io/zincati/development/fleetlock/protocol/),
// served at /v1/pre-reboot and /v1/steady-state beside the API.
//
// Threat model. The protocol has no authentication: anyone who can reach
// the server could take every slot of a group and hold the fleet's
// reboots (and so its kernel fixes) until the slots time out, or free a
// slot a rebooting device holds. So by default (FleetLockDevice) a request
// must carry the device credential of an enrolled device as a bearer
// token, and client_params.id must be that device's name or id: a device
// locks and unlocks only for itself. FleetLockOpen serves Zincati or
// Airlock clients that cannot send a credential, for a network where every
// client is trusted; even then an id naming an enrolled device needs that
// device's credential, so an outsider cannot free or hold a device's slot
// under its name. A request is a POST of at most maxFleetLockBody bytes
// with the fleet-lock-protocol: true header (the protocol's guard against
// a redirected request); the reboot group must be "default", a group of
// the [fleetlock] configuration or an rpmfleet group, so an outsider
// cannot make the server keep state for names it invents. A slot is held
// until its holder says it is steady again, an operator releases it, or
// its timeout passes: a device that dies mid-reboot holds its slot until
// one of the last two.

// FleetLock authentication modes.
const (
	FleetLockDevice = "device"
	FleetLockOpen   = "open"
)

// Defaults of FleetLockOptions.
const (
	DefaultFleetLockSlots   = 1
	DefaultFleetLockTimeout = 2 * time.Hour
	maxFleetLockBody        = 4 << 10
	maxFleetLockID          = 128
)

// FleetLockOptions configure the FleetLock endpoints.
type FleetLockOptions struct {
	// Auth is FleetLockDevice (the default) or FleetLockOpen.
	Auth string
	// Slots is how many devices of a group may reboot at once;
	// GroupSlots overrides it per group (and makes the group known).
	Slots      int
	GroupSlots map[string]int
	// Timeout frees a slot whose holder never comes back.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Server) fleetLockOpts() FleetLockOptions {
	o := s.opts.FleetLock
	if o.Auth == "" {
		o.Auth = FleetLockDevice
	}
	if o.Slots <= 0 {
		o.Slots = DefaultFleetLockSlots
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultFleetLockTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func fleetLockError(w http.ResponseWriter, status int, kind, value string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(protocol.FleetLockError{Kind: kind, Value: value})
}

// fleetLockRequest checks a FleetLock request and who sent it; it answers
// and returns false when it refuses it. The holder is the device's name
// when a device sent it.
func (s *Server) fleetLockRequest(w http.ResponseWriter, r *http.Request, o FleetLockOptions) (group, holder string, dev *store.Device, ok bool) {
	if !strings.EqualFold(strings.TrimSpace(r.Header.Get(protocol.FleetLockHeader)), "true") {
		fleetLockError(w, http.StatusBadRequest, protocol.FleetLockMissingHeader, "the fleet-lock-protocol: true header is required")
		return "", "", nil, false
	}
	var req protocol.FleetLockRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFleetLockBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fleetLockError(w, http.StatusRequestEntityTooLarge, protocol.FleetLockBadRequest, fmt.Sprintf("body larger than %d bytes", mbe.Limit))
			return "", "", nil, false
		}
		fleetLockError(w, http.StatusBadRequest, protocol.FleetLockBadRequest, "read body: "+err.Error())
		return "", "", nil, false
	}
	if err := json.Unmarshal(body, &req); err != nil {
		fleetLockError(w, http.StatusBadRequest, protocol.FleetLockBadRequest, "body: not a FleetLock JSON object: "+protocol.Escape(err.Error()))
		return "", "", nil, false
	}
	id, group := req.ClientParams.ID, req.ClientParams.Group
	if id == "" || len(id) > maxFleetLockID {
		fleetLockError(w, http.StatusBadRequest, protocol.FleetLockBadRequest, fmt.Sprintf("client_params.id: must be 1 to %d bytes", maxFleetLockID))
		return "", "", nil, false
	}
	if err := protocol.ValidateText("client_params.id", id, maxFleetLockID); err != nil {
		fleetLockError(w, http.StatusBadRequest, protocol.FleetLockBadRequest, err.Error())
		return "", "", nil, false
	}
	if !protocol.ValidFleetLockGroup(group) {
		fleetLockError(w, http.StatusBadRequest, protocol.FleetLockBadRequest,
			fmt.Sprintf("client_params.group: %s must match ^[a-zA-Z0-9.-]+$ and be at most %d bytes", protocol.Escape(fmt.Sprintf("%q", group)), protocol.MaxFleetLockGroup))
		return "", "", nil, false
	}
	ctx := r.Context()
	// Who sent it.
	if secret, has := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); has && strings.TrimSpace(secret) != "" {
		d, err := s.st.DeviceByCredential(ctx, store.HashSecret(strings.TrimSpace(secret)))
		if errors.Is(err, store.ErrNotFound) {
			fleetLockError(w, http.StatusUnauthorized, protocol.FleetLockUnauthorized, "unknown or revoked device credential")
			return "", "", nil, false
		}
		if err != nil {
			s.log.Error("fleetlock authentication failed", "err", err)
			fleetLockError(w, http.StatusInternalServerError, protocol.FleetLockInternal, "internal error; see the server log")
			return "", "", nil, false
		}
		if id != d.Name && id != d.ID {
			fleetLockError(w, http.StatusForbidden, protocol.FleetLockForbidden, "a device may take or free only its own slot: client_params.id must be its name or id")
			return "", "", nil, false
		}
		if !s.knownGroup(w, r, o, group) {
			return "", "", nil, false
		}
		return group, d.Name, &d, true
	}
	if o.Auth != FleetLockOpen {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rpmfleet"`)
		fleetLockError(w, http.StatusUnauthorized, protocol.FleetLockUnauthorized, "this server requires the device's credential as a bearer token")
		return "", "", nil, false
	}
	if _, err := s.st.Device(ctx, id); err == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rpmfleet"`)
		fleetLockError(w, http.StatusUnauthorized, protocol.FleetLockUnauthorized, "client_params.id names an enrolled device: send its credential")
		return "", "", nil, false
	} else if !errors.Is(err, store.ErrNotFound) {
		s.log.Error("fleetlock device lookup failed", "err", err)
		fleetLockError(w, http.StatusInternalServerError, protocol.FleetLockInternal, "internal error; see the server log")
		return "", "", nil, false
	}
	if !s.knownGroup(w, r, o, group) {
		return "", "", nil, false
	}
	return group, id, nil, true
}

// knownGroup answers 400 and returns false for a reboot group that is not
// "default", configured or an rpmfleet group. It is asked after the
// caller is known, so an outsider learns nothing of the groups.
func (s *Server) knownGroup(w http.ResponseWriter, r *http.Request, o FleetLockOptions, group string) bool {
	ctx := r.Context()
	if _, configured := o.GroupSlots[group]; !configured && group != "default" {
		if _, err := s.st.Group(ctx, group); errors.Is(err, store.ErrNotFound) {
			fleetLockError(w, http.StatusBadRequest, protocol.FleetLockBadRequest,
				fmt.Sprintf("client_params.group: unknown reboot group %q: use default, a group of [fleetlock] or an rpmfleet group", group))
			return false
		} else if err != nil {
			s.log.Error("fleetlock group lookup failed", "err", err)
			fleetLockError(w, http.StatusInternalServerError, protocol.FleetLockInternal, "internal error; see the server log")
			return false
		}
	}
	return true
}

func (s *Server) preReboot(w http.ResponseWriter, r *http.Request) {
	o := s.fleetLockOpts()
	group, holder, dev, ok := s.fleetLockRequest(w, r, o)
	if !ok {
		return
	}
	slots := o.Slots
	if n, ok := o.GroupSlots[group]; ok && n > 0 {
		slots = n
	}
	now := o.Now().UTC()
	held, err := s.st.LockSlot(r.Context(), group, holder, slots, now, now.Add(o.Timeout))
	if err != nil {
		s.log.Error("fleetlock lock failed", "group", group, "err", err)
		fleetLockError(w, http.StatusInternalServerError, protocol.FleetLockInternal, "internal error; see the server log")
		return
	}
	if !held {
		fleetLockError(w, http.StatusConflict, protocol.FleetLockFull,
			fmt.Sprintf("semaphore currently full, all %d slots of group %s are locked already", slots, group))
		return
	}
	s.auditLock(r, "fleetlock.lock", group, holder, dev)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) steadyState(w http.ResponseWriter, r *http.Request) {
	o := s.fleetLockOpts()
	group, holder, dev, ok := s.fleetLockRequest(w, r, o)
	if !ok {
		return
	}
	freed, err := s.st.UnlockSlot(r.Context(), group, holder)
	if err != nil {
		s.log.Error("fleetlock unlock failed", "group", group, "err", err)
		fleetLockError(w, http.StatusInternalServerError, protocol.FleetLockInternal, "internal error; see the server log")
		return
	}
	// UnlockIfHeld: freeing a slot not held is a success too.
	if freed {
		s.auditLock(r, "fleetlock.unlock", group, holder, dev)
	}
	w.WriteHeader(http.StatusOK)
}

// auditLock records a slot taken or freed by its holder.
func (s *Server) auditLock(r *http.Request, action, group, holder string, dev *store.Device) {
	e := protocol.AuditEntry{Action: action, Target: group + "/" + holder, Status: http.StatusOK, Detail: "POST " + r.URL.Path}
	if dev != nil {
		e.ActorID, e.Actor = dev.ID, dev.Name
	} else {
		e.ActorID, e.Actor = "", "fleetlock client "+holder
	}
	s.svc.Audit(r.Context(), e)
}

func (s *Server) listSlots(w http.ResponseWriter, r *http.Request) {
	sl, err := s.st.Slots(r.Context(), s.fleetLockOpts().Now().UTC())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(sl))
}

func (s *Server) releaseSlot(w http.ResponseWriter, r *http.Request) {
	freed, err := s.st.UnlockSlot(r.Context(), r.PathValue("group"), r.PathValue("holder"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !freed {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no slot of group %s is held by %s", protocol.Escape(r.PathValue("group")), protocol.Escape(r.PathValue("holder"))), "")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
