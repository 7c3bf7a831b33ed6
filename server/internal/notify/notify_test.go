package notify

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDeliverSignedAndVerified: a receiver on loopback gets the JSON body
// with the fixed headers and a signature it verifies; the same header on
// another body, with another secret, or replayed past the tolerance is
// refused with the error that says which.
func TestDeliverSignedAndVerified(t *testing.T) {
	secret := []byte("s3cret-from-a-file")
	body := []byte(`{"event":"rollback","device":"pi-1"}`)
	got := make(chan *http.Request, 1)
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotBody, _ = io.ReadAll(r.Body)
		got <- r
	}))
	defer srv.Close()
	now := time.Unix(1764950000, 0)
	s := NewSender(Options{Now: func() time.Time { return now }})
	res := s.Deliver(t.Context(), Webhook{URL: srv.URL, Secret: secret}, EventRollback, "d-1", body)
	if !res.Delivered || res.Attempts != 1 || res.Status != 200 || res.LastError != "" {
		t.Fatalf("result %+v, want delivered at the first attempt", res)
	}
	r := <-got
	sig := r.Header.Get(SignatureHeader)
	if r.Header.Get(EventHeader) != EventRollback || r.Header.Get(DeliveryHeader) != "d-1" || r.Header.Get("Content-Type") != "application/json" || string(gotBody) != string(body) {
		t.Fatalf("headers %v, body %s", r.Header, gotBody)
	}
	if strings.Contains(sig, string(secret)) {
		t.Fatal("the secret is sent")
	}
	tests := []struct {
		name   string
		secret []byte
		body   string
		at     time.Time
		want   error
	}{
		{name: "valid", secret: secret, body: string(body), at: now.Add(time.Minute)},
		{name: "other body", secret: secret, body: `{"event":"rollback","device":"pi-2"}`, at: now, want: ErrSignature},
		{name: "other secret", secret: []byte("guess"), body: string(body), at: now, want: ErrSignature},
		{name: "replayed later", secret: secret, body: string(body), at: now.Add(DefaultTolerance + time.Second), want: ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, sig, []byte(tt.body), tt.at, DefaultTolerance)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestDeliverFailures: a failing receiver gets every attempt with growing
// waits and the last status and error are kept; a redirect to another
// host is not followed; a huge answer is read only MaxResponse bytes; a
// receiver that never answers is cut off by the timeout; an event type or
// delivery id the server does not make never reaches a header.
func TestDeliverFailures(t *testing.T) {
	var hits atomic.Int32
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	var other atomic.Int32
	otherHost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { other.Add(1) }))
	defer otherHost.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(otherHost.URL, "127.0.0.1", "localhost", 1), http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	var sent atomic.Int64
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		chunk := make([]byte, 32<<10)
		for range 1024 { // 32 MiB offered
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer huge.Close()
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer slow.Close()
	defer close(hang)

	s := NewSender(Options{Attempts: 3, Backoff: 10 * time.Millisecond, Timeout: time.Second})
	wh := func(u string) Webhook { return Webhook{URL: u, Secret: []byte("k")} }
	tests := []struct {
		name     string
		url      string
		event    string
		attempts int
		status   int
		err      string
	}{
		{name: "failing receiver retried", url: failing.URL, event: EventRollback, attempts: 3, status: 503, err: "answered 503"},
		{name: "redirect to another host", url: redirect.URL, event: EventRollback, attempts: 3, err: ErrRedirect.Error()},
		{name: "huge answer", url: huge.URL, event: EventRollback, attempts: 3, status: 500, err: "answered 500"},
		{name: "never answers", url: slow.URL, event: EventRollback, attempts: 3, err: "Timeout"},
		{name: "event not made by the server", url: failing.URL, event: "rollback\r\nX-Evil: 1", attempts: 0, err: "not one the server makes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			res := s.Deliver(t.Context(), wh(tt.url), tt.event, "d-2", []byte(`{}`))
			if res.Delivered || res.Attempts != tt.attempts || res.Status != tt.status || !strings.Contains(res.LastError, tt.err) {
				t.Fatalf("result %+v, want %d attempts, status %d, error containing %q", res, tt.attempts, tt.status, tt.err)
			}
			if tt.url == failing.URL && hits.Load()-before != int32(tt.attempts) {
				t.Errorf("receiver saw %d requests, want %d", hits.Load()-before, tt.attempts)
			}
		})
	}
	if other.Load() != 0 {
		t.Errorf("the other host got %d requests through a redirect", other.Load())
	}
	// 32 MiB offered at each of 3 attempts; loopback socket buffers take
	// a few MiB of each before the closed connection stops the writer.
	if sent.Load() > 3*16<<20 {
		t.Errorf("the huge answer was read to %d bytes", sent.Load())
	}
}
