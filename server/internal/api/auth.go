package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// caller is who sent a request: an admin token or a device, never both.
type caller struct {
	token  *store.Token
	device *store.Device
}

type callerKey struct{}

func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// authenticate resolves the bearer secret to an admin token or a device.
// Both are looked up by the secret's SHA-256, which is all the store keeps.
func (s *Server) authenticate(r *http.Request) (caller, error) {
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(secret) == "" {
		return caller{}, errNoCredential
	}
	hash := store.HashSecret(strings.TrimSpace(secret))
	t, err := s.st.TokenByHash(r.Context(), hash)
	if err == nil {
		return caller{token: &t}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return caller{}, err
	}
	d, err := s.st.DeviceByCredential(r.Context(), hash)
	if err == nil {
		return caller{device: &d}, nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return caller{}, errUnknownCredential
	}
	return caller{}, err
}

var (
	errNoCredential      = errors.New("missing Authorization: Bearer token")
	errUnknownCredential = errors.New("unknown or revoked token or device credential")
)

// access is who may call an endpoint.
type access struct {
	// role is the least admin role allowed; empty allows no admin token.
	role protocol.Role
	// device lets a device credential through; the handler then limits it
	// to the device's own data.
	device bool
}

// guard wraps h so that only callers a allows reach it: 401 for no or an
// unknown credential, 403 for a known one that may not.
func (s *Server) guard(a access, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r)
		if err != nil {
			if errors.Is(err, errUnknownCredential) || errors.Is(err, errNoCredential) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="rpmfleet"`)
				writeError(w, http.StatusUnauthorized, err.Error(), "")
				return
			}
			s.internal(w, r, err)
			return
		}
		switch {
		case c.token != nil && a.role != "" && c.token.Role.Allows(a.role):
		case c.device != nil && a.device:
		case c.token != nil && a.role != "":
			writeError(w, http.StatusForbidden, "token role "+string(c.token.Role)+" may not do this; it needs "+string(a.role), "")
			return
		default:
			writeError(w, http.StatusForbidden, "this credential may not do this", "")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	}
}
