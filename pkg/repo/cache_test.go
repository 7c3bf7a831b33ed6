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
// damaged, never kept when the download was bad or not read to its end,
// and dropped when repomd.xml moves on.
func TestCache(t *testing.T) {
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

	t.Run("reader closed early keeps nothing", func(t *testing.T) {
		rc, err := r.Open(ctx, "updateinfo")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		if got := cacheFiles(t, cacheDir); len(got) != 1 {
			t.Errorf("cache holds %v after an abandoned download", got)
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
		rc, err := r.Open(ctx, "updateinfo")
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("got %v, want ErrChecksum", err)
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
