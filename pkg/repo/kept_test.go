package repo

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestUnreachable: only a repository that cannot be reached is
// Unreachable; one that answers, even wrongly, is not.
func TestUnreachable(t *testing.T) {
	dir := makeRepo(t, "gz", true)
	metadata := func(t *testing.T, base string) error {
		t.Helper()
		r, err := New(base, Options{FetchTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Metadata(context.Background())
		return err
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	if err := metadata(t, gone.URL); err == nil || !Unreachable(err) {
		t.Errorf("connection refused: Unreachable(%v) = false", err)
	}
	stall := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-stall }))
	defer slow.Close()
	defer close(stall)
	if err := metadata(t, slow.URL); err == nil || !Unreachable(err) {
		t.Errorf("timeout: Unreachable(%v) = false", err)
	}
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }))
	defer broken.Close()
	if err := metadata(t, broken.URL); err == nil || Unreachable(err) {
		t.Errorf("HTTP 503: Unreachable(%v) = true", err)
	}
	garbled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<repomd><data")) }))
	defer garbled.Close()
	if err := metadata(t, garbled.URL); err == nil || Unreachable(err) {
		t.Errorf("unparsable repomd.xml: Unreachable(%v) = true", err)
	}
	tls := httptest.NewTLSServer(http.FileServer(http.Dir(dir)))
	defer tls.Close()
	if err := metadata(t, tls.URL); err == nil || Unreachable(err) {
		t.Errorf("unknown certificate authority: Unreachable(%v) = true", err)
	}
	if Unreachable(nil) || Unreachable(errors.Join(ErrBadSignature, context.DeadlineExceeded)) {
		t.Error("a verification failure beside a timeout is Unreachable")
	}
}

// TestKeepAndUseKept: a kept copy reads as the fetched one did with the
// server gone; without Keep there is none, and a bound below its age
// refuses it.
func TestKeepAndUseKept(t *testing.T) {
	dir := makeRepo(t, "gz", true)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	cache := t.TempDir()
	r, err := New(srv.URL, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Metadata(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.UseKept(time.Hour, time.Now()); !errors.Is(err, ErrNoKept) {
		t.Fatalf("UseKept before Keep = %v, want ErrNoKept", err)
	}
	if err := r.Keep(context.Background(), time.Now(), "primary", "updateinfo"); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	// The shared cache losing its files must not matter: the copy is
	// whole in kept/.
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if !e.IsDir() {
			os.Remove(filepath.Join(cache, e.Name()))
		}
	}
	off, err := New(srv.URL, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := off.Metadata(context.Background()); !Unreachable(err) {
		t.Fatalf("server gone: %v", err)
	}
	if _, err := off.UseKept(time.Nanosecond, time.Now().Add(time.Second)); !errors.Is(err, ErrKeptTooOld) {
		t.Fatalf("UseKept past its bound = %v, want ErrKeptTooOld", err)
	}
	if _, err := off.UseKept(time.Hour, time.Now().Add(-time.Hour)); !errors.Is(err, ErrKeptTooOld) {
		t.Fatalf("UseKept dated in the future = %v, want ErrKeptTooOld", err)
	}
	age, err := off.UseKept(time.Hour, time.Now())
	if err != nil || age < 0 || age > time.Minute {
		t.Fatalf("UseKept = %v, %v", age, err)
	}
	for _, typ := range []string{"primary", "updateinfo"} {
		if err := readData(off, typ); err != nil {
			t.Errorf("read kept %s: %v", typ, err)
		}
	}
}
