package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/client"
	"github.com/rpmfleet/rpmfleet/agent/internal/queue"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

func newReporter(t *testing.T, w *world) *Reporter {
	t.Helper()
	r, err := OpenReporter(ReporterOptions{StateDir: w.stateDir, Root: w.root, Client: client.New(w.srv.URL, "secret-credential", nil),
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
	w := newWorld(t, worldOpts{})
	ctx := context.Background()
	st := client.State{Dir: w.stateDir}
	legacy := &client.Pending{Report: protocol.Report{ID: "legacy-1", Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Digest: "x"}}}
	if err := st.SetPending(legacy); err != nil {
		t.Fatal(err)
	}
	pending := filepath.Join(w.stateDir, "report-pending.json")

	t.Run("server down", func(t *testing.T) {
		r := newReporter(t, w)
		if _, err := r.Enqueue(true); err != nil {
			t.Fatal(err)
		}
		w.srv.setDown(true)
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
		w.srv.setDown(false)
		r := newReporter(t, w)
		if err := r.DrainOnce(ctx, 1); err != nil {
			t.Fatal(err)
		}
		reps := w.srv.Reports()
		if len(reps) != 2 || reps[0].ID != "legacy-1" || reps[1].Inventory.Kind != protocol.InventoryFull || len(reps[1].Inventory.Packages) != 1 {
			t.Fatalf("server got %+v, want legacy-1 then the full inventory", reps)
		}
		if _, err := os.Stat(pending); !os.IsNotExist(err) {
			t.Errorf("report-pending.json still there: %v", err)
		}
		r.Close()
	})
	t.Run("refused for good", func(t *testing.T) {
		w.srv.mu.Lock()
		w.srv.reportStatus = 400
		w.srv.mu.Unlock()
		r := newReporter(t, w)
		if _, err := r.Enqueue(true); err != nil {
			t.Fatal(err)
		}
		if err := r.DrainOnce(ctx, 3); err != nil {
			t.Fatalf("DrainOnce with a refused report = %v, want nil: it is set aside", err)
		}
		bad, _ := filepath.Glob(filepath.Join(w.stateDir, QueueDir, "bad", "*.reason"))
		if r.Len() != 0 || len(bad) != 1 {
			t.Errorf("queue %d, set aside %v; want it empty and one report set aside", r.Len(), bad)
		}
	})
}
