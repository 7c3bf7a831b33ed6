package fleetlock

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// request is what a lock server received.
type request struct {
	method, path, header, auth, contentType string
	body                                    map[string]any
}

// specServer answers as the FleetLock specification's examples do: 200
// with no body for a lock taken or freed, 409 with
// {"kind":"failed_lock_semaphore_full","value":...} while others hold the
// group's slots. It is a recorder, not a lock: the real server's answers
// are tested in server/integration (TestAgentsRebootOneAtATime).
type specServer struct {
	mu   sync.Mutex // guards reqs and full
	reqs []request
	full int // answer 409 this many more times
	srv  *httptest.Server
}

func newSpecServer(t *testing.T, h http.HandlerFunc) *specServer {
	s := &specServer{}
	if h == nil {
		h = s.answer
	}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		json.Unmarshal(raw, &body)
		s.mu.Lock()
		s.reqs = append(s.reqs, request{r.Method, r.URL.Path, r.Header.Get("fleet-lock-protocol"), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body})
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *specServer) answer(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path == "/base/v1/pre-reboot" && s.full > 0 {
		s.full--
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"kind": "failed_lock_semaphore_full", "value": "semaphore currently full, all 1 slots are locked already"}`)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *specServer) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

// TestRequestsAsTheSpecification: each request is a POST to
// BASE/v1/pre-reboot or BASE/v1/steady-state with fleet-lock-protocol:
// true and the body {"client_params": {"group", "id"}}, nothing more; the
// bearer token only when one is given.
func TestRequestsAsTheSpecification(t *testing.T) {
	s := newSpecServer(t, nil)
	for _, tc := range []struct {
		name, token, wantAuth string
	}{
		{"airlock, no credential", "", ""},
		{"fleet server, device credential", "dc_secret", "Bearer dc_secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.mu.Lock()
			s.reqs = nil
			s.mu.Unlock()
			c, err := New(Options{URL: s.srv.URL + "/base/", ID: "c988d2509fdf5cdcbed39037c56406fb", Group: "workers", Token: tc.token})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.PreReboot(context.Background()); err != nil {
				t.Fatalf("pre-reboot: %v", err)
			}
			if err := c.SteadyState(context.Background()); err != nil {
				t.Fatalf("steady-state: %v", err)
			}
			got := s.requests()
			if len(got) != 2 {
				t.Fatalf("%d requests, want 2", len(got))
			}
			for i, path := range []string{"/base/v1/pre-reboot", "/base/v1/steady-state"} {
				r := got[i]
				if r.method != "POST" || r.path != path || r.header != "true" || r.auth != tc.wantAuth || r.contentType != "application/json" {
					t.Errorf("request %d = %s %s header %q auth %q type %q; want POST %s, true, %q, application/json", i, r.method, r.path, r.header, r.auth, r.contentType, path, tc.wantAuth)
				}
				cp, ok := r.body["client_params"].(map[string]any)
				if len(r.body) != 1 || !ok || len(cp) != 2 || cp["id"] != "c988d2509fdf5cdcbed39037c56406fb" || cp["group"] != "workers" {
					t.Errorf("request %d body = %v, want exactly client_params.id and client_params.group", i, r.body)
				}
			}
		})
	}
}

// TestHeldThenTaken: a 409 failed_lock_semaphore_full is an Error that
// Held, and Retry asks again with backoff until the slot is free.
func TestHeldThenTaken(t *testing.T) {
	s := newSpecServer(t, nil)
	s.full = 3
	c, err := New(Options{URL: s.srv.URL + "/base", ID: "pi-1"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.PreReboot(context.Background())
	var fe *Error
	if !errors.As(err, &fe) || !fe.Held() || fe.Status != 409 || fe.Kind != "failed_lock_semaphore_full" || !strings.Contains(fe.Value, "semaphore currently full") {
		t.Fatalf("first pre-reboot: %v (%+v), want a held Error", err, fe)
	}
	var fails []int
	err = Retry(context.Background(), Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}, c.PreReboot, func(err error, n int, wait time.Duration) bool {
		fails = append(fails, n)
		if wait < 5*time.Millisecond || wait > 40*time.Millisecond {
			t.Errorf("wait %v outside [Min/2, Max]", wait)
		}
		return true
	})
	if err != nil || len(fails) != 2 {
		t.Fatalf("Retry: %v after failures %v, want success after 2", err, fails)
	}
	reqs := s.requests()
	if len(reqs) != 4 || reqs[0].body["client_params"].(map[string]any)["group"] != "default" {
		t.Errorf("requests %+v, want 4, group default", reqs)
	}
	// onFail stops it; a cancelled context stops it.
	s.full = 100
	if err := Retry(context.Background(), Backoff{Min: time.Millisecond}, c.PreReboot, func(error, int, time.Duration) bool { return false }); !errors.As(err, &fe) {
		t.Errorf("stopped Retry = %v, want the 409", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := Retry(ctx, Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond}, c.PreReboot, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Retry past its context = %v", err)
	}
}

// TestHostileServer: what the client does with answers an attacker or a
// broken proxy could give.
func TestHostileServer(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want func(t *testing.T, err error)
	}{
		{"redirect is not followed and carries no credential", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere/v1/pre-reboot" {
				t.Errorf("the redirect was followed, auth %q", r.Header.Get("Authorization"))
				return
			}
			http.Redirect(w, r, "/elsewhere/v1/pre-reboot", http.StatusTemporaryRedirect)
		}, func(t *testing.T, err error) {
			var fe *Error
			if !errors.As(err, &fe) || fe.Status != 307 {
				t.Errorf("err = %v, want the 307 as a failure", err)
			}
		}},
		{"escape codes in the error are escaped", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"kind":"forbidden","value":"\u001b[2Jgone\nfake log line"}`)
		}, func(t *testing.T, err error) {
			if err == nil || strings.ContainsAny(err.Error(), "\x1b\n") {
				t.Errorf("err = %q, want the escape and newline escaped", err)
			}
		}},
		{"a huge error body is read only in part", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"kind":"failed_lock_semaphore_full","value":"`+strings.Repeat("A", 10<<20)+`"}`)
		}, func(t *testing.T, err error) {
			var fe *Error
			if !errors.As(err, &fe) || !fe.Held() || len(err.Error()) > 1024 {
				t.Errorf("err of %d bytes (%+v), want a short held Error", len(err.Error()), fe)
			}
		}},
		{"a 404: no FleetLock here", http.NotFound, func(t *testing.T, err error) {
			if !IsNotFound(err) {
				t.Errorf("err = %v, want IsNotFound", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpecServer(t, tc.h)
			// The client's own timeout: a short one would turn a slow
			// run's answers into timeouts.
			c, err := New(Options{URL: s.srv.URL, ID: "pi-1", Token: "dc_secret"})
			if err != nil {
				t.Fatal(err)
			}
			tc.want(t, c.PreReboot(context.Background()))
		})
	}
}

// TestServerNeverAnswers: a server that holds the request is given up on
// at the client's timeout.
func TestServerNeverAnswers(t *testing.T) {
	s := newSpecServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	c, err := New(Options{URL: s.srv.URL, ID: "pi-1", Token: "dc_secret", HTTPClient: &http.Client{Timeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PreReboot(context.Background()); err == nil || !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("err = %v, want a timeout", err)
	}
}

// TestNewRefuses: options that cannot make a valid request are refused
// before any is sent.
func TestNewRefuses(t *testing.T) {
	for _, o := range []Options{
		{URL: "ftp://lock.example.org", ID: "a"},
		{URL: "https://user:pw@lock.example.org", ID: "a"},
		{URL: "https://lock.example.org/?q=1", ID: "a"},
		{URL: "https://lock.example.org", ID: ""},
		{URL: "https://lock.example.org", ID: strings.Repeat("a", 129)},
		{URL: "https://lock.example.org", ID: "a\x1b[2J"},
		{URL: "https://lock.example.org", ID: "a", Group: "no/slash"},
		{URL: "https://lock.example.org", ID: "a", Group: strings.Repeat("g", 65)},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
