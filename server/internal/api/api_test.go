package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// newTestServer serves the API over a real SQLite store in a temporary
// folder and returns it with an admin token.
func newTestServer(t testing.TB) (*Server, string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := fleet.New(ctx, st, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: "test", Role: protocol.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	return New(svc, Options{TempDir: t.TempDir(), MaxBody: 4096, MaxImport: 1 << 20}), tok.Token
}

func do(t testing.TB, h http.Handler, method, path, secret, contentType, body string) (*httptest.ResponseRecorder, protocol.Error) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var e protocol.Error
	if w.Code/100 != 2 && strings.HasPrefix(path, protocol.PathPrefix) {
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("%s %s: %d with body %q, not a protocol.Error", method, path, w.Code, w.Body)
		}
	}
	return w, e
}

func TestRequests(t *testing.T) {
	h, admin := newTestServer(t)
	tests := []struct {
		name                      string
		method, path, ctype, body string
		secret                    string
		want                      int
		field, words              string
	}{
		{name: "version header and dashboard", method: "GET", path: "/", want: 200},
		{name: "unknown endpoint", method: "GET", path: protocol.PathPrefix + "/nope", secret: admin, want: 404, words: "no such endpoint"},
		{name: "no token", method: "GET", path: protocol.PathSummary, want: 401, words: "Bearer"},
		{name: "unknown token", method: "GET", path: protocol.PathSummary, secret: "rfa_x", want: 401, words: "unknown"},
		{name: "summary", method: "GET", path: protocol.PathSummary, secret: admin, want: 200},
		{name: "unknown advisory", method: "GET", path: protocol.PathAdvisory + "ALSA-1:1", secret: admin, want: 404},
		{name: "bad severity", method: "GET", path: protocol.PathAdvisories + "?severity=huge", secret: admin, want: 400, field: "severity"},
		{name: "bad label", method: "GET", path: protocol.PathDevices + "?label=nokey", secret: admin, want: 400, field: "label"},
		{name: "enrol with nothing", method: "POST", path: protocol.PathEnroll, body: `{}`, want: 400, field: "token"},
		{name: "enrol with a bad token", method: "POST", path: protocol.PathEnroll, body: `{"token":"rfe_x","name":"a"}`, want: 401, field: "token"},
		{name: "enrol, wrong type", method: "POST", path: protocol.PathEnroll, body: `{"token":1}`, want: 400, field: "token"},
		{name: "enrol, nested wrong type", method: "POST", path: protocol.PathEnroll, body: `{"token":"t","device":{"arch":[]}}`, want: 400, field: "device.arch"},
		{name: "enrol, trailing data", method: "POST", path: protocol.PathEnroll, body: `{"token":"t"} {}`, want: 400, words: "after the JSON value"},
		{name: "enrol, empty body", method: "POST", path: protocol.PathEnroll, want: 400, words: "empty"},
		{name: "enrol, too big", method: "POST", path: protocol.PathEnroll, body: `{"token":"` + strings.Repeat("x", 5000) + `"}`, want: 413},
		{name: "token with unknown role", method: "POST", path: protocol.PathTokens, secret: admin, body: `{"name":"x","role":"root"}`, want: 400, field: "role", words: "role"},
		{name: "import, not an advisory file", method: "POST", path: protocol.PathImport, secret: admin, ctype: "application/octet-stream", body: "hello", want: 400, words: "upload"},
		{name: "import, empty", method: "POST", path: protocol.PathImport, secret: admin, ctype: "application/octet-stream", want: 400, words: "empty"},
		{name: "import, too big", method: "POST", path: protocol.PathImport, secret: admin, ctype: "application/octet-stream", body: strings.Repeat("x", 2<<20), want: 413},
		{name: "import, file URL refused", method: "POST", path: protocol.PathImport, secret: admin, ctype: "application/json", body: `{"urls":["file:///etc/passwd"]}`, want: 400, field: "urls[0]"},
		{name: "import, no URLs", method: "POST", path: protocol.PathImport, secret: admin, ctype: "application/json", body: `{"urls":[]}`, want: 400, field: "urls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, e := do(t, h, tt.method, tt.path, tt.secret, tt.ctype, tt.body)
			if w.Code != tt.want {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, w.Code, w.Body, tt.want)
			}
			if w.Header().Get(protocol.VersionHeader) != strconv.Itoa(protocol.Version) {
				t.Errorf("no %s header", protocol.VersionHeader)
			}
			if e.Field != tt.field {
				t.Errorf("field = %q (%s), want %q", e.Field, e.Error, tt.field)
			}
			if !strings.Contains(e.Error, tt.words) {
				t.Errorf("error %q does not say %q", e.Error, tt.words)
			}
			if strings.Contains(w.Body.String(), admin) {
				t.Errorf("the answer echoes the admin token")
			}
		})
	}
}

func TestBadField(t *testing.T) {
	tests := []struct{ msg, want string }{
		{`fleet: bad request: report "r" of device d: store: bad report: inventory.digest: "0000" is not 64 lower-case hex digits`, "inventory.digest"},
		{`fleet: bad request: name: neither a name nor a hostname given`, "name"},
		{`fleet: bad request: the whole thing is wrong`, ""},
		{`store: not found`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := badField(tt.msg); got != tt.want {
				t.Errorf("badField(%q) = %q, want %q", tt.msg, got, tt.want)
			}
		})
	}
}

// FuzzDecode holds the request decoder to its contract on any body: no
// panic, and every refusal a 400 or 413 with a message.
func FuzzDecode(f *testing.F) {
	h, _ := newTestServer(f)
	for _, s := range []string{`{}`, `{"token":1}`, `{"token":"x","device":{"arch":5}}`, `{"a":`, `[]`, `null`, "\x00", `{"token":"t"}{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", protocol.PathEnroll, strings.NewReader(body))
		w := httptest.NewRecorder()
		var v protocol.EnrollRequest
		if h.decode(w, req, 4096, &v) {
			return
		}
		if w.Code != 400 && w.Code != 413 {
			t.Fatalf("decode(%q) answered %d", body, w.Code)
		}
		var e protocol.Error
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("decode(%q) answered %q", body, w.Body)
		}
	})
}
