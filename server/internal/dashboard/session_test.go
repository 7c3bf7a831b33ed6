package dashboard

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// TestSessionsBounded fills the session table past MaxSessions: it never
// holds more, and the least recently used session is the one that goes.
func TestSessionsBounded(t *testing.T) {
	s := newSessions(DefaultSessionTTL, DefaultIdleTimeout)
	now := time.Now()
	first := s.create(store.Hash{1}, now)
	second := s.create(store.Hash{2}, now.Add(time.Millisecond))
	// The first is used again, so the second is now the least recent.
	if s.get(first, now.Add(2*time.Millisecond)) == nil {
		t.Fatal("a new session is not found")
	}
	for i := range MaxSessions + 10 {
		s.create(store.Hash{3}, now.Add(time.Duration(i+3)*time.Millisecond))
		if n := s.count(); n > MaxSessions {
			t.Fatalf("%d sessions held, want at most %d", n, MaxSessions)
		}
	}
	if s.get(second, now.Add(time.Second)) != nil {
		t.Errorf("the least recently used session survived the table filling up")
	}
}

// TestLoginsInFlightCapped: with MaxLoggingIn logins being checked, one
// more is answered 503 at once, before its token is looked up.
func TestLoginsInFlightCapped(t *testing.T) {
	d := &Dashboard{loggingIn: make(chan struct{}, MaxLoggingIn), opts: Options{Now: time.Now}}
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	d.pages = pages
	for range MaxLoggingIn {
		d.loggingIn <- struct{}{}
	}
	req := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"token": {"rfa_x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	d.login(w, req) // d.st is nil: a lookup would panic
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("login with %d in flight = %d (Retry-After %q), want 503 with Retry-After", MaxLoggingIn, w.Code, w.Header().Get("Retry-After"))
	}
}
