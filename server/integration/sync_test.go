package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestScheduledSync: a repository named in the server's TOML file is
// imported at start without anyone running import.
func TestScheduledSync(t *testing.T) {
	ui, err := os.ReadFile(filepath.Join(fixtures(t), "updateinfo", "rocky8", "updateinfo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	if err := rpmtest.NewRepo(repo, nil, ui); err != nil {
		t.Fatalf("make repository (run make deps if createrepo_c is missing): %v", err)
	}
	mirror := rpmtest.Serve(t, repo)
	conf := filepath.Join(t.TempDir(), "server.toml")
	toml := fmt.Sprintf("[[repository]]\nurl = %q\ninterval = \"1h\"\n", mirror.URL)
	if err := os.WriteFile(conf, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, filepath.Join(t.TempDir(), "data"), "--config", conf)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var as []protocol.AdvisorySummary
		call(t, "GET", srv.url+protocol.PathAdvisories, srv.admin, nil, &as)
		if len(as) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s the server holds %d advisories, want the repository's 4\n%s", len(as), srv.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if mirror.Requests("/repodata/repomd.xml") < 1 {
		t.Errorf("repomd.xml was never fetched")
	}
}
