package api

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// memPublisher keeps what the service publishes; err makes it refuse.
type memPublisher struct {
	mu     sync.Mutex
	topics []string
	msgs   [][]byte
	err    error
}

func (p *memPublisher) Publish(topic string, payload []byte, retained bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.topics, p.msgs = append(p.topics, topic), append(p.msgs, payload)
	return nil
}

// pushServer is the API over a real SQLite store with the server's
// signer, one enrolled device that reported an exposed openssl-libs, an
// operator and a read-only token.
type pushServer struct {
	h                  *Server
	pub                *memPublisher
	key                ed25519.PublicKey
	devID, devCred     string
	operator, readOnly string
	otherCred          string
}

func newPushServer(t *testing.T, publisher bool) *pushServer {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pub, priv, err := notice.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := notice.NewSigner(priv, notice.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := &pushServer{pub: &memPublisher{}, key: pub}
	opts := fleet.Options{NoticeKey: pub, Signer: signer}
	if publisher {
		opts.Publisher = p.pub
	}
	svc, err := fleet.New(ctx, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	advs, err := source.Load(ctx, filepath.Join("..", "fleet", "testdata", "almalinux9_ALSA-2023_3722.json"), source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Import(ctx, advs); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		role protocol.Role
		dst  *string
	}{{protocol.RoleOperator, &p.operator}, {protocol.RoleReadOnly, &p.readOnly}} {
		tok, err := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: string(r.role), Role: r.role})
		if err != nil {
			t.Fatal(err)
		}
		*r.dst = tok.Token
	}
	pkgs := []protocol.Package{
		{Name: "almalinux-release", Version: "9.2", Release: "1.el9", Arch: "aarch64"},
		{Name: "openssl-libs", Epoch: "1", Version: "3.0.1", Release: "23.el9_0", Arch: "aarch64"},
	}
	for i, name := range []string{"pi", "other"} {
		et, err := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{})
		if err != nil {
			t.Fatal(err)
		}
		dev, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: et.Token, Name: name,
			Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64"}})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			p.devID, p.devCred = dev.DeviceID, dev.Credential
			if _, err := svc.Report(ctx, dev.DeviceID, &protocol.Report{ID: "r1", Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2"},
				Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}); err != nil {
				t.Fatal(err)
			}
		} else {
			p.otherCred = dev.Credential
		}
	}
	p.h = New(svc, Options{TempDir: t.TempDir(), MaxBody: 4096})
	return p
}

func TestPlanEndpoint(t *testing.T) {
	p := newPushServer(t, true)

	w, _ := do(t, p.h, "GET", protocol.PathPlan, p.devCred, "", "")
	if w.Code != 200 {
		t.Fatalf("GET plan: %d %s", w.Code, w.Body)
	}
	etag := w.Header().Get("ETag")
	if etag == "" || w.Header().Get("Cache-Control") != "no-cache" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET plan headers %v: want an ETag, Cache-Control no-cache, JSON", w.Header())
	}
	v, err := notice.NewVerifier(notice.VerifierOptions{Keys: []ed25519.PublicKey{p.key}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := v.Verify(w.Body.Bytes(), notice.KindPlan, p.devID)
	if err != nil {
		t.Fatalf("the plan does not verify for its device: %v", err)
	}
	var plan protocol.Plan
	if err := json.Unmarshal(n.Body, &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.Advisories) != 1 || plan.Advisories[0].ID != "ALSA-2023:3722" || len(plan.Advisories[0].Packages) != 1 ||
		plan.Advisories[0].Packages[0].Installed != "1:3.0.1-23.el9_0" {
		t.Fatalf("plan = %+v, want ALSA-2023:3722 for the installed openssl-libs 1:3.0.1-23.el9_0", plan)
	}

	tests := []struct {
		name, secret, ifNoneMatch string
		want                      int
	}{
		{"unchanged plan", p.devCred, etag, http.StatusNotModified},
		{"unchanged plan, in a list, weak", p.devCred, `"x", W/` + etag, http.StatusNotModified},
		{"any", p.devCred, "*", http.StatusNotModified},
		{"stale ETag", p.devCred, `"0123"`, http.StatusOK},
		{"another device gets its own (empty) plan", p.otherCred, etag, http.StatusOK},
		{"an admin token may not", p.operator, "", http.StatusForbidden},
		{"no credential", "", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest("GET", protocol.PathPlan, tt.secret, "")
			if tt.ifNoneMatch != "" {
				req.Header.Set("If-None-Match", tt.ifNoneMatch)
			}
			w := serve(p.h, req)
			if w.Code != tt.want {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, tt.want)
			}
			if w.Code == http.StatusNotModified && (w.Body.Len() != 0 || w.Header().Get("ETag") != etag) {
				t.Fatalf("304 with body %q and ETag %q", w.Body, w.Header().Get("ETag"))
			}
		})
	}
}

func TestCommandEndpoint(t *testing.T) {
	p := newPushServer(t, true)
	path := protocol.PathCommand + "pi"
	tests := []struct {
		name, path, secret, body string
		want                     int
		field, words             string
	}{
		{"check", path, p.operator, `{"verb":"check"}`, 200, "", ""},
		{"apply", path, p.operator, `{"verb":"apply","advisories":["ALSA-2023:3722"]}`, 200, "", ""},
		{"unknown verb", path, p.operator, `{"verb":"reboot"}`, 400, "verb", "reboot"},
		{"unknown field", path, p.operator, `{"verb":"check","force":true}`, 400, "force", "unknown field"},
		{"apply an unknown advisory", path, p.operator, `{"verb":"apply","advisories":["ALSA-2023:3722","NOPE-1"]}`, 400, "advisories[1]", "NOPE-1"},
		{"advisories with check", path, p.operator, `{"verb":"check","advisories":["ALSA-2023:3722"]}`, 400, "advisories", "apply"},
		{"unknown device", protocol.PathCommand + "nobody", p.operator, `{"verb":"check"}`, 404, "", "not found"},
		{"read-only token", path, p.readOnly, `{"verb":"check"}`, 403, "", "operator"},
		{"a device", path, p.devCred, `{"verb":"check"}`, 403, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(p.pub.msgs)
			w, e := do(t, p.h, "POST", tt.path, tt.secret, "application/json", tt.body)
			if w.Code != tt.want {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, tt.want)
			}
			if w.Code != 200 {
				if e.Field != tt.field || !strings.Contains(e.Error, tt.words) {
					t.Fatalf("error %+v, want field %q and %q", e, tt.field, tt.words)
				}
				if len(p.pub.msgs) != before {
					t.Fatal("a refused command was published")
				}
				return
			}
			var resp protocol.CommandResponse
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			topic := protocol.DeviceCommandTopic(p.devID)
			if resp.DeviceID != p.devID || resp.Topic != topic || len(p.pub.msgs) != before+1 || p.pub.topics[before] != topic {
				t.Fatalf("response %+v, published on %v; want device %s on %s", resp, p.pub.topics, p.devID, topic)
			}
			v, _ := notice.NewVerifier(notice.VerifierOptions{Keys: []ed25519.PublicKey{p.key}})
			if _, err := v.Verify(p.pub.msgs[before], notice.KindCommand, p.devID); err != nil {
				t.Fatalf("published command does not verify: %v", err)
			}
		})
	}

	p.pub.err = errors.New("connection lost")
	if w, _ := do(t, p.h, "POST", path, p.operator, "application/json", `{"verb":"check"}`); w.Code != 500 {
		t.Fatalf("a refused publish answered %d %s, want 500", w.Code, w.Body)
	}

	noBroker := newPushServer(t, false)
	w, e := do(t, noBroker.h, "POST", path, noBroker.operator, "application/json", `{"verb":"check"}`)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(e.Error, "no MQTT broker") {
		t.Fatalf("no broker: %d %+v, want 503 saying there is no MQTT broker", w.Code, e)
	}
}

func newRequest(method, path, secret, body string) *http.Request {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	return req
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}
