package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
)

// plan answers a device its own signed plan: 200 with the pkg/notice
// envelope and an ETag of the plan's body, or 304 when If-None-Match
// carries that ETag. Only a device credential reaches it, and it names
// the device: there is no way to ask for another device's plan.
func (s *Server) plan(w http.ResponseWriter, r *http.Request) {
	dev := callerFrom(r.Context()).device
	signed, etag, err := s.svc.Plan(r.Context(), dev.ID)
	if err != nil {
		if errors.Is(err, fleet.ErrNoSigner) {
			writeError(w, http.StatusServiceUnavailable, "this server signs no plans (no notice key)", "")
			return
		}
		s.fail(w, r, err)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(signed)
}

// etagMatches reports whether an If-None-Match header holds etag: "*" or
// a comma-separated list, weak tags compared weakly (RFC 9110 13.1.2).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// command signs an operator's command for the device named in the path
// and publishes it on the device's command topic.
func (s *Server) command(w http.ResponseWriter, r *http.Request) {
	var cmd protocol.Command
	if !s.decode(w, r, s.opts.MaxBody, &cmd) {
		return
	}
	resp, err := s.svc.Command(r.Context(), r.PathValue("name"), cmd)
	switch {
	case errors.Is(err, fleet.ErrNoBroker):
		writeError(w, http.StatusServiceUnavailable, "this server runs no MQTT broker (--mqtt-listen off, or the default port was taken); devices learn of changes when they poll", "")
		return
	case errors.Is(err, fleet.ErrNoSigner):
		writeError(w, http.StatusServiceUnavailable, "this server signs no commands (no notice key)", "")
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
