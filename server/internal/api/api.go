// Package api serves the fleet server's HTTP API, versioned JSON under
// /api/v1 (pkg/protocol holds the types and paths, docs/api.md documents
// them).
//
// Threat model. Every request but enrolment carries a bearer secret: an
// admin token, whose role (read-only, operator, admin) bounds what it may
// do, or a device credential, which may post only that device's reports and
// read only that device's own record. Enrolment is authorised by the
// enrolment token in its body, spent by the store in the same transaction that
// creates the device. An unknown, revoked or missing secret gets 401; a known
// one asking beyond its rights gets 403. Bodies are bounded in size
// (http.MaxBytesReader, 413 beyond) and in time (deadline.go: a small body
// whole within seconds, a large one at a minimum rate; 408 beyond), JSON is
// decoded strictly (unknown fields refused, 400 naming the field), and an
// error answer never echoes a secret. What a device says about itself
// (its name, its info) is held to pkg/protocol's limits, so nothing an
// outsider enrols can play tricks on an admin's terminal. Enrolment, which
// needs no login, takes at most MaxEnrolling slots at once.
// The API serves plain HTTP only where the server's main allows it (loopback,
// or explicitly allowed): over a network the transport must be TLS. An import
// by URL makes the server fetch what an operator names; operators are trusted
// that far, read-only tokens and devices are not.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/version"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/peer"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Body limits. A full inventory of a large device (3,000 packages) is about
// 400 kB of JSON; the AlmaLinux 9 OSV database, compressed, under 1 MB.
const (
	DefaultMaxBody   = 1 << 20
	DefaultMaxReport = 16 << 20
	DefaultMaxImport = 512 << 20
	// maxEnrollBody bounds an enrolment: a token, a name and six info
	// fields of at most protocol.MaxInfoLen bytes.
	maxEnrollBody = 16 << 10
)

// Options configure a Server.
type Options struct {
	// TempDir receives uploaded advisory files while they are read; empty
	// means os.TempDir().
	TempDir string
	// MaxBody, MaxReport and MaxImport bound request bodies; zero means
	// the defaults above.
	MaxBody, MaxReport, MaxImport int64
	// BodyTimeout, MinBodyRate and WriteTimeout bound a request's body
	// and answer in time (deadline.go); zero means the defaults there.
	BodyTimeout  time.Duration
	MinBodyRate  int64
	WriteTimeout time.Duration
	// MaxEnrolling bounds the enrolments handled at once; zero means
	// DefaultMaxEnrolling. MaxEnrollingPerAddress bounds those of one
	// IPv4 address or IPv6 /64; zero means DefaultMaxEnrollingPerAddress.
	MaxEnrolling, MaxEnrollingPerAddress int
	// Source is passed to source.Load for imports by URL; a nil HTTPClient
	// means one with a 5-minute timeout.
	Source source.Options
	// FleetLock configures the FleetLock endpoints (fleetlock.go).
	FleetLock FleetLockOptions
	// Log receives request errors; nil discards them.
	Log *slog.Logger
	// Dashboard, when set, serves every path no API route takes
	// (server/internal/dashboard); nil leaves a placeholder page at "/".
	Dashboard http.Handler
	// Metrics, when set, is served at /metrics to an admin token of any
	// role (server/internal/metrics).
	Metrics http.Handler
	// Healthz and Readyz, when set, are served at /healthz and /readyz
	// with no login.
	Healthz, Readyz http.Handler
}

// Server is the API's http.Handler.
type Server struct {
	svc  *fleet.Service
	st   store.Store
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
	// enrolling holds a token per enrolment being handled, and
	// enrollers counts them by address.
	enrolling chan struct{}
	enrollers *peer.Counter
}

// New returns the API over svc.
func New(svc *fleet.Service, opts Options) *Server {
	if opts.MaxBody == 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.MaxReport == 0 {
		opts.MaxReport = DefaultMaxReport
	}
	if opts.MaxImport == 0 {
		opts.MaxImport = DefaultMaxImport
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.MinBodyRate <= 0 {
		opts.MinBodyRate = DefaultMinBodyRate
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxEnrolling <= 0 {
		opts.MaxEnrolling = DefaultMaxEnrolling
	}
	if opts.MaxEnrollingPerAddress <= 0 {
		opts.MaxEnrollingPerAddress = DefaultMaxEnrollingPerAddress
	}
	if opts.Source.HTTPClient == nil {
		opts.Source.HTTPClient = &http.Client{Timeout: 5 * time.Minute}
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{svc: svc, st: svc.Store(), opts: opts, log: log.With("component", "api"), mux: http.NewServeMux(),
		enrolling: make(chan struct{}, opts.MaxEnrolling), enrollers: &peer.Counter{Max: min(opts.MaxEnrollingPerAddress, opts.MaxEnrolling)}}
	ro := access{role: protocol.RoleReadOnly}
	op := access{role: protocol.RoleOperator}
	adm := access{role: protocol.RoleAdmin}
	s.mux.HandleFunc("POST "+protocol.PathEnroll, s.enroll)
	s.mux.HandleFunc("POST "+protocol.PathReport, s.guard(access{device: true}, s.report))
	s.mux.HandleFunc("GET "+protocol.PathDevices, s.guard(ro, s.devicesSel))
	s.mux.HandleFunc("GET "+protocol.PathDevice+"{name}", s.guard(access{role: protocol.RoleReadOnly, device: true}, s.device))
	s.mux.HandleFunc("POST "+protocol.PathDevice+"{name}"+protocol.PathRevokeSuffix, s.audited("device.revoke", s.guard(op, s.revokeDevice)))
	s.mux.HandleFunc("DELETE "+protocol.PathDevice+"{name}", s.audited("device.delete", s.guard(adm, s.deleteDevice)))
	s.mux.HandleFunc("GET "+protocol.PathCVE+"{id}", s.guard(ro, s.cveSel))
	s.mux.HandleFunc("GET "+protocol.PathAdvisory+"{id}", s.guard(ro, s.advisory))
	s.mux.HandleFunc("GET "+protocol.PathAdvisories, s.guard(ro, s.advisoriesSel))
	s.mux.HandleFunc("GET "+protocol.PathSummary, s.guard(ro, s.summarySel))
	s.mux.HandleFunc("POST "+protocol.PathImport, s.audited("import", s.guard(op, s.importAdvisories)))
	s.mux.HandleFunc("POST "+protocol.PathEnrollTokens, s.audited("enroll-token.create", s.guard(op, s.createEnrollToken)))
	s.mux.HandleFunc("GET "+protocol.PathEnrollTokens, s.guard(adm, s.listEnrollTokens))
	s.mux.HandleFunc("DELETE "+protocol.PathEnrollTokens+"/{id}", s.audited("enroll-token.revoke", s.guard(adm, s.revokeEnrollToken)))
	s.mux.HandleFunc("GET "+protocol.PathTokens, s.guard(adm, s.listTokens))
	s.mux.HandleFunc("POST "+protocol.PathTokens, s.audited("token.create", s.guard(adm, s.createToken)))
	s.mux.HandleFunc("DELETE "+protocol.PathTokens+"/{id}", s.audited("token.revoke", s.guard(adm, s.revokeToken)))
	s.mux.HandleFunc("GET "+protocol.PathPlan, s.guard(access{device: true}, s.plan))
	s.mux.HandleFunc("POST "+protocol.PathCommand+"{name}", s.audited("command", s.guard(op, s.command)))
	if opts.Metrics != nil {
		s.mux.HandleFunc("GET /metrics", s.guard(ro, opts.Metrics.ServeHTTP))
	}
	if opts.Healthz != nil {
		s.mux.Handle("GET /healthz", opts.Healthz)
	}
	if opts.Readyz != nil {
		s.mux.Handle("GET /readyz", opts.Readyz)
	}
	if opts.Dashboard != nil {
		s.mux.Handle("/", opts.Dashboard)
	} else {
		s.mux.HandleFunc("GET /{$}", dashboard)
	}
	s.registerFleetOps()
	s.mux.HandleFunc(protocol.PathPrefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path, "")
	})
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(protocol.VersionHeader, fmt.Sprint(protocol.Version))
	s.limitTime(w, r)
	s.mux.ServeHTTP(w, r)
}

func dashboard(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!doctype html><title>rpmfleet</title><h1>rpmfleet %s</h1><p>The dashboard is not built yet. The API is under <code>%s</code>; use the <code>rpmfleet</code> CLI.</p>\n",
		version.String(), protocol.PathPrefix)
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	var req protocol.EnrollRequest
	if !s.decode(w, r, min(s.opts.MaxBody, maxEnrollBody), &req) {
		return
	}
	if req.Token == "" {
		writeError(w, http.StatusBadRequest, "token: empty", "token")
		return
	}
	if err := fleet.CheckEnroll(req); err != nil {
		s.fail(w, r, err)
		return
	}
	// The slot is taken once the body is in, so a slow sender holds a
	// connection (until BodyTimeout) but not a slot.
	release, ok := s.admitEnrolment(w, r)
	if !ok {
		return
	}
	defer release()
	resp, err := s.svc.Enroll(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	dev := callerFrom(r.Context()).device
	var rep protocol.Report
	if !s.decode(w, r, s.opts.MaxReport, &rep) {
		return
	}
	if rep.ID == "" || len(rep.ID) > 128 {
		writeError(w, http.StatusBadRequest, "id: must be 1 to 128 bytes", "id")
		return
	}
	if err := rep.Validate(); err != nil {
		var fe *protocol.FieldError
		errors.As(err, &fe)
		writeError(w, http.StatusBadRequest, err.Error(), fe.Field)
		return
	}
	resp, err := s.svc.ReportNamed(r.Context(), dev.ID, dev.Name, &rep)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) device(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if dev := callerFrom(r.Context()).device; dev != nil && dev.Name != name {
		// A device reads only its own record; it learns nothing about
		// whether another name exists.
		writeError(w, http.StatusForbidden, "a device may read only its own record", "")
		return
	}
	d, err := s.st.Device(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// maxCVEPage bounds a page of the CVE answer.
const maxCVEPage = 10000

func (s *Server) cve(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	var resp protocol.CVEResponse
	var err error
	if l := q.Get("limit"); l != "" {
		limit, perr := strconv.Atoi(l)
		if perr != nil || limit < 1 || limit > maxCVEPage {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: %q is not a number from 1 to %d", l, maxCVEPage), "limit")
			return
		}
		resp, err = s.st.CVEPage(r.Context(), id, q.Get("after"), limit)
	} else {
		resp, err = s.st.CVE(r.Context(), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.unknownCVE(w, r, &resp) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(appendCVE(make([]byte, 0, 64+140*len(resp.Exposed)+60*len(resp.Patched)), &resp))
}

func (s *Server) advisory(w http.ResponseWriter, r *http.Request) {
	a, err := s.st.Advisory(r.Context(), r.PathValue("id"))
	if err == nil {
		err = s.advisoryReleases(r.Context(), &a)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	a.Devices = nonNil(a.Devices)
	writeJSON(w, http.StatusOK, a)
}

// importAdvisories takes either an ImportRequest (Content-Type
// application/json) naming URLs, or the raw bytes of an advisory file of any
// kind source.Load reads (any other Content-Type), streamed to a temporary
// file first so a large upload is never held in memory.
func (s *Server) importAdvisories(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// Reading a large upload or repository and storing what it holds may
	// take minutes; the answer still must go out within WriteTimeout.
	rearm := s.holdWrite(w)
	defer rearm()
	var advs []advisory.Advisory
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" {
		var req protocol.ImportRequest
		if !s.decode(w, r, s.opts.MaxBody, &req) {
			return
		}
		if len(req.URLs) == 0 {
			writeError(w, http.StatusBadRequest, "urls: empty", "urls")
			return
		}
		for i, u := range req.URLs {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("urls[%d]: %q is not an http(s) URL", i, u), fmt.Sprintf("urls[%d]", i))
				return
			}
			o := s.opts.Source
			o.Descriptions = true // the server shows them (advisory detail)
			a, err := source.Load(ctx, u, o)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("urls[%d]: %v", i, err), fmt.Sprintf("urls[%d]", i))
				return
			}
			advs = append(advs, a...)
		}
	} else {
		a, status, err := s.loadUpload(ctx, w, r)
		if err != nil {
			writeError(w, status, err.Error(), "")
			return
		}
		advs = a
	}
	resp, err := s.svc.Import(ctx, advs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) loadUpload(ctx context.Context, w http.ResponseWriter, r *http.Request) ([]advisory.Advisory, int, error) {
	f, err := os.CreateTemp(s.opts.TempDir, "import-*")
	if err != nil {
		return nil, http.StatusInternalServerError, fmt.Errorf("store upload: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, http.MaxBytesReader(w, r.Body, s.opts.MaxImport))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("upload larger than %d bytes", mbe.Limit)
		}
		if errors.Is(err, errBodyTooSlow) {
			return nil, http.StatusRequestTimeout, fmt.Errorf("read upload: %w", err)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read upload: %w", err)
	}
	if n == 0 {
		return nil, http.StatusBadRequest, errors.New("empty upload")
	}
	if err := f.Close(); err != nil {
		return nil, http.StatusInternalServerError, fmt.Errorf("store upload: %w", err)
	}
	advs, err := source.Load(ctx, f.Name(), source.Options{Descriptions: true})
	if err != nil {
		// The temporary name means nothing to the client.
		msg := strings.ReplaceAll(err.Error(), f.Name(), "upload")
		return nil, http.StatusBadRequest, errors.New(msg)
	}
	return advs, 0, nil
}

func (s *Server) createEnrollToken(w http.ResponseWriter, r *http.Request) {
	var req protocol.EnrollTokenCreateRequest
	if !s.decode(w, r, s.opts.MaxBody, &req) {
		return
	}
	if err := s.svc.CheckEnrollToken(req); err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := s.svc.CreateEnrollToken(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req protocol.TokenCreateRequest
	if !s.decode(w, r, s.opts.MaxBody, &req) {
		return
	}
	resp, err := s.svc.CreateToken(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.st.ListTokens(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]protocol.TokenInfo, 0, len(ts))
	for _, t := range ts {
		ti := protocol.TokenInfo{ID: t.ID, Name: t.Name, Role: t.Role, Created: t.Created}
		if !t.Revoked.IsZero() {
			rv := t.Revoked
			ti.Revoked = &rv
		}
		out = append(out, ti)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.st.RevokeToken(r.Context(), id, time.Now().UTC()); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// fail maps an error to its status: what the caller got wrong in 4xx with
// the error's words, anything else 500 with the details only in the log.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, fleet.ErrBadRequest), errors.Is(err, store.ErrBadReport):
		writeError(w, http.StatusBadRequest, err.Error(), badField(err.Error()))
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error(), "")
	case errors.Is(err, store.ErrTokenInvalid), errors.Is(err, store.ErrTokenRevoked), errors.Is(err, store.ErrTokenExpired), errors.Is(err, store.ErrTokenUsedUp):
		writeError(w, http.StatusUnauthorized, err.Error(), "token")
	case errors.Is(err, store.ErrNameTaken):
		writeError(w, http.StatusConflict, err.Error(), "name")
	case errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, "request cancelled", "")
	case errors.Is(err, store.ErrStorageFull):
		// 507, a 5xx: an agent keeps the report queued and sends it
		// again, as for any failure on the server's side.
		s.log.Error("request refused: storage full", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInsufficientStorage, "the server's storage is full: nothing was stored; send it again later", "")
	default:
		s.internal(w, r, err)
	}
}

// badField picks the field out of a refusal worded "...: bad report: FIELD:
// what was wrong" or "...: bad request: FIELD: what was wrong", as the store
// and the fleet service word them; "" when there is none.
func badField(msg string) string {
	for _, marker := range []string{"bad report: ", "bad request: "} {
		if i := strings.LastIndex(msg, marker); i >= 0 {
			f, _, ok := strings.Cut(msg[i+len(marker):], ": ")
			if ok && f != "" && !strings.ContainsAny(f, " \"'") {
				return f
			}
		}
	}
	return ""
}

func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error; see the server log", "")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg, field string) {
	writeJSON(w, status, protocol.Error{Error: msg, Field: field})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
