package update

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// servedRepo serves the world's repository over HTTP on loopback,
// counting the requests for packages.
func servedRepo(t *testing.T, w *cycleWorld) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var rpms atomic.Int64
	fs := http.FileServer(http.Dir(w.repo))
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".rpm") {
			rpms.Add(1)
		}
		fs.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &rpms
}

// TestPrefetchThenApplyDownloadsNothing: Prefetch fetches and verifies
// the fixes and the rollback set into the state dir and installs nothing;
// the cycle that applies them later fetches no package again.
func TestPrefetchThenApplyDownloadsNothing(t *testing.T) {
	w := newCycleWorld(t)
	srv, rpms := servedRepo(t, w)
	o := w.options(nil)
	o.Repos = []string{srv.URL}
	got, err := Prefetch(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Plan.Packages) != 2 || len(got.Verdicts) != 4 {
		t.Fatalf("prefetched %d packages, %d verdicts; want 2 and 4 (fixes and rollback set)", len(got.Plan.Packages), len(got.Verdicts))
	}
	for _, v := range got.Verdicts {
		if !v.OK {
			t.Errorf("verdict on %s: %s", v.NEVRA, v.Detail)
		}
	}
	if n := rpms.Load(); n != 4 {
		t.Errorf("prefetch fetched %d packages, want 4", n)
	}
	if v := w.versions(t); v != "demo-a-1.0 demo-b-1.0" {
		t.Errorf("prefetch changed the database: %s", v)
	}
	if st, err := ReadState(w.state); err != nil || st.Active != 0 || st.LastID != 0 {
		t.Errorf("prefetch touched the journal: %+v, %v", st, err)
	}
	res, err := Run(context.Background(), o)
	if err != nil || res.Cycle == nil || res.Cycle.Phase != Committed {
		t.Fatalf("apply after prefetch: %+v, %v", res, err)
	}
	if n := rpms.Load(); n != 4 {
		t.Errorf("the apply fetched %d more packages, want none", n-4)
	}
	if v := w.versions(t); v != "demo-a-1.1 demo-b-1.1" {
		t.Errorf("after the apply: %s", v)
	}
}

// TestPrefetchRefusesWrongPin: a package whose bytes are not the ones the
// signed plan pins is refused at prefetch, as the cycle refuses it.
func TestPrefetchRefusesWrongPin(t *testing.T) {
	w := newCycleWorld(t)
	srv, _ := servedRepo(t, w)
	o := w.options(nil)
	o.Repos = []string{srv.URL}
	res, err := Prefetch(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	o.Pins = map[rpmver.Key]string{key(t, res.Plan.Packages[0].New.NEVRA): strings.Repeat("ab", 32)}
	_, err = Prefetch(context.Background(), o)
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "pins sha256:"+strings.Repeat("ab", 32)) {
		t.Errorf("Prefetch with a wrong pin = %v, want ErrVerify naming the pin", err)
	}
}
