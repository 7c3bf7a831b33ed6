package integration

import (
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFleetDownloadModePrefetches: a group policy "download" (the device's
// file says apply, so download is the narrower) makes the real agent fetch
// and verify the fix and its rollback package into its state dir without
// installing anything. The repository's HTTP server is then stopped (a
// connection is refused), the group policy turns to apply, and the agent
// installs the fix with no network: it plans from the metadata the
// prefetch kept, checked again, and installs the packages it prefetched.
func TestFleetDownloadModePrefetches(t *testing.T) {
	repo := newFleetRepo(t)
	dir := t.TempDir()
	srv, _ := startPushServer(t, filepath.Join(dir, "data"))
	dumpOnFailure(t, srv)
	admin := adminEnv(srv)
	setPolicy := func(mode string) {
		pf := filepath.Join(dir, mode+".json")
		if err := os.WriteFile(pf, []byte(`{"mode": "`+mode+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		must(t, admin, "rpmfleet", "group", "policy", "field", pf)
	}
	must(t, admin, "rpmfleet", "group", "set", "field", "site=field")
	setPolicy("download")
	a := startAgent(t, srv, repo, "pi-dl", repo.deviceRoot(t), agentConfig{Mode: "apply", Window: "open"})
	must(t, admin, "rpmfleet", "labels", a.name, "site=field")
	waitReported(t, srv, a)
	mark := a.log.Len()
	importFix(t, srv, repo)
	a.waitLog(t, mark, 60*time.Second, "prefetch finished", "packages=1")
	if v := installed(t, a.root, "demo-lib"); v != oldLib {
		t.Fatalf("download mode installed demo-lib %s", v)
	}
	// Both the fix and the rollback package are in the state dir.
	for _, name := range []string{"demo-lib-1.1", "demo-lib-1.0"} {
		base := filepath.Base(repo.rpms[name])
		found := false
		filepath.WalkDir(a.state, func(p string, d fs.DirEntry, err error) error {
			found = found || err == nil && d.Name() == base
			return nil
		})
		if !found {
			t.Errorf("%s not prefetched into %s", base, a.state)
		}
	}
	// The repository goes out of reach.
	repo.srv.Stop()
	if resp, err := http.Get(repo.url() + "repodata/repomd.xml"); err == nil {
		resp.Body.Close()
		t.Fatalf("the repository still answers: %s", resp.Status)
	}
	mark = a.log.Len()
	setPolicy("apply")
	a.waitInstalled(t, 60*time.Second, "demo-lib", newLib)
	a.waitLog(t, mark, 10*time.Second, "applying from the prefetched copy", "age=")
}
