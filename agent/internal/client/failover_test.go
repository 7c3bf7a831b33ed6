package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// replica is a test server that answers reports with status and counts
// them.
func replica(t *testing.T, status int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.Header.Get("Authorization") != "Bearer cred" {
			t.Errorf("%s got Authorization %q", r.URL, r.Header.Get("Authorization"))
		}
		w.WriteHeader(status)
		if status == http.StatusOK {
			w.Write([]byte(`{}`))
		} else {
			w.Write([]byte(`{"error":"refused here"}`))
		}
	}))
	t.Cleanup(s.Close)
	return s, &n
}

// TestFailover: a report goes to the next replica when one is down (its
// port closed) or answers 5xx or 429, and the replica that answered is
// asked first next time; a 4xx is the server's answer about the request,
// not about the replica, and is not sent elsewhere.
func TestFailover(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	tests := []struct {
		name      string
		first     int // the first replica's status; 0 for down
		wantErr   int // the status of the error Report returns; 0 for none
		wantFirst int32
		wantNext  int32
	}{
		{name: "first replica down", first: 0, wantNext: 1},
		{name: "first replica answers 503", first: http.StatusServiceUnavailable, wantFirst: 1, wantNext: 1},
		{name: "first replica answers 429", first: http.StatusTooManyRequests, wantFirst: 1, wantNext: 1},
		{name: "first replica refuses the report", first: http.StatusBadRequest, wantErr: http.StatusBadRequest, wantFirst: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			firstURL := downURL
			firstN := new(atomic.Int32)
			if tc.first != 0 {
				var s *httptest.Server
				s, firstN = replica(t, tc.first)
				firstURL = s.URL
			}
			next, nextN := replica(t, http.StatusOK)
			c := NewFailover([]string{firstURL, next.URL + "/", ""}, "cred", nil)
			_, err := c.Report(context.Background(), &protocol.Report{ID: "r1"})
			var e *Error
			switch {
			case tc.wantErr == 0 && err != nil:
				t.Fatalf("Report: %v, want it delivered to the next replica", err)
			case tc.wantErr != 0 && (!errors.As(err, &e) || e.Status != tc.wantErr):
				t.Fatalf("Report: %v, want the first replica's %d", err, tc.wantErr)
			}
			if firstN.Load() != tc.wantFirst || nextN.Load() != tc.wantNext {
				t.Errorf("first replica asked %d times, next %d; want %d, %d", firstN.Load(), nextN.Load(), tc.wantFirst, tc.wantNext)
			}
			if tc.wantNext == 0 {
				return
			}
			if got := c.Servers(); len(got) != 2 || got[0] != next.URL {
				t.Errorf("Servers() = %q, want the replica that answered first and the empty URL dropped", got)
			}
			// Its answer, "{}", is no plan; who was asked is what counts.
			c.Plan(context.Background(), "")
			if firstN.Load() != tc.wantFirst || nextN.Load() != tc.wantNext+1 {
				t.Errorf("after a plan fetch, first replica asked %d times, next %d; want the plan from the next replica first", firstN.Load(), nextN.Load())
			}
		})
	}
}
