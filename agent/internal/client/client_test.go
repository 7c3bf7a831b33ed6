package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

func TestStateFilesAreOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := State{Dir: dir}
	if _, err := s.LoadCredential(); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("LoadCredential on an empty folder = %v, want ErrNotEnrolled", err)
	}
	want := Credential{Server: "http://x", DeviceID: "d1", Name: "pi", Credential: "rfd_secret", NoticeKey: []byte{1, 2}}
	if err := s.SaveCredential(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadCredential()
	if err != nil || got.Credential != want.Credential || got.Name != want.Name {
		t.Fatalf("LoadCredential = %+v, %v", got, err)
	}
	pkgs := []protocol.Package{{Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "aarch64"}}
	if err := s.SetLastQueuedSet(pkgs); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPending(&Pending{Report: protocol.Report{ID: "r1"}, After: pkgs}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{credentialFile, lastQueuedFile, pendingFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("state folder mode %v, want 0700", st.Mode().Perm())
	}
	p, err := s.Pending()
	if err != nil || p == nil || p.Report.ID != "r1" {
		t.Fatalf("Pending = %+v, %v", p, err)
	}
	if err := s.SetPending(nil); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Pending(); p != nil || err != nil {
		t.Errorf("Pending after clearing = %+v, %v", p, err)
	}
}

func TestStateCorruptFileNamed(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, credentialFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := State{Dir: dir}.LoadCredential()
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, credentialFile)) {
		t.Errorf("LoadCredential of a corrupt file = %v, want an error naming it", err)
	}
}

func TestErrorsAndRetry(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		retryable bool
		field     string
	}{
		{"unknown device", 401, `{"error":"unknown or revoked token or device credential"}`, false, ""},
		{"bad field", 400, `{"error":"id: empty","field":"id"}`, false, "id"},
		{"server fault", 500, `{"error":"internal error"}`, true, ""},
		{"proxy page", 502, `<html>bad gateway</html>`, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer cred" {
					t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			_, err := New(srv.URL, "cred", nil).Report(context.Background(), &protocol.Report{ID: "r"})
			var e *Error
			if !errors.As(err, &e) || e.Status != tt.status || e.Field != tt.field || e.Message == "" {
				t.Fatalf("Report = %v, want an *Error %d field %q", err, tt.status, tt.field)
			}
			if Retryable(err) != tt.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", err, !tt.retryable, tt.retryable)
			}
		})
	}
	// An unreachable server is worth retrying.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	if _, err := New(url, "cred", nil).Report(context.Background(), &protocol.Report{ID: "r"}); !Retryable(err) {
		t.Errorf("unreachable server: %v not retryable", err)
	}
}

func TestNoRedirects(t *testing.T) {
	// The credential must not follow a redirect to another host.
	leaked := false
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = r.Header.Get("Authorization") != ""
		json.NewEncoder(w).Encode(protocol.ReportResponse{})
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	_, err := New(srv.URL, "cred", nil).Report(context.Background(), &protocol.Report{ID: "r"})
	if err == nil || leaked {
		t.Errorf("redirected report: err %v, credential sent on: %v", err, leaked)
	}
}

// TestPlanETag: the plan comes with its ETag; asked again with it, the
// server's 304 says keep the one held; an error answer is an *Error.
func TestPlanETag(t *testing.T) {
	const body, etag = `{"payload":"e30=","key_id":"k","sig":"c2ln"}`, `"v1"`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != protocol.PathPlan || r.Header.Get("Authorization") != "Bearer cred":
			http.Error(w, `{"error":"no"}`, http.StatusUnauthorized)
		case r.Header.Get("If-None-Match") == etag:
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("ETag", etag)
			w.Write([]byte(body))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	tests := []struct {
		name, cred, etag string
		wantMsg          string
		wantNotModified  bool
		wantStatus       int
	}{
		{"first fetch", "cred", "", body, false, 0},
		{"not modified", "cred", etag, "", true, 0},
		{"stale etag", "cred", `"v0"`, body, false, 0},
		{"bad credential", "other", "", "", false, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, tag, nm, err := New(srv.URL, tt.cred, nil).Plan(ctx, tt.etag)
			if tt.wantStatus != 0 {
				var e *Error
				if !errors.As(err, &e) || e.Status != tt.wantStatus {
					t.Fatalf("Plan = %v, want an *Error %d", err, tt.wantStatus)
				}
				return
			}
			if err != nil || string(msg) != tt.wantMsg || nm != tt.wantNotModified || tag != etag {
				t.Fatalf("Plan = %q, %q, %v, %v; want %q, %q, %v", msg, tag, nm, err, tt.wantMsg, etag, tt.wantNotModified)
			}
		})
	}
}

// TestEnrollWaitsWhenBusy: a server busy with other enrolments (503 with
// Retry-After) is asked again after the wait it names, until it enrols the
// device; a refusal of the enrolment itself is not asked again.
func TestEnrollWaitsWhenBusy(t *testing.T) {
	t.Parallel()
	var asked atomic.Int32
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if asked.Add(1) <= 2 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"too many enrolments in progress from your address (8); retry in a few seconds"}`))
			return
		}
		w.Write([]byte(`{"device_id":"d1","credential":"c1"}`))
	}))
	defer busy.Close()
	start := time.Now()
	resp, err := New(busy.URL, "", nil).Enroll(context.Background(), protocol.EnrollRequest{Token: "t", Name: "pi"})
	if err != nil || resp.DeviceID != "d1" {
		t.Fatalf("Enroll = %+v, %v; want d1 after two busy answers", resp, err)
	}
	if n := asked.Load(); n != 3 {
		t.Errorf("asked %d times, want 3", n)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("enrolled after %v, before the two 1 s waits the server asked for", took)
	}

	var refusals atomic.Int32
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refusals.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"unknown, spent or expired enrolment token"}`))
	}))
	defer refusing.Close()
	_, err = New(refusing.URL, "", nil).Enroll(context.Background(), protocol.EnrollRequest{Token: "t", Name: "pi"})
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || refusals.Load() != 1 {
		t.Errorf("refused enrolment: %v after %d asks, want the 401 after one", err, refusals.Load())
	}
}
