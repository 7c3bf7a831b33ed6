// Package dashboard serves the fleet server's web dashboard: server-rendered
// pages (html/template) with their stylesheet and icon embedded in the
// binary, no script at all, no CDN and no build step, on the API's
// listener (server/internal/api hands it every path outside /api/v1).
//
// Threat model. The dashboard shows what devices wrote (names, labels,
// os-release, package names) and the advisory sources' titles to an admin's
// browser, and lets an operator revoke a device. So:
//   - Everything is rendered by html/template, which escapes by context;
//     nothing from a device or a source is ever marked template.HTML, and
//     links carry names in query strings, which the template escapes.
//   - The Content-Security-Policy allows no script at all, styles and
//     images from the server's own origin only, forms posting only to it,
//     and no framing (frame-ancestors 'none', X-Frame-Options DENY): an
//     injected tag could neither run nor load anything, nor could another
//     site frame the revoke button.
//   - Login takes an admin token, checked as the API checks it (by its
//     SHA-256), and gives a session cookie: 256 random bits, HttpOnly,
//     SameSite=Strict, Secure (and __Host- prefixed) under TLS, kept in
//     memory only as its SHA-256, ending after DefaultSessionTTL or
//     DefaultIdleTimeout unused, or at logout. The token behind a session
//     is looked up on every request, so revoking it ends its sessions, and
//     its role decides what the session may do (read-only sees, operator
//     revokes devices and moves rollouts).
//   - Every state-changing form (revoke, a rollout's pause, resume,
//     approve or abort, logout) carries the session's
//     CSRF token, compared in constant time; every POST, login included,
//     must also pass net/http's cross-origin protection (Sec-Fetch-Site or
//     Origin), and the cookie is SameSite=Strict.
//   - Logins are bounded: MaxLoggingIn checked at once, MaxLoginFailures
//     per address per LoginWindow.
//   - Every page reads a bounded amount: lists are paged on the server
//     (PageSize rows), query parameters are checked, and a CVE id must
//     look like one.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

//go:embed templates/*.html static
var assets embed.FS

// PageSize is how many rows a list page shows.
const PageSize = 50

// Store is what the dashboard reads: the store's queries and admin token
// lookup. When it is also a store.DeviceDetails, device pages list
// packages and update cycles; when a store.ExposureHistory, the overview
// draws exposure over time.
type Store interface {
	store.Queries
	TokenByHash(ctx context.Context, h store.Hash) (store.Token, error)
}

// Revoker revokes a device (fleet.Service does, closing its MQTT session
// too).
type Revoker interface {
	RevokeDevice(ctx context.Context, name string) (protocol.DeviceRevokeResponse, error)
}

// Auditor records an admin action in the audit log (fleet.Service does).
type Auditor interface {
	Audit(ctx context.Context, e protocol.AuditEntry)
}

// Options configure a Dashboard.
type Options struct {
	// Store is read for every page; required.
	Store Store
	// Revoker revokes devices; nil hides the revoke button.
	Revoker Revoker
	// Rollouts shows rollouts and moves them; nil hides the rollout
	// pages.
	Rollouts Rollouts
	// Audit, when set, records every revocation and rollout action made
	// from the dashboard in the audit log, as the API records its own.
	Audit Auditor
	// Secure marks the session cookie Secure (and names it with the
	// __Host- prefix): set it when the API is served over TLS.
	Secure bool
	// SessionTTL and IdleTimeout bound a session; zero means
	// DefaultSessionTTL and DefaultIdleTimeout.
	SessionTTL, IdleTimeout time.Duration
	// StoreError, when set, is called for every store query that failed
	// for the store's sake (metrics count them).
	StoreError func()
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives errors; nil discards them.
	Log *slog.Logger
}

// Dashboard is the dashboard's http.Handler.
type Dashboard struct {
	opts     Options
	st       Store
	log      *slog.Logger
	mux      *http.ServeMux
	pages    map[string]*template.Template
	sessions *sessions
	limiter  loginLimiter
	// loggingIn holds a token per login being checked.
	loggingIn chan struct{}
	cop       *http.CrossOriginProtection
}

// contentSecurityPolicy allows no script, and styles, images and form
// targets from the server's own origin only.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// New returns the dashboard over opts.Store.
func New(opts Options) (*Dashboard, error) {
	if opts.Store == nil {
		return nil, errors.New("dashboard: no store")
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{opts: opts, st: opts.Store, log: log.With("component", "dashboard"), mux: http.NewServeMux(),
		sessions: newSessions(opts.SessionTTL, opts.IdleTimeout), loggingIn: make(chan struct{}, MaxLoggingIn),
		cop: http.NewCrossOriginProtection()}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	d.pages = pages
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	files := http.FileServerFS(static)
	d.mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})))
	d.mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/icon.svg", http.StatusMovedPermanently)
	})
	d.mux.HandleFunc("GET /login", d.loginPage)
	d.mux.HandleFunc("POST /login", d.login)
	d.mux.HandleFunc("POST /logout", d.auth(false, d.logout))
	d.mux.HandleFunc("GET /{$}", d.auth(false, d.overview))
	d.mux.HandleFunc("GET /devices", d.auth(false, d.devices))
	d.mux.HandleFunc("GET /device", d.auth(false, d.device))
	d.mux.HandleFunc("POST /device/revoke", d.auth(true, d.revoke))
	d.mux.HandleFunc("GET /cve", d.auth(false, d.cve))
	d.mux.HandleFunc("GET /advisories", d.auth(false, d.advisories))
	d.mux.HandleFunc("GET /advisory", d.auth(false, d.advisory))
	if opts.Rollouts != nil {
		d.mux.HandleFunc("GET /rollouts", d.auth(false, d.rollouts))
		d.mux.HandleFunc("GET /rollout", d.auth(false, d.rollout))
		for _, a := range rolloutActions {
			d.mux.HandleFunc("POST /rollout/"+a, d.auth(true, d.actRollout(a)))
		}
	}
	d.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, http.StatusNotFound, "There is no such page.")
	})
	return d, nil
}

func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if d.opts.Secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if err := d.cop.Check(r); err != nil {
		d.fail(w, r, http.StatusForbidden, "This form was sent from another site.")
		return
	}
	d.mux.ServeHTTP(w, r)
}

// cookieName is the session cookie's name: with the __Host- prefix under
// TLS, which browsers accept only Secure, for path / and without a domain.
func (d *Dashboard) cookieName() string {
	if d.opts.Secure {
		return "__Host-rpmfleet-session"
	}
	return "rpmfleet-session"
}

// user is who a request's session belongs to.
type user struct {
	// ID is the admin token's id.
	ID   string
	Name string
	Role protocol.Role
	CSRF string
	// cookie is the session cookie's value.
	cookie string
}

// CanOperate says whether the user may change things (operator or admin).
func (u *user) CanOperate() bool { return u.Role.Allows(protocol.RoleOperator) }

type userKey struct{}

func userFrom(ctx context.Context) *user {
	u, _ := ctx.Value(userKey{}).(*user)
	return u
}

// auth wraps h so that only a live session whose token is still valid
// reaches it; others are sent to the login page (a GET) or refused (a
// POST). A POST must carry the session's CSRF token, and, when operate is
// set, come from an operator.
func (d *Dashboard) auth(operate bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		now := d.opts.Now()
		c, err := r.Cookie(d.cookieName())
		var se *session
		if err == nil {
			se = d.sessions.get(c.Value, now)
		}
		var tok store.Token
		if se != nil {
			tok, err = d.st.TokenByHash(r.Context(), se.token)
			if errors.Is(err, store.ErrNotFound) {
				d.sessions.end(c.Value)
				se = nil
			} else if err != nil {
				d.internal(w, r, err)
				return
			}
		}
		if se == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			d.fail(w, r, http.StatusUnauthorized, "Your session has ended; log in again.")
			return
		}
		u := &user{ID: tok.ID, Name: tok.Name, Role: tok.Role, CSRF: se.csrf, cookie: c.Value}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
			if !se.csrfOK(r.PostFormValue("csrf")) {
				d.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this dashboard; reload the page and try again.")
				return
			}
		}
		if operate && !u.CanOperate() {
			d.fail(w, r, http.StatusForbidden, "Your token's role ("+string(u.Role)+") may not do this; it needs operator.")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	}
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "login", &loginView{})
}

type loginView struct {
	Error string
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	now := d.opts.Now()
	addr, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		addr = r.RemoteAddr
	}
	if ok, wait := d.limiter.allowed(addr, now); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		d.render(w, r, http.StatusTooManyRequests, "login", &loginView{Error: "Too many failed logins from your address; wait a few minutes."})
		return
	}
	select {
	case d.loggingIn <- struct{}{}:
		defer func() { <-d.loggingIn }()
	default:
		w.Header().Set("Retry-After", "1")
		d.render(w, r, http.StatusServiceUnavailable, "login", &loginView{Error: "The server is busy; try again in a moment."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	secret := r.PostFormValue("token")
	if secret == "" || len(secret) > 256 {
		d.limiter.failed(addr, now)
		d.render(w, r, http.StatusUnauthorized, "login", &loginView{Error: "Give an admin token."})
		return
	}
	h := store.HashSecret(secret)
	tok, err := d.st.TokenByHash(r.Context(), h)
	if errors.Is(err, store.ErrNotFound) {
		d.limiter.failed(addr, now)
		d.log.Warn("dashboard login refused", "remote", addr)
		d.render(w, r, http.StatusUnauthorized, "login", &loginView{Error: "Unknown or revoked token."})
		return
	}
	if err != nil {
		d.internal(w, r, err)
		return
	}
	value := d.sessions.create(h, now)
	http.SetCookie(w, &http.Cookie{Name: d.cookieName(), Value: value, Path: "/", HttpOnly: true, Secure: d.opts.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(d.opts.SessionTTL.Seconds())})
	d.log.Info("dashboard login", "token", tok.ID, "name", tok.Name, "role", tok.Role, "remote", addr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	u := userFrom(r.Context())
	d.sessions.end(u.cookie)
	http.SetCookie(w, &http.Cookie{Name: d.cookieName(), Value: "", Path: "/", HttpOnly: true, Secure: d.opts.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// errorView is the error page.
type errorView struct {
	Status  int
	Message string
}

// fail answers with an error page saying msg.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	d.render(w, r, status, "error", &errorView{Status: status, Message: msg})
}

// internal answers 500 for an error of the server's, with the details in
// the log only.
func (d *Dashboard) internal(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	if d.opts.StoreError != nil {
		d.opts.StoreError()
	}
	d.log.Error("dashboard page failed", "path", r.URL.Path, "err", err)
	d.fail(w, r, http.StatusInternalServerError, "Something failed on the server; the server log says what.")
}
