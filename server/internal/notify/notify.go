// Package notify delivers the server's webhook notifications: a JSON POST
// signed with HMAC-SHA256 over a timestamp and the body, retried with
// exponential backoff, each delivery's attempts, status and last error
// returned for the record.
//
// Threat model. The webhook URL is the admin's, but whatever answers there
// is not trusted: an answer is read at most MaxResponse bytes, a request
// and its answer must finish within the timeout, a redirect is never
// followed to another host (nor at all beyond a few hops), and the error
// kept of an answer quotes at most a short, escaped prefix of it. Headers
// carry only fixed names and values the server makes (the event type from
// a fixed set, a delivery id, the signature), never text a device sent;
// that goes in the signed body only. The secret is the HMAC key and is
// never logged or sent; the signature covers the timestamp, so a receiver
// that checks it refuses a replay older than its tolerance.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a delivery.
const (
	// SignatureHeader holds "t=UNIX,v1=HEX": HEX is the HMAC-SHA256, keyed
	// with the webhook's secret, of "UNIX." followed by the body.
	SignatureHeader = "X-Rpmfleet-Signature"
	// EventHeader names the event type.
	EventHeader = "X-Rpmfleet-Event"
	// DeliveryHeader is the delivery's id, the same on each retry.
	DeliveryHeader = "X-Rpmfleet-Delivery"
)

// Limits and defaults.
const (
	// MaxResponse bounds how much of an answer is read.
	MaxResponse = 64 << 10
	// DefaultTimeout bounds one attempt, request and answer.
	DefaultTimeout = 10 * time.Second
	// DefaultAttempts is how often a delivery is tried.
	DefaultAttempts = 5
	// DefaultBackoff is the wait before the second attempt; each
	// following wait doubles.
	DefaultBackoff = 2 * time.Second
	// MaxRedirects bounds the redirects followed, on the same host only.
	MaxRedirects = 3
	// DefaultTolerance is how old a signed timestamp Verify accepts.
	DefaultTolerance = 5 * time.Minute
)

// Errors.
var (
	// ErrSignature is returned by Verify for a missing, malformed or
	// wrong signature.
	ErrSignature = errors.New("notify: bad signature")
	// ErrStale is returned by Verify for a timestamp outside the
	// tolerance: a replay, or a clock far off.
	ErrStale = errors.New("notify: signature timestamp outside the tolerance")
	// ErrRedirect is returned for a redirect to another host.
	ErrRedirect = errors.New("notify: redirect to another host refused")
)

// Event types, the only values EventHeader takes.
const (
	EventExposure = "exposure"
	EventRollback = "rollback"
	EventSilent   = "silent"
	EventPaused   = "rollout-paused"
)

// Webhook is one configured receiver.
type Webhook struct {
	URL    string
	Secret []byte
}

// Options tune a Sender; zero values take the defaults.
type Options struct {
	Timeout  time.Duration
	Attempts int
	Backoff  time.Duration
	// Transport is the HTTP transport; nil is http.DefaultTransport's
	// clone.
	Transport http.RoundTripper
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Sender delivers notifications.
type Sender struct {
	o  Options
	hc *http.Client
}

// NewSender returns a Sender.
func NewSender(o Options) *Sender {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	tr := o.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	hc := &http.Client{Transport: tr, Timeout: o.Timeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > MaxRedirects {
			return fmt.Errorf("notify: more than %d redirects", MaxRedirects)
		}
		if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
			return fmt.Errorf("%w: %s", ErrRedirect, req.URL.Redacted())
		}
		return nil
	}}
	return &Sender{o: o, hc: hc}
}

// Result is what a delivery did, for the record.
type Result struct {
	Attempts int
	// Status is the last answer's HTTP status; 0 when none came.
	Status int
	// LastError is the last attempt's failure; "" when delivered.
	LastError string
	Delivered bool
}

// Sign returns the SignatureHeader value for body at ts.
func Sign(secret []byte, ts time.Time, body []byte) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	return "t=" + t + ",v1=" + hex.EncodeToString(mac(secret, t, body))
}

func mac(secret []byte, t string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(t))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a SignatureHeader value against body, refusing a
// timestamp more than tolerance away from now: what a receiver does.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var t, v1 string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			t = v
		case "v1":
			v1 = v
		}
	}
	sec, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no timestamp", ErrSignature)
	}
	got, err := hex.DecodeString(v1)
	if err != nil || !hmac.Equal(got, mac(secret, t, body)) {
		return ErrSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %v", ErrStale, d.Round(time.Second))
	}
	return nil
}

// Deliver posts body (the event's JSON) to w, retrying a failure (no
// answer, or a status other than 2xx) with exponential backoff until
// Attempts are used or ctx ends. Each attempt is signed anew.
func (s *Sender) Deliver(ctx context.Context, w Webhook, event, id string, body []byte) Result {
	var r Result
	if !validEvent(event) || !validID(id) {
		r.LastError = fmt.Sprintf("notify: event %q or delivery id %q is not one the server makes", event, id)
		return r
	}
	wait := s.o.Backoff
	for r.Attempts < s.o.Attempts {
		if r.Attempts > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				r.LastError = ctx.Err().Error()
				return r
			case <-t.C:
			}
			wait *= 2
		}
		r.Attempts++
		status, err := s.attempt(ctx, w, event, id, body)
		r.Status = status
		if err == nil {
			r.LastError, r.Delivered = "", true
			return r
		}
		r.LastError = err.Error()
	}
	return r
}

func (s *Sender) attempt(ctx context.Context, w Webhook, event, id string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rpmfleet-server")
	req.Header.Set(EventHeader, event)
	req.Header.Set(DeliveryHeader, id)
	req.Header.Set(SignatureHeader, Sign(w.Secret, s.o.Now(), body))
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponse))
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, nil
	}
	if len(head) > 200 {
		head = head[:200]
	}
	return resp.StatusCode, fmt.Errorf("notify: answered %d: %q", resp.StatusCode, head)
}

// validEvent says whether event is one of the fixed types: nothing else
// goes into a header.
func validEvent(event string) bool {
	switch event {
	case EventExposure, EventRollback, EventSilent, EventPaused:
		return true
	}
	return false
}

// validID says whether id is a delivery id the server makes: 1-64 of
// letters, digits and '-'.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
