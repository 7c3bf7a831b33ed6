package dashboard_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/dashboard"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres/pgtest"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlstore"
)

// The tests run the dashboard over a real SQLite store holding the real
// AlmaLinux 9 OSV database, with devices enrolled and reported through the
// real fleet service: "pi-kitchen" holds the openssl-libs AlmaLinux 9.0
// shipped (exposed to CVE-2023-2650 through ALSA-2023:3722).

var (
	osvOnce sync.Once
	osvAdvs []advisory.Advisory
	osvErr  error
)

func almaLinux9(t *testing.T) []advisory.Advisory {
	t.Helper()
	path := fixtures.Path(t, "almalinux-osv/almalinux9.jsonl.gz")
	osvOnce.Do(func() { osvAdvs, osvErr = source.Load(context.Background(), path, source.Options{}) })
	if osvErr != nil {
		t.Fatal(osvErr)
	}
	return osvAdvs
}

var alma92 = protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64", Hostname: "kitchen", AgentVersion: "test"}

var kitchenPackages = []protocol.Package{
	{Name: "openssl-libs", Epoch: "1", Version: "3.0.1", Release: "23.el9_0", Arch: "aarch64"},
	{Name: "almalinux-release", Version: "9.2", Release: "1.el9", Arch: "aarch64"},
	{Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "aarch64"},
}

// env is one dashboard over its own store.
type env struct {
	st   *sqlstore.Store
	svc  *fleet.Service
	dash *dashboard.Dashboard
	srv  *httptest.Server
	// tokens by role
	tokens map[protocol.Role]string
	now    *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newEnv(t *testing.T, secure bool) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "rpmfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	return newEnvOn(t, st, secure)
}

// newEnvOn is newEnv over the store st.
func newEnvOn(t *testing.T, st *sqlstore.Store, secure bool) *env {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() { st.Close() })
	svc, err := fleet.New(ctx, st, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Import(ctx, almaLinux9(t)); err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, svc: svc, tokens: map[protocol.Role]string{}, now: &clock{t: time.Now()}}
	for _, role := range []protocol.Role{protocol.RoleReadOnly, protocol.RoleOperator, protocol.RoleAdmin} {
		tok, err := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: "t-" + string(role), Role: role})
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = tok.Token
	}
	e.dash, err = dashboard.New(dashboard.Options{Store: st, Revoker: svc, Rollouts: svc, Audit: svc, Secure: secure, Now: e.now.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.dash)
	t.Cleanup(e.srv.Close)
	return e
}

// enroll enrols a device and sends its first full report of pkgs, with
// cycles.
func (e *env) enroll(t *testing.T, name string, labels map[string]string, info protocol.DeviceInfo, pkgs []protocol.Package, cycles ...protocol.CycleResult) string {
	t.Helper()
	ctx := context.Background()
	tok, err := e.svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{Uses: 1, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Name: name, Device: info})
	if err != nil {
		t.Fatal(err)
	}
	if pkgs != nil {
		rep := &protocol.Report{ID: "r1", Time: time.Now().UTC(), Device: info, Cycles: cycles,
			Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}
		if _, err := e.svc.Report(ctx, resp.DeviceID, rep); err != nil {
			t.Fatal(err)
		}
	}
	return resp.DeviceID
}

// browser is a client with a cookie jar, as a browser keeps cookies.
type browser struct {
	t   *testing.T
	e   *env
	hc  *http.Client
	jar *cookiejar.Jar
}

func (e *env) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, e: e, jar: jar, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// get fetches path and returns the status, the body and the response.
func (b *browser) get(path string) (int, string, *http.Response) {
	b.t.Helper()
	resp, err := b.hc.Get(b.e.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp
}

// post posts a form to path, as a same-origin form would be (the
// browser's Sec-Fetch-Site), unless hdr overrides it.
func (b *browser) post(path string, form url.Values, hdr ...string) (int, string, *http.Response) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp
}

func (b *browser) login(role protocol.Role) {
	b.t.Helper()
	code, body, resp := b.post("/login", url.Values{"token": {b.e.tokens[role]}})
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		b.t.Fatalf("login as %s: %d %s\n%s", role, code, resp.Header.Get("Location"), body)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token the page at path carries.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	_, body, _ := b.get(path)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("%s carries no CSRF field:\n%s", path, body)
	}
	return m[1]
}

func TestLoginGivesAStrictHttpOnlySessionCookie(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secure bool
		cookie string
	}{
		{"plain HTTP on loopback", false, "rpmfleet-session"},
		{"under TLS", true, "__Host-rpmfleet-session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.secure)
			b := e.browser(t)
			if code, _, resp := b.get("/"); code != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
				t.Fatalf("GET / without a session = %d to %q, want 303 to /login", code, resp.Header.Get("Location"))
			}
			_, _, resp := b.post("/login", url.Values{"token": {e.tokens[protocol.RoleReadOnly]}})
			var c *http.Cookie
			for _, k := range resp.Cookies() {
				if k.Name == tc.cookie {
					c = k
				}
			}
			if c == nil {
				t.Fatalf("login set no %s cookie: %v", tc.cookie, resp.Header["Set-Cookie"])
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != tc.secure || c.Path != "/" {
				t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Secure=%v, Path=/", c, tc.secure)
			}
			// 256 random bits, base64url without padding.
			if len(c.Value) != 43 {
				t.Errorf("session value is %d characters, want 43 (256 bits)", len(c.Value))
			}
			if strings.Contains(resp.Header.Get("Set-Cookie"), e.tokens[protocol.RoleReadOnly]) {
				t.Errorf("the cookie carries the admin token")
			}
		})
	}
}

func TestLoginRefusesBadTokens(t *testing.T) {
	e := newEnv(t, false)
	for _, tc := range []struct {
		name, token, want string
	}{
		{"unknown token", "rfa_nosuchtoken", "Unknown or revoked token"},
		{"empty token", "", "Give an admin token"},
		{"huge token", strings.Repeat("a", 300), "Give an admin token"},
		{"device credential", "", ""}, // filled below
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "device credential" {
				tok, _ := e.svc.CreateEnrollToken(context.Background(), protocol.EnrollTokenCreateRequest{})
				resp, err := e.svc.Enroll(context.Background(), protocol.EnrollRequest{Token: tok.Token, Name: "cred-holder"})
				if err != nil {
					t.Fatal(err)
				}
				tc.token, tc.want = resp.Credential, "Unknown or revoked token"
			}
			b := e.browser(t)
			code, body, resp := b.post("/login", url.Values{"token": {tc.token}})
			if code != http.StatusUnauthorized || !strings.Contains(body, tc.want) || len(resp.Cookies()) != 0 {
				t.Errorf("login = %d, cookies %v; want 401 saying %q and no cookie\n%s", code, resp.Cookies(), tc.want, body)
			}
		})
	}
}

func TestLoginFailuresAreRateLimited(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser(t)
	for i := range dashboard.MaxLoginFailures {
		if code, _, _ := b.post("/login", url.Values{"token": {fmt.Sprintf("wrong-%d", i)}}); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, code)
		}
	}
	// Even the right token is refused now, until the window ends.
	code, body, resp := b.post("/login", url.Values{"token": {e.tokens[protocol.RoleAdmin]}})
	if code != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Too many failed logins") {
		t.Fatalf("login after %d failures = %d (Retry-After %q), want 429 with Retry-After", dashboard.MaxLoginFailures, code, resp.Header.Get("Retry-After"))
	}
	e.now.add(dashboard.LoginWindow)
	b.login(protocol.RoleAdmin)
}

func TestSecurityHeadersOnEveryPage(t *testing.T) {
	e := newEnv(t, true)
	e.enroll(t, "pi-kitchen", nil, alma92, kitchenPackages)
	b := e.browser(t)
	b.login(protocol.RoleReadOnly)
	for _, path := range []string{"/login", "/", "/devices", "/device?name=pi-kitchen", "/cve?id=CVE-2023-2650", "/advisories", "/advisory?id=ALSA-2023:3722", "/rollouts", "/no-such-page", "/static/style.css"} {
		t.Run(path, func(t *testing.T) {
			_, _, resp := b.get(path)
			h := resp.Header
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "style-src 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("CSP %q allows some script or inline code", csp)
			}
			if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Strict-Transport-Security") == "" {
				t.Errorf("headers %v: want X-Frame-Options DENY, nosniff and HSTS under TLS", h)
			}
		})
	}
}

func TestPagesHoldNoScriptAndNothingFromElsewhere(t *testing.T) {
	e := newEnv(t, false)
	e.enroll(t, "pi-kitchen", map[string]string{"site": "lab"}, alma92, kitchenPackages)
	b := e.browser(t)
	b.login(protocol.RoleOperator)
	ref := regexp.MustCompile(`(?:href|src|action)="([^"]*)"`)
	for _, path := range []string{"/", "/devices", "/device?name=pi-kitchen", "/cve?id=CVE-2023-2650", "/advisories", "/advisory?id=ALSA-2023:3722", "/rollouts"} {
		_, body, _ := b.get(path)
		if strings.Contains(strings.ToLower(body), "<script") || strings.Contains(body, " style=") || strings.Contains(body, " on") && regexp.MustCompile(`\son[a-z]+=`).MatchString(body) {
			t.Errorf("%s holds a script, an inline style or an event handler", path)
		}
		for _, m := range ref.FindAllStringSubmatch(body, -1) {
			if !strings.HasPrefix(m[1], "/") || strings.HasPrefix(m[1], "//") {
				t.Errorf("%s refers to %q, outside the server", path, m[1])
			}
		}
	}
}

func TestDeviceWordsAreEscaped(t *testing.T) {
	e := newEnv(t, false)
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	info := alma92
	info.Hostname, info.Kernel = evil, `"><svg onload=alert(3)>`
	e.enroll(t, "pi-evil", map[string]string{"note": `<b>bold</b>`}, info, kitchenPackages)
	// An advisory source is outside input too: a title with markup.
	adv := advisory.Advisory{ID: "TEST-2026:0001", Type: "security", Severity: advisory.Critical, Title: `<iframe src="//evil.example">`,
		CVEs: []string{"CVE-2026-0001"}, Ecosystem: "AlmaLinux:9",
		Packages: []advisory.Package{{Name: "bash", EVR: rpmver.EVR{Version: "9.9", Release: "1.el9"}, Arch: "aarch64"}}}
	if _, err := e.svc.Import(context.Background(), []advisory.Advisory{adv}); err != nil {
		t.Fatal(err)
	}
	b := e.browser(t)
	b.login(protocol.RoleReadOnly)
	for _, path := range []string{"/device?name=pi-evil", "/devices", "/advisories", "/advisory?id=TEST-2026:0001", "/cve?id=CVE-2026-0001"} {
		_, body, _ := b.get(path)
		for _, raw := range []string{"<script>alert", "<img src=x", "<svg onload", "<b>bold", `<iframe src=`} {
			if strings.Contains(body, raw) {
				t.Errorf("%s carries %q unescaped", path, raw)
			}
		}
	}
	_, body, _ := b.get("/device?name=pi-evil")
	if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the device page does not show the host name, escaped")
	}
	_, body, _ = b.get("/advisory?id=TEST-2026:0001")
	if !strings.Contains(body, "&lt;iframe src=&#34;//evil.example&#34;&gt;") {
		t.Errorf("the advisory page does not show the title, escaped:\n%s", body)
	}
}

func TestRevokeNeedsAnOperatorAndTheFormsCSRFToken(t *testing.T) {
	e := newEnv(t, false)
	e.enroll(t, "pi-kitchen", nil, alma92, kitchenPackages)
	revoked := func() bool {
		d, err := e.st.Device(context.Background(), "pi-kitchen")
		if err != nil {
			t.Fatal(err)
		}
		return d.Revoked != nil
	}

	ro := e.browser(t)
	ro.login(protocol.RoleReadOnly)
	if _, body, _ := ro.get("/device?name=pi-kitchen"); strings.Contains(body, `action="/device/revoke"`) {
		t.Errorf("a read-only session is shown the revoke form")
	}
	roCSRF := ro.csrf("/device?name=pi-kitchen") // the logout form's

	op := e.browser(t)
	op.login(protocol.RoleOperator)
	opCSRF := op.csrf("/device?name=pi-kitchen")
	form := func(csrf string) url.Values {
		return url.Values{"name": {"pi-kitchen"}, "confirm": {"yes"}, "csrf": {csrf}}
	}
	for _, tc := range []struct {
		name string
		b    *browser
		form url.Values
		hdr  []string
		code int
	}{
		{"read-only with its own token", ro, form(roCSRF), nil, http.StatusForbidden},
		{"operator without the token", op, url.Values{"name": {"pi-kitchen"}, "confirm": {"yes"}}, nil, http.StatusForbidden},
		{"operator with another session's token", op, form(roCSRF), nil, http.StatusForbidden},
		{"operator, sent from another site", op, form(opCSRF), []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"operator, Origin of another site", op, form(opCSRF), []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}, http.StatusForbidden},
		{"no session at all", e.browser(t), form(opCSRF), nil, http.StatusUnauthorized},
		{"operator, unconfirmed", op, url.Values{"name": {"pi-kitchen"}, "csrf": {opCSRF}}, nil, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := tc.b.post("/device/revoke", tc.form, tc.hdr...)
			if code != tc.code {
				t.Errorf("revoke = %d, want %d\n%s", code, tc.code, body)
			}
			if revoked() {
				t.Fatalf("the device was revoked")
			}
		})
	}
	code, _, resp := op.post("/device/revoke", form(opCSRF))
	if code != http.StatusSeeOther || !revoked() {
		t.Fatalf("operator's revoke = %d (to %q), revoked %v; want 303 and the device revoked", code, resp.Header.Get("Location"), revoked())
	}
	if _, body, _ := op.get("/device?name=pi-kitchen"); !strings.Contains(body, "revoked") || strings.Contains(body, `action="/device/revoke"`) {
		t.Errorf("the revoked device's page does not say so, or still offers the form")
	}
	// The revocation is in the audit log, by the operator's token; the
	// refused attempts above changed nothing and are not.
	log, err := e.svc.AuditLog(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 1 || log[0].Action != "device.revoke" || log[0].Target != "pi-kitchen" || log[0].Actor != "t-operator" || log[0].Status != 200 {
		t.Errorf("audit log = %+v, want one device.revoke of pi-kitchen by t-operator", log)
	}
}

func TestSessionsEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(e *env, b *browser)
	}{
		{"logout", func(e *env, b *browser) {
			if code, _, _ := b.post("/logout", url.Values{"csrf": {b.csrf("/")}}); code != http.StatusSeeOther {
				t.Fatalf("logout = %d", code)
			}
		}},
		{"idle timeout", func(e *env, b *browser) { e.now.add(dashboard.DefaultIdleTimeout) }},
		{"session lifetime, however busy", func(e *env, b *browser) {
			for range 9 {
				e.now.add(dashboard.DefaultSessionTTL / 9)
				b.get("/")
			}
			e.now.add(time.Minute)
		}},
		{"token revoked", func(e *env, b *browser) {
			toks, _ := e.st.ListTokens(context.Background())
			for _, tk := range toks {
				if tk.Role == protocol.RoleOperator {
					e.st.RevokeToken(context.Background(), tk.ID, time.Now())
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, false)
			b := e.browser(t)
			b.login(protocol.RoleOperator)
			saved, _ := url.Parse(e.srv.URL)
			cookies := b.jar.Cookies(saved)
			if code, _, _ := b.get("/"); code != http.StatusOK {
				t.Fatalf("GET / after login = %d", code)
			}
			tc.end(e, b)
			// The old cookie, replayed, no longer works.
			b.jar.SetCookies(saved, cookies)
			if code, _, resp := b.get("/"); code != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
				t.Errorf("GET / after the session ended = %d to %q, want 303 to /login", code, resp.Header.Get("Location"))
			}
		})
	}
}

func TestDevicePageShowsEverything(t *testing.T) {
	e := newEnv(t, false)
	when := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	cycle := protocol.CycleResult{Advisories: []string{"ALSA-2023:3722"}, Outcome: protocol.OutcomeRolledBack,
		Error: "health check sshd failed", Started: when, Finished: when.Add(time.Minute)}
	e.enroll(t, "pi-kitchen", map[string]string{"site": "lab"}, alma92, kitchenPackages, cycle)
	b := e.browser(t)
	b.login(protocol.RoleReadOnly)
	code, body, _ := b.get("/device?name=pi-kitchen")
	if code != http.StatusOK {
		t.Fatalf("device page = %d\n%s", code, body)
	}
	for _, want := range []string{
		"ALSA-2023:3722", "1:3.0.1-23.el9_0", "1:3.0.7-16.el9_2", // pending, with installed and fixed
		"site=lab", "rolled-back", "health check sshd failed", // labels, history
		"bash", "5.1.8-6.el9_1", "almalinux-release", // packages
		"3 installed",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("device page lacks %q", want)
		}
	}
	if code, _, _ := b.get("/device?name=no-such-device"); code != http.StatusNotFound {
		t.Errorf("unknown device = %d, want 404", code)
	}
}

func TestCVESearch(t *testing.T) {
	e := newEnv(t, false)
	e.enroll(t, "pi-kitchen", nil, alma92, kitchenPackages)
	patched := append([]protocol.Package(nil), kitchenPackages...)
	patched[0].Version, patched[0].Release = "3.0.7", "16.el9_2"
	e.enroll(t, "pi-garage", nil, alma92, patched)
	b := e.browser(t)
	b.login(protocol.RoleReadOnly)
	for _, tc := range []struct {
		name, query string
		code        int
		want        []string
	}{
		{"exact", "CVE-2023-2650", 200, []string{"pi-kitchen", "ALSA-2023:3722", "1 devices exposed", "pi-garage"}},
		{"lower case and spaces", "  cve-2023-2650 ", 200, []string{"pi-kitchen", "1 devices exposed"}},
		{"unknown CVE", "CVE-1999-0001", 200, []string{"No device is exposed to CVE-1999-0001"}},
		{"not a CVE id", "<script>", 400, []string{"not a CVE id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := b.get("/cve?" + url.Values{"id": {tc.query}}.Encode())
			if code != tc.code {
				t.Fatalf("cve %q = %d, want %d", tc.query, code, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("cve %q page lacks %q", tc.query, w)
				}
			}
		})
	}
}

func TestDeviceListPagesAndSorts(t *testing.T) {
	e := newEnv(t, false)
	// 120 devices: every third exposed (the old openssl), the rest patched.
	patched := append([]protocol.Package(nil), kitchenPackages...)
	patched[0].Version, patched[0].Release = "3.0.7", "16.el9_2"
	for i := range 120 {
		pkgs := patched
		if i%3 == 0 {
			pkgs = kitchenPackages
		}
		e.enroll(t, fmt.Sprintf("dev-%03d", i), nil, alma92, pkgs)
	}
	b := e.browser(t)
	b.login(protocol.RoleReadOnly)
	rows := regexp.MustCompile(`<a href="/device\?name=([^"]+)">`)
	names := func(body string) []string {
		var out []string
		for _, m := range rows.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	for _, tc := range []struct {
		name, query string
		first, last string
		count       int
		text        string
	}{
		{"by name, page 1", "", "dev-000", "dev-049", 50, "page 1 of 3"},
		{"by name, page 3", "page=3", "dev-100", "dev-119", 20, "page 3 of 3"},
		{"past the last page", "page=99", "dev-100", "dev-119", 20, "page 3 of 3"},
		{"by name, descending", "sort=name&order=desc", "dev-119", "dev-070", 50, "120 devices"},
		{"most exposed first", "sort=affected", "dev-000", "dev-117", 40, ""},
		{"exposed to the CVE", "exposed_to=cve-2023-2650", "dev-000", "dev-117", 40, "40 devices"},
		{"name filter", "q=dev-11", "dev-110", "dev-119", 10, "10 devices"},
		{"unknown sort falls back to name", "sort=bogus", "dev-000", "dev-049", 50, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := b.get("/devices?" + tc.query)
			got := names(body)
			if code != 200 || len(got) < 1 {
				t.Fatalf("devices?%s = %d, %d rows", tc.query, code, len(got))
			}
			if tc.name == "most exposed first" {
				// The exposed come first: the first 40 rows (of 50).
				got = got[:40]
			}
			if got[0] != tc.first || got[len(got)-1] != tc.last || len(got) != tc.count {
				t.Errorf("devices?%s = %s..%s (%d), want %s..%s (%d)", tc.query, got[0], got[len(got)-1], len(got), tc.first, tc.last, tc.count)
			}
			if !strings.Contains(body, tc.text) {
				t.Errorf("devices?%s lacks %q", tc.query, tc.text)
			}
		})
	}
	if code, _, _ := b.get("/devices?exposed_to=notacve"); code != http.StatusBadRequest {
		t.Errorf("exposed_to=notacve = %d, want 400", code)
	}
}

func TestOverviewChartsExposureOverTime(t *testing.T) {
	e := newEnv(t, false)
	e.enroll(t, "pi-kitchen", nil, alma92, kitchenPackages)
	ctx := context.Background()
	// Three days recorded by the history, and today live.
	today := e.now.Now().UTC()
	for i := 3; i >= 1; i-- {
		if err := dashboard.RecordOnce(ctx, e.st, e.st, today.AddDate(0, 0, -i)); err != nil {
			t.Fatal(err)
		}
	}
	days, err := e.st.ExposureDays(ctx, today.AddDate(0, 0, -10))
	if err != nil || len(days) != 3 || days[0].Devices != 1 {
		t.Fatalf("exposure days = %+v, %v; want 3 days of 1 device", days, err)
	}
	b := e.browser(t)
	b.login(protocol.RoleReadOnly)
	_, body, _ := b.get("/")
	poly := regexp.MustCompile(`<polyline class="line sev-([a-z]+)" fill="none" points="([^"]*)"/>`)
	ms := poly.FindAllStringSubmatch(body, -1)
	if len(ms) != 4 {
		t.Fatalf("overview has %d chart lines, want 4 (one per severity)\n%s", len(ms), body)
	}
	for _, m := range ms {
		if n := len(strings.Fields(m[2])); n != 4 {
			t.Errorf("line %s has %d points, want 4 (3 recorded days and today)", m[1], n)
		}
	}
	for _, want := range []string{`id="devices-count">1<`, "0.0%", "Exposure over time"} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	var _ store.ExposureHistory = e.st
}

// TestDeviceSummariesAnswerAsDevices: the device list's one-aggregate query
// (sqlstore's DeviceSummaries) gives what the API's Devices gives, for
// exposed, patched, pending-reboot, revoked, never-reported and labelled
// devices, with and without the CVE filter.
func TestDeviceSummariesAnswerAsDevices(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { deviceSummariesAnswerAsDevices(t, newEnv(t, false)) })
	t.Run("PostgreSQL", func(t *testing.T) {
		pg, err := pgtest.Start()
		if err != nil {
			t.Fatalf("start PostgreSQL (run make deps): %v", err)
		}
		t.Cleanup(func() { pg.Stop() })
		st, err := postgres.Open(context.Background(), pg.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		deviceSummariesAnswerAsDevices(t, newEnvOn(t, st, false))
	})
}

func deviceSummariesAnswerAsDevices(t *testing.T, e *env) {
	patched := append([]protocol.Package(nil), kitchenPackages...)
	patched[0].Version, patched[0].Release = "3.0.7", "16.el9_2"
	e.enroll(t, "pi-kitchen", map[string]string{"site": "lab"}, alma92, kitchenPackages)
	e.enroll(t, "pi-garage", nil, alma92, patched)
	e.enroll(t, "pi-new", nil, alma92, nil)
	e.enroll(t, "pi-lost", nil, alma92, kitchenPackages)
	if _, err := e.svc.RevokeDevice(context.Background(), "pi-lost"); err != nil {
		t.Fatal(err)
	}
	// pi-shed applied the openssl fix and waits for a reboot.
	when := time.Now().UTC()
	id := e.enroll(t, "pi-shed", nil, alma92, kitchenPackages)
	rep := &protocol.Report{ID: "r2", Time: when, Device: alma92, RebootPending: true,
		Cycles: []protocol.CycleResult{{Advisories: []string{"ALSA-2023:3722"}, Outcome: protocol.OutcomeApplied, RebootNeeded: true,
			Before: kitchenPackages[:1], After: patched[:1], Started: when, Finished: when}},
		Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: patched, Digest: protocol.InventoryDigest(patched)}}
	if _, err := e.svc.Report(context.Background(), id, rep); err != nil {
		t.Fatal(err)
	}
	// DevicePage, walked two devices at a time, sorts as Go sorts Devices.
	all, err := e.st.Devices(context.Background(), store.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	key := map[string]func(d protocol.DeviceSummary) int64{
		"name":      func(protocol.DeviceSummary) int64 { return 0 },
		"last_seen": func(d protocol.DeviceSummary) int64 { return d.LastSeen.UnixMicro() },
		"enrolled":  func(d protocol.DeviceSummary) int64 { return d.Enrolled.UnixMicro() },
		"packages":  func(d protocol.DeviceSummary) int64 { return int64(d.Packages) },
		"affected":  func(d protocol.DeviceSummary) int64 { return int64(d.Affected) },
		"severity": func(d protocol.DeviceSummary) int64 {
			if d.WorstSeverity == "" {
				return -1
			}
			s, _ := advisory.ParseSeverity(d.WorstSeverity)
			return int64(s)
		},
	}
	for _, sortKey := range store.DeviceSorts {
		for _, desc := range []bool{false, true} {
			want := slices.Clone(all)
			slices.SortStableFunc(want, func(a, b protocol.DeviceSummary) int {
				c := cmp.Compare(key[sortKey](a), key[sortKey](b))
				if sortKey == "name" {
					c = strings.Compare(a.Name, b.Name)
				}
				if desc {
					c = -c
				}
				if c == 0 {
					c = strings.Compare(a.Name, b.Name)
				}
				return c
			})
			var got []protocol.DeviceSummary
			for off := 0; off < len(all)+2; off += 2 {
				page, total, err := e.st.DevicePage(context.Background(), store.DeviceQuery{Sort: sortKey, Desc: desc, Offset: off, Limit: 2})
				if err != nil || total != len(all) {
					t.Fatalf("DevicePage sort %s: total %d, %v", sortKey, total, err)
				}
				got = append(got, page...)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DevicePage by %s (desc %v) = %v, want %v", sortKey, desc, names(got), names(want))
			}
		}
	}
	if page, total, _ := e.st.DevicePage(context.Background(), store.DeviceQuery{NameContains: "_", Limit: 10}); total != 0 || len(page) != 0 {
		t.Errorf("a name holding _ matched %v: the LIKE wildcard was not escaped", names(page))
	}

	for _, f := range []store.DeviceFilter{{}, {ExposedTo: "CVE-2023-2650"}, {Labels: map[string]string{"site": "lab"}}} {
		want, err := e.st.Devices(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.st.DeviceSummaries(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("filter %+v:\nDeviceSummaries = %+v\nDevices         = %+v", f, got, want)
		}
		if f.ExposedTo == "" && len(f.Labels) == 0 {
			reboot := false
			for _, d := range got {
				reboot = reboot || d.Name == "pi-shed" && d.PendingReboot > 0
			}
			if len(got) != 5 || !reboot {
				t.Errorf("devices = %+v, want 5 with pi-shed pending a reboot", got)
			}
		}
	}
}

func names(ds []protocol.DeviceSummary) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}
