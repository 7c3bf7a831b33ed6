package repo

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// countingServer serves dir and counts the requests for each path.
type countingServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func newCountingServer(dir string) *countingServer {
	s := &countingServer{hits: map[string]int{}}
	fs := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.mu.Lock()
		s.hits[req.URL.Path]++
		s.mu.Unlock()
		fs.ServeHTTP(w, req)
	}))
	return s
}

func (s *countingServer) count(p string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[p]
}

func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func readAllData(t *testing.T, r *Repo, typ string) []byte {
	t.Helper()
	rc, err := r.Open(context.Background(), typ)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCache: metadata downloaded once is read from the cache while
// repomd.xml lists the same checksum, re-downloaded when the cached copy is
// damaged, never kept (nor returned) when the download was tampered with or
// cut, and dropped when repomd.xml moves on.
func TestCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repoDir := makeRepo(t, "gz", true)
	srv := newCountingServer(repoDir)
	defer srv.Close()
	cacheDir := filepath.Join(t.TempDir(), "cache")
	r, err := New(srv.URL, Options{HTTPClient: srv.Client(), CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prim, _ := m.Get("primary")
	primPath := "/" + prim.Location
	cached := filepath.Join(cacheDir, "sha256-"+prim.Checksum.Value+"-"+filepath.Base(prim.Location))

	first := readAllData(t, r, "primary")
	if got := cacheFiles(t, cacheDir); len(got) != 1 || got[0] != filepath.Base(cached) {
		t.Fatalf("cache holds %v, want %s", got, filepath.Base(cached))
	}

	t.Run("hit", func(t *testing.T) {
		before := srv.count(primPath)
		if again := readAllData(t, r, "primary"); string(again) != string(first) {
			t.Fatal("cached primary differs")
		}
		if srv.count(primPath) != before {
			t.Errorf("primary downloaded again although cached")
		}
	})

	t.Run("damaged copy is downloaded again", func(t *testing.T) {
		raw := readFile(t, cached)
		raw[len(raw)/2] ^= 0xff
		writeFile(t, cached, raw)
		before := srv.count(primPath)
		if again := readAllData(t, r, "primary"); string(again) != string(first) {
			t.Fatal("primary differs after a damaged cache")
		}
		if srv.count(primPath) != before+1 {
			t.Errorf("damaged cache: %d downloads, want 1", srv.count(primPath)-before)
		}
		if sum := digestOf(t, nil, cached); sum != prim.Checksum.Value {
			t.Errorf("cache not repaired: %s", sum)
		}
	})

	t.Run("dropped connection keeps nothing", func(t *testing.T) {
		// A server that sends half of every .gz file, then hangs up.
		fs := http.FileServer(http.Dir(repoDir))
		cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if !strings.HasSuffix(req.URL.Path, ".gz") {
				fs.ServeHTTP(w, req)
				return
			}
			raw := readFile(t, filepath.Join(repoDir, req.URL.Path))
			w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
			w.Write(raw[:len(raw)/2])
		}))
		defer cut.Close()
		rc, err := New(cut.URL, Options{HTTPClient: cut.Client(), CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		_, err = rc.Open(ctx, "updateinfo")
		if err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
			t.Fatalf("got %v, want the cut download's error at Open", err)
		}
		if got := cacheFiles(t, cacheDir); len(got) != 1 {
			t.Errorf("cache holds %v after a cut download", got)
		}
	})

	t.Run("tampered download keeps nothing", func(t *testing.T) {
		ui, _ := m.Get("updateinfo")
		p := filepath.Join(repoDir, ui.Location)
		orig := readFile(t, p)
		bad := append([]byte(nil), orig...)
		bad[len(bad)/2] ^= 0x01
		writeFile(t, p, bad)
		defer writeFile(t, p, orig)
		// With a cache, the whole file is checked before Open returns.
		_, err := r.Open(ctx, "updateinfo")
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("got %v, want ErrChecksum from Open", err)
		}
		if got := cacheFiles(t, cacheDir); len(got) != 1 {
			t.Errorf("cache holds %v after a tampered download", got)
		}
	})

	t.Run("new repomd drops old files", func(t *testing.T) {
		readAllData(t, r, "updateinfo")
		if got := cacheFiles(t, cacheDir); len(got) != 2 {
			t.Fatalf("cache holds %v, want primary and updateinfo", got)
		}
		ui := filepath.Join(t.TempDir(), "updateinfo.xml")
		writeFile(t, ui, []byte("<updates/>"))
		run(t, "modifyrepo_c", "--mdtype", "updateinfo", ui, filepath.Join(repoDir, "repodata"))
		m2, err := r.Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ui2, _ := m2.Get("updateinfo")
		got := cacheFiles(t, cacheDir)
		if len(got) != 1 || got[0] != filepath.Base(cached) {
			t.Errorf("after the repository changed the cache holds %v, want only the unchanged primary", got)
		}
		u, err := r.Updateinfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Next(); err != io.EOF {
			t.Errorf("new updateinfo: got %v, want the empty one", err)
		}
		u.Close()
		if got := cacheFiles(t, cacheDir); len(got) != 2 || !strings.Contains(strings.Join(got, " "), ui2.Checksum.Value) {
			t.Errorf("cache holds %v, want the new updateinfo too", got)
		}
	})
}
