package api

import (
	"net/http"
)

// The lifecycle endpoints. Revoking a device is an operator's call (the
// role that enrols devices and sends them commands, and the one on duty
// when a device is lost); deleting one, which also deletes its history, is
// an admin's. Enrolment tokens are listed and revoked by admins.

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request) {
	resp, err := s.svc.RevokeDevice(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.DeleteDevice(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listEnrollTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.svc.ListEnrollTokens(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

func (s *Server) revokeEnrollToken(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.RevokeEnrollToken(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
