package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
)

func TestFetch(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	body := []byte(strings.Repeat("rpmfleet package bytes\n", 1000))
	if err := os.WriteFile(filepath.Join(src, "p.rpm"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256(body))
	srv := rpmtest.Serve(t, src)
	f := &fetcher{client: http.DefaultClient, log: func(string, ...any) {}}
	ctx := context.Background()

	tests := []struct {
		name      string
		cut       int64
		cutTimes  int
		checksum  string
		size      int64
		wantErr   error
		wantFrom  int64
		localFile bool
	}{
		{name: "whole", checksum: sum, size: int64(len(body))},
		{name: "cut once, resumed by the next try", cut: 5000, cutTimes: 1, checksum: sum, size: int64(len(body)), wantFrom: 5000},
		{name: "cut every try", cut: 100, cutTimes: downloadTries, checksum: sum, size: int64(len(body)), wantErr: ErrDownload, wantFrom: 100},
		{name: "digest differs", checksum: "sha256:" + strings.Repeat("0", 64), size: int64(len(body)), wantErr: ErrChecksum},
		{name: "size differs", checksum: sum, size: int64(len(body)) - 1, wantErr: ErrChecksum},
		{name: "unknown digest type", checksum: "md5:00", size: int64(len(body)), wantErr: ErrChecksum},
		{name: "local file", checksum: sum, size: int64(len(body)), localFile: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "p.rpm")
			srv.CutAfter(tt.cut, tt.cutTimes)
			defer srv.CutAfter(0, 0)
			url := srv.URL + "/p.rpm"
			if tt.localFile {
				url = filepath.Join(src, "p.rpm")
			}
			from, err := f.fetch(ctx, url, dst, tt.checksum, tt.size)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("fetch: %v, want %v", err, tt.wantErr)
			}
			if from != tt.wantFrom {
				t.Errorf("resumed at %d, want %d", from, tt.wantFrom)
			}
			if tt.wantErr != nil {
				if _, err := os.Stat(dst); err == nil {
					t.Error("a refused download was kept")
				}
				return
			}
			got, _ := os.ReadFile(dst)
			if string(got) != string(body) {
				t.Errorf("downloaded %d bytes, not the file", len(got))
			}
			// A file already there and right is not fetched again.
			n := srv.Total()
			if _, err := f.fetch(ctx, url, dst, tt.checksum, tt.size); err != nil || srv.Total() != n {
				t.Errorf("second fetch: %v, %d requests", err, srv.Total()-n)
			}
		})
	}
}

// TestFetchTrickle: a mirror that sends a package a few bytes at a time,
// slower than the minimum rate, has each try cut at the end of a window,
// and the download fails as retryable with what was received kept for the
// next try to resume from. Before, nothing bounded a transfer once its
// headers had arrived: a trickle held the update cycle for ever.
func TestFetchTrickle(t *testing.T) {
	body := []byte(strings.Repeat("x", 4096))
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256(body))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		for i := 0; i < len(body); i += 10 {
			if _, err := w.Write(body[i:min(i+10, len(body))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	// 1000 bytes a second over 300 ms windows: 300 bytes a window needed,
	// the trickle brings about 60.
	f := &fetcher{client: http.DefaultClient, log: func(string, ...any) {}, minRate: 1000, window: 300 * time.Millisecond}
	dst := filepath.Join(t.TempDir(), "p.rpm")
	start := time.Now()
	_, err := f.fetch(context.Background(), srv.URL+"/p.rpm", dst, sum, int64(len(body)))
	if !errors.Is(err, ErrDownload) || !errors.Is(err, errTooSlow) {
		t.Fatalf("fetch: %v, want ErrDownload for a transfer below the minimum rate", err)
	}
	var se *Error
	if !errors.As(err, &se) || !se.Retryable {
		t.Errorf("a slow mirror's error is not retryable: %#v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("fetch took %v: the trickle was not cut", d)
	}
	if fi, err := os.Stat(dst + ".part"); err != nil || fi.Size() == 0 {
		t.Errorf("what the trickle sent was not kept to resume from: %v", err)
	}

	// The same file at full speed passes the same bound.
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer fast.Close()
	if _, err := f.fetch(context.Background(), fast.URL+"/p.rpm", filepath.Join(t.TempDir(), "p.rpm"), sum, int64(len(body))); err != nil {
		t.Fatalf("fast fetch: %v", err)
	}
}

// TestFetchLocalFIFO: a FIFO in a local repository where a package should
// be is refused at once instead of blocking the cycle in open.
func TestFetchLocalFIFO(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "p.rpm")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fetcher{client: http.DefaultClient, log: func(string, ...any) {}}
	done := make(chan error, 1)
	go func() {
		_, err := f.fetch(context.Background(), fifo, filepath.Join(t.TempDir(), "p.rpm"), "sha256:"+strings.Repeat("0", 64), 10)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrDownload) || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("fetch of a FIFO: %v, want ErrDownload saying it is not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fetch of a FIFO blocked")
	}
}

// TestFetchAnyMirror: the file comes from the first mirror that serves it
// matching its digest; when none does, the last mirror's error is the
// answer; a cancelled cycle tries no further mirror.
func TestFetchAnyMirror(t *testing.T) {
	t.Parallel()
	body := []byte(strings.Repeat("rpmfleet package bytes\n", 100))
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256(body))
	var asked []string
	var mu sync.Mutex
	serve := func(name string, h func(w http.ResponseWriter)) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			asked = append(asked, name)
			mu.Unlock()
			h(w)
		}))
		t.Cleanup(s.Close)
		return s.URL + "/p.rpm"
	}
	missing := serve("missing", func(w http.ResponseWriter) { http.Error(w, "not yet", http.StatusNotFound) })
	other := serve("other", func(w http.ResponseWriter) { w.Write(bytes.ToUpper(body)) })
	good := serve("good", func(w http.ResponseWriter) { w.Write(body) })
	var logged []string
	f := &fetcher{client: http.DefaultClient, log: func(msg string, args ...any) { logged = append(logged, fmt.Sprint(msg, args)) }}

	dst := filepath.Join(t.TempDir(), "p.rpm")
	if _, err := f.fetchAny(context.Background(), []string{missing, other, good}, dst, sum, int64(len(body))); err != nil {
		t.Fatalf("fetchAny: %v", err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, body) {
		t.Fatal("the file is not the good mirror's")
	}
	if n := strings.Count(strings.Join(logged, "\n"), "trying the next"); n != 2 {
		t.Errorf("%d failovers logged, want 2:\n%s", n, strings.Join(logged, "\n"))
	}

	_, err := f.fetchAny(context.Background(), []string{other, missing}, filepath.Join(t.TempDir(), "p.rpm"), sum, int64(len(body)))
	if !errors.Is(err, ErrDownload) || !strings.Contains(err.Error(), "404") {
		t.Errorf("no mirror serves it: %v, want the last mirror's ErrDownload (404)", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	mu.Lock()
	asked = nil
	mu.Unlock()
	if _, err := f.fetchAny(ctx, []string{missing, good}, filepath.Join(t.TempDir(), "p.rpm"), sum, int64(len(body))); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(asked, "good") {
		t.Errorf("a cancelled cycle went on to the next mirror: %v", asked)
	}
}
