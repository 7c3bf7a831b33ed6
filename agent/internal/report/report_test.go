package report

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/client"
	"github.com/rpmfleet/rpmfleet/agent/internal/queue"
	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// server is a fleet server's report endpoint: it records the reports it
// acknowledges, answers duplicates as such, and can be down or refuse
// every report with one status.
type server struct {
	URL string

	mu      sync.Mutex // guards the fields below
	reports []protocol.Report
	down    bool
	status  int
}

func newServer(t *testing.T) *server {
	s := &server{}
	ts := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.down:
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case r.Header.Get("Authorization") != "Bearer secret-credential":
		http.Error(w, "no credential", http.StatusUnauthorized)
		return
	case r.URL.Path != protocol.PathReport:
		http.NotFound(w, r)
		return
	case s.status != 0:
		http.Error(w, `{"error":"refused by the test"}`, s.status)
		return
	}
	var rep protocol.Report
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &rep); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp := protocol.ReportResponse{Duplicate: slices.ContainsFunc(s.reports, func(o protocol.Report) bool { return o.ID == rep.ID })}
	if !resp.Duplicate {
		s.reports = append(s.reports, rep)
	}
	json.NewEncoder(w).Encode(resp)
}

func (s *server) set(down bool, status int) {
	s.mu.Lock()
	s.down, s.status = down, status
	s.mu.Unlock()
}

func (s *server) Reports() []protocol.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reports)
}

// device is a device root whose rpm database the real rpm wrote, with one
// package installed, and a state dir beside it.
func device(t *testing.T) (root, stateDir string) {
	t.Helper()
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatal("rpm not found: run make deps")
	}
	dir := t.TempDir()
	root, stateDir = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	lib := rpmtest.Package{Name: "demo-lib", Version: "1.0", Release: "1", Arch: "x86_64", Files: map[string]string{"/usr/lib/demo/lib.txt": "v1.0\n"}}
	if err := rpmtest.NewDevRoot(root, nil, []rpmtest.Package{lib}); err != nil {
		t.Fatal(err)
	}
	return root, stateDir
}

func open(t *testing.T, root, stateDir string, srv *server) *Reporter {
	t.Helper()
	r, err := Open(Options{StateDir: stateDir, Root: root, Client: client.New(srv.URL, "secret-credential", nil),
		Backoff: queue.Backoff{Min: time.Millisecond, Max: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestReporterOnce is report --once's path: a report an agent before the
// queue left pending goes first with its id; a server that is down leaves
// the reports queued and says so in report-pending.json; once it is back
// they go in order; a report the server refuses for good is set aside, not
// retried forever.
func TestReporterOnce(t *testing.T) {
	root, stateDir := device(t)
	srv := newServer(t)
	ctx := context.Background()
	st := client.State{Dir: stateDir}
	legacy := &client.Pending{Report: protocol.Report{ID: "legacy-1", Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Digest: "x"}}}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := st.SetPending(legacy); err != nil {
		t.Fatal(err)
	}
	pending := filepath.Join(stateDir, undeliveredFile)

	t.Run("server down", func(t *testing.T) {
		r := open(t, root, stateDir, srv)
		if _, err := r.Enqueue(true); err != nil {
			t.Fatal(err)
		}
		srv.set(true, 0)
		err := r.DrainOnce(ctx, 2)
		if err == nil || !strings.Contains(err.Error(), "2 reports stay queued") {
			t.Fatalf("DrainOnce to a server that is down = %v, want the reports said queued", err)
		}
		if b, err := os.ReadFile(pending); err != nil || !strings.Contains(string(b), `"queued": 2`) {
			t.Errorf("report-pending.json = %s, %v", b, err)
		}
		r.Close()
	})
	t.Run("server back", func(t *testing.T) {
		srv.set(false, 0)
		r := open(t, root, stateDir, srv)
		if err := r.DrainOnce(ctx, 1); err != nil {
			t.Fatal(err)
		}
		reps := srv.Reports()
		if len(reps) != 2 || reps[0].ID != "legacy-1" || reps[1].Inventory.Kind != protocol.InventoryFull ||
			len(reps[1].Inventory.Packages) != 1 || reps[1].Inventory.Packages[0].Name != "demo-lib" {
			t.Fatalf("server got %+v, want legacy-1 then the full inventory of demo-lib", reps)
		}
		if _, err := os.Stat(pending); !os.IsNotExist(err) {
			t.Errorf("report-pending.json still there: %v", err)
		}
		r.Close()
	})
	t.Run("refused for good", func(t *testing.T) {
		srv.set(false, http.StatusBadRequest)
		r := open(t, root, stateDir, srv)
		if _, err := r.Enqueue(true); err != nil {
			t.Fatal(err)
		}
		if err := r.DrainOnce(ctx, 3); err != nil {
			t.Fatalf("DrainOnce with a refused report = %v, want nil: it is set aside", err)
		}
		bad, _ := filepath.Glob(filepath.Join(stateDir, QueueDir, "bad", "*.reason"))
		if r.Len() != 0 || len(bad) != 1 {
			t.Errorf("queue %d, set aside %v; want it empty and one report set aside", r.Len(), bad)
		}
	})
}
