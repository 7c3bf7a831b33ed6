package rpmtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// NewRepo makes dir a dnf repository: the rpms are copied into
// dir/Packages/, createrepo_c writes repodata/ (XML metadata only, no
// sqlite), and, when updateinfoXML is not nil, modifyrepo_c adds it as the
// updateinfo record, compressed the way modifyrepo_c does by default
// (repodata/<sha256>-updateinfo.xml.gz). Calling it again on the same dir
// adds the new rpms and replaces the metadata.
func NewRepo(dir string, rpms []string, updateinfoXML []byte) error {
	pkgs := filepath.Join(dir, "Packages")
	if err := os.MkdirAll(pkgs, 0o755); err != nil {
		return fmt.Errorf("rpmtest: new repo: %w", err)
	}
	for _, r := range rpms {
		if err := copyFile(r, filepath.Join(pkgs, filepath.Base(r))); err != nil {
			return fmt.Errorf("rpmtest: new repo: %w", err)
		}
	}
	if out, err := exec.Command("createrepo_c", "--quiet", "--no-database", "--update", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("rpmtest: createrepo_c %s: %w: %s (run make deps)", dir, err, out)
	}
	if updateinfoXML == nil {
		return nil
	}
	return AddUpdateinfo(dir, updateinfoXML, "")
}

// AddUpdateinfo adds (or replaces) the repository's updateinfo record with
// modifyrepo_c, compressed with compression: "gz", "xz", "bz2", or "" for
// modifyrepo_c's default (gz). The file is repodata/<sha256>-updateinfo.xml.<ext>
// and repomd.xml points to it. (createrepo_c 0.17, Debian 12's, knows no
// zstd; it came with createrepo_c 1.0.)
func AddUpdateinfo(dir string, updateinfoXML []byte, compression string) error {
	tmp, err := os.MkdirTemp("", "updateinfo")
	if err != nil {
		return fmt.Errorf("rpmtest: add updateinfo: %w", err)
	}
	defer os.RemoveAll(tmp)
	ui := filepath.Join(tmp, "updateinfo.xml")
	if err := os.WriteFile(ui, updateinfoXML, 0o644); err != nil {
		return fmt.Errorf("rpmtest: add updateinfo: %w", err)
	}
	args := []string{"--mdtype=updateinfo"}
	if compression != "" {
		args = append(args, "--compress-type="+compression)
	}
	args = append(args, ui, filepath.Join(dir, "repodata"))
	if out, err := exec.Command("modifyrepo_c", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("rpmtest: modifyrepo_c %s: %w: %s (run make deps)", dir, err, out)
	}
	return nil
}

// Server serves a folder over HTTP on a loopback port, counts requests and
// can misbehave on demand, so tests can see what a client fetched and
// simulate a mirror that drops a download half way or goes away.
type Server struct {
	// URL is the base URL, without a trailing slash.
	URL string

	mu       sync.Mutex // guards the fields below
	requests map[string]int
	total    int
	cutAfter int64
	cutTimes int
	down     bool

	ts *httptest.Server
}

// Stop closes the listener: from then on a client's connection is
// refused, as with a repository out of the network's reach (SetDown still
// answers, with a 503).
func (s *Server) Stop() { s.ts.Close() }

// Serve serves dir until t ends. Range requests work (http.FileServer), so
// resumed downloads can be tested.
func Serve(t testing.TB, dir string) *Server {
	t.Helper()
	s := &Server{requests: map[string]int{}}
	files := http.FileServer(http.Dir(dir))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[r.URL.Path]++
		s.total++
		down := s.down
		var limit int64 = -1
		if s.cutTimes > 0 {
			s.cutTimes--
			limit = s.cutAfter
		}
		s.mu.Unlock()
		if down {
			http.Error(w, "rpmtest: server down", http.StatusServiceUnavailable)
			return
		}
		if limit >= 0 {
			w = &cutWriter{ResponseWriter: w, left: limit}
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	s.URL, s.ts = ts.URL, ts
	return s
}

// Requests returns how many requests asked for path ("/repodata/repomd.xml").
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// Total returns how many requests the server has had.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// CutAfter makes the next times responses stop after n body bytes: the
// connection is closed mid-body, as when a mirror becomes unreachable during
// a download. The response headers (Content-Length included) are sent as
// usual, so the client sees a short body.
func (s *Server) CutAfter(n int64, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutAfter, s.cutTimes = n, times
}

// SetDown makes every request fail with 503 Service Unavailable until
// SetDown(false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= c.left {
		c.left -= int64(len(p))
		return c.ResponseWriter.Write(p)
	}
	if c.left > 0 {
		c.ResponseWriter.Write(p[:c.left])
	}
	c.left = 0
	http.NewResponseController(c.ResponseWriter).Flush()
	panic(http.ErrAbortHandler) // closes the connection mid-body
}
