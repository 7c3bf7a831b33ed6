package fleet

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Lifecycle: what enrolment gives can be taken back. A revoked device's
// credential stops working with the store's commit, over HTTP and for MQTT
// logins alike (both look it up by hash), and the embedded broker drops
// the device's open session (Disconnector); the device stays listed as
// revoked. A deleted device goes with everything kept about it. Admins list
// enrolment tokens (never their secrets) and revoke them.
//
// What a device sends about itself is held to pkg/protocol's limits before
// anything is spent or stored: CheckEnroll for an enrolment (the API calls
// it before Enroll, so a refused name spends no token use), and
// CheckEnrollToken for a new enrolment token.

// Disconnector is a Publisher that can also end a device's open MQTT
// session and refuse its later logins: the embedded broker. An external
// broker cannot; it keeps a revoked device's session until it drops it on
// its own, and its own authentication must refuse the device.
type Disconnector interface {
	DisconnectDevice(deviceID string)
}

// CheckEnroll refuses an enrolment request whose name (or host name, the
// name when none is given) or device info break pkg/protocol's limits,
// with ErrBadRequest naming the field.
func CheckEnroll(req protocol.EnrollRequest) error {
	if err := req.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if req.Name == "" && req.Device.Hostname != "" {
		if err := protocol.ValidateName(req.Device.Hostname); err != nil {
			return fmt.Errorf("%w: %w (the host name stands for the name when none is given; give a name)", ErrBadRequest, err)
		}
	}
	return nil
}

// CheckEnrollToken refuses an enrolment token that would be used up or
// expired from the start, or too long-lived or too widely usable: uses
// from 0 (meaning 1) to protocol.MaxEnrollTokenUses, an expiry (when
// given) in the future and at most protocol.MaxEnrollTokenTTL ahead, and
// labels as protocol.ValidateLabels says.
func (s *Service) CheckEnrollToken(req protocol.EnrollTokenCreateRequest) error {
	now := s.opts.Now()
	switch {
	case req.Uses < 0:
		return fmt.Errorf("%w: uses: %d is negative", ErrBadRequest, req.Uses)
	case req.Uses > protocol.MaxEnrollTokenUses:
		return fmt.Errorf("%w: uses: %d is more than %d", ErrBadRequest, req.Uses, protocol.MaxEnrollTokenUses)
	case req.Expires.IsZero():
	case !req.Expires.After(now):
		return fmt.Errorf("%w: expires: %s is not in the future (the server's time is %s)", ErrBadRequest,
			req.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case req.Expires.Sub(now) > protocol.MaxEnrollTokenTTL:
		return fmt.Errorf("%w: expires: %s is more than %d days ahead", ErrBadRequest,
			req.Expires.UTC().Format(time.RFC3339), protocol.MaxEnrollTokenTTL/(24*time.Hour))
	}
	if err := protocol.ValidateLabels(req.Labels); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}

// RevokeDevice revokes the device called name: its credential stops
// working, its open MQTT session on the embedded broker is closed, and it
// stays listed as revoked. Revoking it again changes nothing.
func (s *Service) RevokeDevice(ctx context.Context, name string) (protocol.DeviceRevokeResponse, error) {
	id, at, err := s.st.RevokeDevice(ctx, name, s.opts.Now().UTC())
	if err != nil {
		return protocol.DeviceRevokeResponse{}, err
	}
	s.disconnect(id)
	s.log.Info("device revoked", "device", name, "id", id, "revoked", at)
	return protocol.DeviceRevokeResponse{DeviceID: id, Name: name, Revoked: at}, nil
}

// DeleteDevice deletes the device called name and everything kept about
// it, and closes its open MQTT session on the embedded broker.
func (s *Service) DeleteDevice(ctx context.Context, name string) error {
	id, err := s.st.DeleteDevice(ctx, name)
	if err != nil {
		return err
	}
	s.disconnect(id)
	s.log.Info("device deleted", "device", name, "id", id)
	return nil
}

// disconnect ends the device's MQTT session when the publisher can.
func (s *Service) disconnect(deviceID string) {
	if d, ok := s.opts.Publisher.(Disconnector); ok {
		d.DisconnectDevice(deviceID)
		return
	}
	if s.opts.Publisher != nil {
		s.log.Warn("the external MQTT broker keeps the device's session; its own authentication must refuse the device", "id", deviceID)
	}
}

// ListEnrollTokens lists the enrolment tokens, oldest first, without their
// secrets.
func (s *Service) ListEnrollTokens(ctx context.Context) ([]protocol.EnrollTokenInfo, error) {
	ts, err := s.st.ListEnrollTokens(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]protocol.EnrollTokenInfo, 0, len(ts))
	for _, t := range ts {
		ti := protocol.EnrollTokenInfo{ID: t.ID, UsesLeft: t.UsesLeft, Expires: t.Expires, Created: t.Created}
		if len(t.Labels) > 0 {
			ti.Labels = maps.Clone(t.Labels)
		}
		if !t.Revoked.IsZero() {
			rv := t.Revoked
			ti.Revoked = &rv
		}
		out = append(out, ti)
	}
	return out, nil
}

// RevokeEnrollToken revokes the enrolment token with the given id.
func (s *Service) RevokeEnrollToken(ctx context.Context, id string) error {
	if err := s.st.RevokeEnrollToken(ctx, id, s.opts.Now().UTC()); err != nil {
		return err
	}
	s.log.Info("enrolment token revoked", "id", id)
	return nil
}
