package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// The fleet operations of issue 13: labels, groups and policies, hand
// approvals, rollouts, the audit log, and the selection (label=, group=)
// the lists and counts take. Every admin action goes through audited, so
// it lands in the audit log with who did it and how it ended.

// auditWriter keeps the status of an answer and, for an error, its body
// (an error answer is a small protocol.Error, which never holds a secret).
type auditWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	// note is what the handler adds to the entry's detail (auditNote).
	note string
}

// auditNote adds to the audit entry of the request what it changed, when
// the path alone does not say it (the policy a PUT attached): never a
// secret. A handler not under audited notes nothing.
func auditNote(w http.ResponseWriter, note string) {
	if aw, ok := w.(*auditWriter); ok {
		aw.note = note
	}
}

func (a *auditWriter) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *auditWriter) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	if a.status >= 400 && a.body.Len() < 4096 {
		a.body.Write(p[:min(len(p), 4096-a.body.Len())])
	}
	return a.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (a *auditWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// maxAuditDetail bounds an entry's detail, which quotes the request's path
// and query, and its error.
const maxAuditDetail = 512

// audited records action in the audit log once h (the route's guard and
// handler) answered: the caller (an admin token's id, name and role, or a
// device), the target (the path's name or id), the method, path and query
// (never a body, where secrets travel), the status and the error. A
// caller the guard refuses for its role (403) is recorded too; a request
// with no or an unknown credential (401) is not, so an outsider cannot
// fill the log. The caller is looked up before h runs, so a token that
// revokes itself is still named.
func (s *Server) audited(action string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, authErr := s.authenticate(r)
		aw := &auditWriter{ResponseWriter: w}
		h(aw, r)
		if authErr != nil {
			return
		}
		e := protocol.AuditEntry{Action: action, Status: aw.status}
		if e.Status == 0 {
			e.Status = http.StatusOK
		}
		switch {
		case c.token != nil:
			e.ActorID, e.Actor, e.Role = c.token.ID, c.token.Name, c.token.Role
		case c.device != nil:
			e.ActorID, e.Actor = c.device.ID, "device "+c.device.Name
		}
		for _, k := range []string{"name", "id", "group", "holder"} {
			if v := r.PathValue(k); v != "" {
				if e.Target != "" {
					e.Target += "/"
				}
				e.Target += v
			}
		}
		if loc := aw.Header().Get("Location"); e.Target == "" && loc != "" {
			// What the request created: the last segment of its path.
			e.Target = loc[strings.LastIndex(loc, "/")+1:]
		}
		e.Detail = r.Method + " " + r.URL.Path
		if r.URL.RawQuery != "" {
			e.Detail += "?" + r.URL.RawQuery
		}
		if aw.note != "" {
			e.Detail += ": " + aw.note
		}
		if len(e.Detail) > maxAuditDetail {
			e.Detail = e.Detail[:maxAuditDetail] + "..."
		}
		if e.Status >= 400 {
			var pe protocol.Error
			if json.Unmarshal(aw.body.Bytes(), &pe) == nil && pe.Error != "" {
				e.Error = pe.Error
			} else {
				e.Error = http.StatusText(e.Status)
			}
		}
		if len(e.Error) > maxAuditDetail {
			e.Error = e.Error[:maxAuditDetail] + "..."
		}
		s.svc.Audit(r.Context(), e)
	}
}

// selection reads the label= and group= parameters; false when it
// answered 400.
func selection(w http.ResponseWriter, r *http.Request) (fleet.Selection, bool) {
	var sel fleet.Selection
	q := r.URL.Query()
	for _, l := range q[protocol.QueryLabel] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("label: %s is not key=value", protocol.Escape(strconv.Quote(l))), "label")
			return sel, false
		}
		if sel.Labels == nil {
			sel.Labels = map[string]string{}
		}
		sel.Labels[k] = v
	}
	sel.Group = q.Get(protocol.QueryGroup)
	return sel, true
}

func (s *Server) devicesSel(w http.ResponseWriter, r *http.Request) {
	sel, ok := selection(w, r)
	if !ok {
		return
	}
	ds, err := s.svc.Devices(r.Context(), sel, r.URL.Query().Get("exposed_to"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(ds))
}

func (s *Server) cveSel(w http.ResponseWriter, r *http.Request) {
	sel, ok := selection(w, r)
	if !ok {
		return
	}
	if sel.Empty() {
		s.cve(w, r)
		return
	}
	q := r.URL.Query()
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxCVEPage {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: %q is not a number from 1 to %d", l, maxCVEPage), "limit")
			return
		}
		limit = n
	}
	resp, err := s.svc.CVE(r.Context(), r.PathValue("id"), sel, q.Get("after"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.unknownCVE(w, r, &resp) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(appendCVE(nil, &resp))
}

func (s *Server) advisoriesSel(w http.ResponseWriter, r *http.Request) {
	sel, ok := selection(w, r)
	if !ok {
		return
	}
	sev, err := advisory.ParseSeverity(r.URL.Query().Get("severity"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "severity: "+err.Error(), "severity")
		return
	}
	as, err := s.svc.Advisories(r.Context(), sev, sel)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(as))
}

func (s *Server) summarySel(w http.ResponseWriter, r *http.Request) {
	sel, ok := selection(w, r)
	if !ok {
		return
	}
	sum, err := s.svc.Summary(r.Context(), sel)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

func (s *Server) setLabels(w http.ResponseWriter, r *http.Request) {
	var req protocol.LabelsRequest
	if !s.decode(w, r, s.opts.MaxBody, &req) {
		return
	}
	d, err := s.svc.SetDeviceLabels(r.Context(), r.PathValue("name"), req.Labels)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	gs, err := s.svc.Groups(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(gs))
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	g, err := s.svc.Group(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) putGroup(w http.ResponseWriter, r *http.Request) {
	var req protocol.GroupRequest
	if !s.decode(w, r, s.opts.MaxBody, &req) {
		return
	}
	g, err := s.svc.PutGroup(r.Context(), r.PathValue("name"), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.DeleteGroup(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request) {
	var p protocol.Policy
	if !s.decode(w, r, s.opts.MaxBody, &p) {
		return
	}
	g, err := s.svc.SetGroupPolicy(r.Context(), r.PathValue("name"), &p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The audit log says which policy: who widened an allow-list or
	// opened a window is the question it answers. A policy holds no
	// secret; the entry's detail is cut at maxAuditDetail.
	if b, err := json.Marshal(g.Policy); err == nil {
		auditNote(w, string(b))
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request) {
	g, err := s.svc.SetGroupPolicy(r.Context(), r.PathValue("name"), nil)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request) {
	as, err := s.st.Approvals(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(as))
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request) {
	var req protocol.ApprovalRequest
	if !s.decode(w, r, s.opts.MaxBody, &req) {
		return
	}
	by := ""
	if t := callerFrom(r.Context()).token; t != nil {
		by = t.Name
	}
	a, err := s.svc.Approve(r.Context(), req.Advisory, by)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) unapprove(w http.ResponseWriter, r *http.Request) {
	if err := s.st.Unapprove(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request) {
	rs, err := s.svc.Rollouts(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(rs))
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request) {
	ro, err := s.svc.RolloutView(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ro)
}

func (s *Server) createRollout(w http.ResponseWriter, r *http.Request) {
	var req protocol.RolloutRequest
	if !s.decode(w, r, s.opts.MaxBody, &req) {
		return
	}
	by := ""
	if t := callerFrom(r.Context()).token; t != nil {
		by = t.Name
	}
	ro, err := s.svc.CreateRollout(r.Context(), req, by)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", protocol.PathRollout+ro.ID)
	writeJSON(w, http.StatusOK, ro)
}

// rolloutAction serves POST PathRollout+ID+"/"+ACTION. The action is part
// of the path, so each is audited under its own name.
func (s *Server) rolloutAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ro, err := s.svc.ActRollout(r.Context(), r.PathValue("id"), action)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ro)
	}
}

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.AuditFilter{Action: q.Get("action")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > protocol.MaxAuditPage {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: %q is not a number from 1 to %d", l, protocol.MaxAuditPage), "limit")
			return
		}
		f.Limit = n
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("before: %q is not an entry id", b), "before")
			return
		}
		f.Before = n
	}
	es, err := s.svc.AuditLog(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(es))
}

// registerFleetOps adds the routes of the fleet operations to the mux.
func (s *Server) registerFleetOps() {
	ro := access{role: protocol.RoleReadOnly}
	op := access{role: protocol.RoleOperator}
	adm := access{role: protocol.RoleAdmin}
	s.mux.HandleFunc("PUT "+protocol.PathDevice+"{name}"+protocol.PathLabelsSuffix, s.audited("device.labels", s.guard(op, s.setLabels)))
	s.mux.HandleFunc("GET "+protocol.PathGroups, s.guard(ro, s.listGroups))
	s.mux.HandleFunc("GET "+protocol.PathGroup+"{name}", s.guard(ro, s.getGroup))
	s.mux.HandleFunc("PUT "+protocol.PathGroup+"{name}", s.audited("group.put", s.guard(adm, s.putGroup)))
	s.mux.HandleFunc("DELETE "+protocol.PathGroup+"{name}", s.audited("group.delete", s.guard(adm, s.deleteGroup)))
	s.mux.HandleFunc("PUT "+protocol.PathGroup+"{name}"+protocol.PathPolicySuffix, s.audited("policy.put", s.guard(adm, s.putPolicy)))
	s.mux.HandleFunc("DELETE "+protocol.PathGroup+"{name}"+protocol.PathPolicySuffix, s.audited("policy.delete", s.guard(adm, s.deletePolicy)))
	s.mux.HandleFunc("GET "+protocol.PathApprovals, s.guard(ro, s.listApprovals))
	s.mux.HandleFunc("POST "+protocol.PathApprovals, s.audited("advisory.approve", s.guard(op, s.approve)))
	s.mux.HandleFunc("DELETE "+protocol.PathApprovals+"/{id}", s.audited("advisory.unapprove", s.guard(op, s.unapprove)))
	s.mux.HandleFunc("GET "+protocol.PathRollouts, s.guard(ro, s.listRollouts))
	s.mux.HandleFunc("POST "+protocol.PathRollouts, s.audited("rollout.create", s.guard(op, s.createRollout)))
	s.mux.HandleFunc("GET "+protocol.PathRollout+"{id}", s.guard(ro, s.getRollout))
	for _, a := range []string{protocol.RolloutPause, protocol.RolloutResume, protocol.RolloutAbort, protocol.RolloutApprove} {
		s.mux.HandleFunc("POST "+protocol.PathRollout+"{id}/"+a, s.audited("rollout."+a, s.guard(op, s.rolloutAction(a))))
	}
	s.mux.HandleFunc("GET "+protocol.PathAudit, s.guard(adm, s.auditLog))
	s.mux.HandleFunc("GET "+protocol.PathWebhookDeliveries, s.guard(adm, s.deliveries))
	s.mux.HandleFunc("GET "+protocol.PathFleetLock, s.guard(ro, s.listSlots))
	s.mux.HandleFunc("DELETE "+protocol.PathFleetLock+"/{group}/{holder}", s.audited("fleetlock.release", s.guard(op, s.releaseSlot)))
	s.mux.HandleFunc("POST "+protocol.PathPreReboot, s.preReboot)
	s.mux.HandleFunc("POST "+protocol.PathSteadyState, s.steadyState)
}
