package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// TestSync: a repository is imported when its repomd.xml is new or changed,
// and costs a single request when it is not.
func TestSync(t *testing.T) {
	ctx := context.Background()
	full, err := os.ReadFile(filepath.Join("testdata", "rocky8-updateinfo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	// The repository first carries the first two errata only.
	cut := bytes.Index(full, []byte("<update "))
	cut += 1 + bytes.Index(full[cut+1:], []byte("<update "))
	cut += 1 + bytes.Index(full[cut+1:], []byte("<update "))
	partial := append(append([]byte{}, full[:cut]...), []byte("</updates>\n")...)

	repo := t.TempDir()
	if err := rpmtest.NewRepo(repo, nil, partial); err != nil {
		t.Fatalf("make repository (run make deps if createrepo_c is missing): %v", err)
	}
	srv := rpmtest.Serve(t, repo)

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSyncer(svc, nil, nil)

	var none [sha256.Size]byte
	sum, res, err := s.Sync(ctx, srv.URL, none)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Imported || res.Advisories != 2 || res.Changed != 2 {
		t.Fatalf("first sync = %+v, want 2 advisories imported", res)
	}

	before := srv.Total()
	sum2, res, err := s.Sync(ctx, srv.URL, sum)
	if err != nil || res.Imported || sum2 != sum {
		t.Fatalf("unchanged sync = %+v, %v; want nothing imported", res, err)
	}
	if n := srv.Total() - before; n != 1 {
		t.Errorf("unchanged sync made %d requests, want 1 (repomd.xml)", n)
	}

	if err := rpmtest.NewRepo(repo, nil, full); err != nil {
		t.Fatal(err)
	}
	_, res, err = s.Sync(ctx, srv.URL, sum)
	if err != nil || !res.Imported || res.Advisories != 4 || res.Changed != 2 {
		t.Fatalf("sync after the repository changed = %+v, %v; want 4 read, 2 new", res, err)
	}

	srv.SetDown(true)
	if _, _, err := s.Sync(ctx, srv.URL, sum); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("sync of a repository that is down: %v, want the 503 named", err)
	}
}
