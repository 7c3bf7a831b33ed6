package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Session limits.
const (
	// DefaultSessionTTL is how long a session lasts from its login.
	DefaultSessionTTL = 8 * time.Hour
	// DefaultIdleTimeout ends a session unused for this long.
	DefaultIdleTimeout = time.Hour
	// MaxSessions bounds the sessions held; a login beyond it ends the
	// least recently used one.
	MaxSessions = 10000
)

// session is one logged-in browser. It holds the hash of the admin token
// it logged in with, which is looked up again on every request, so a
// revoked token ends its sessions at once.
type session struct {
	token    store.Hash
	csrf     string
	created  time.Time
	lastUsed time.Time
}

// sessions holds the sessions in memory, keyed by the SHA-256 of the
// cookie's value: a memory dump shows no cookie that would log in. A
// restart logs everyone out.
type sessions struct {
	ttl, idle time.Duration

	mu sync.Mutex // guards m
	m  map[[sha256.Size]byte]*session
}

func newSessions(ttl, idle time.Duration) *sessions {
	return &sessions{ttl: ttl, idle: idle, m: map[[sha256.Size]byte]*session{}}
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails; see crypto/rand.Read
	return base64.RawURLEncoding.EncodeToString(b)
}

// create makes a session for the admin token with hash tok and returns
// the cookie value.
func (s *sessions) create(tok store.Hash, now time.Time) string {
	value := randomToken()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= MaxSessions {
		s.expire(now)
	}
	if len(s.m) >= MaxSessions {
		var oldest [sha256.Size]byte
		first := true
		for k, v := range s.m {
			if first || v.lastUsed.Before(s.m[oldest].lastUsed) {
				oldest, first = k, false
			}
		}
		delete(s.m, oldest)
	}
	s.m[sha256.Sum256([]byte(value))] = &session{token: tok, csrf: randomToken(), created: now, lastUsed: now}
	return value
}

// get returns the live session of a cookie value and marks it used; nil
// for an unknown or expired one (which is forgotten).
func (s *sessions) get(value string, now time.Time) *session {
	if value == "" {
		return nil
	}
	key := sha256.Sum256([]byte(value))
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[key]
	if !ok {
		return nil
	}
	if s.dead(se, now) {
		delete(s.m, key)
		return nil
	}
	se.lastUsed = now
	c := *se
	return &c
}

// end forgets the session of a cookie value.
func (s *sessions) end(value string) {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(value)))
	s.mu.Unlock()
}

// count returns how many sessions are held.
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *sessions) dead(se *session, now time.Time) bool {
	return now.Sub(se.created) >= s.ttl || now.Sub(se.lastUsed) >= s.idle || now.Before(se.created)
}

// expire forgets every dead session; s.mu is held.
func (s *sessions) expire(now time.Time) {
	for k, v := range s.m {
		if s.dead(v, now) {
			delete(s.m, k)
		}
	}
}

// csrfOK says whether a form's CSRF field matches the session's.
func (se *session) csrfOK(field string) bool {
	return field != "" && subtle.ConstantTimeCompare([]byte(field), []byte(se.csrf)) == 1
}

// Login limits: at most MaxLoggingIn logins checked at once (more get
// 503), and at most MaxLoginFailures failed logins per client address in
// a LoginWindow (more get 429 until the window ends). Admin tokens are
// 256 random bits, so the failures bound is not what keeps a guesser out;
// it keeps one client from making the server hash and look up tokens
// without end.
const (
	MaxLoggingIn     = 8
	MaxLoginFailures = 10
	LoginWindow      = 5 * time.Minute
	// maxTracked bounds the addresses whose failures are counted; past it
	// the window starts over early.
	maxTracked = 4096
)

// loginLimiter counts failed logins per client address in fixed windows.
type loginLimiter struct {
	mu       sync.Mutex // guards start and failures
	start    time.Time
	failures map[string]int
}

func (l *loginLimiter) roll(now time.Time) {
	if l.failures == nil || now.Sub(l.start) >= LoginWindow || now.Before(l.start) || len(l.failures) >= maxTracked {
		l.start, l.failures = now, map[string]int{}
	}
}

// allowed says whether addr may try to log in now, and if not, when it
// may again.
func (l *loginLimiter) allowed(addr string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	if l.failures[addr] >= MaxLoginFailures {
		return false, l.start.Add(LoginWindow).Sub(now)
	}
	return true, 0
}

// failed counts a failed login from addr.
func (l *loginLimiter) failed(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	l.failures[addr]++
}
