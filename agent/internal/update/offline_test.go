package update

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/repo"
)

// offlineWorld is the cycle world with a repomd.xml signed by a pinned
// key, served over loopback HTTP, prefetched: the packages and the
// metadata are in the state dir. log collects what Run logs.
type offlineWorld struct {
	*cycleWorld
	srv  *httptest.Server
	o    Options
	log  *bytes.Buffer
	kept string
}

func newOfflineWorld(t *testing.T) *offlineWorld {
	t.Helper()
	w := newCycleWorld(t)
	k := rpmtest.NewKey(t, rpmtest.KeyEd25519, "rpmfleet-update-offline")
	repomd := filepath.Join(w.repo, "repodata", "repomd.xml")
	// rpmtest.NewKey has just stopped the home's gpg-agent; a gpg started
	// while the old agent is still going away can meet its closing socket
	// ("Connection reset by peer"), so the signing is tried again.
	var out []byte
	var err error
	for try := 0; try < 5; try++ {
		if try > 0 {
			time.Sleep(time.Duration(try) * 200 * time.Millisecond)
		}
		out, err = exec.Command("gpg", "--homedir", k.Home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "",
			"--yes", "--armor", "--detach-sign", "-u", k.Fingerprint, "-o", repomd+".asc", repomd).CombinedOutput()
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("sign repomd.xml: %v\n%s", err, out)
	}
	srv, _ := servedRepo(t, w)
	o := w.options(nil)
	o.Repos = []string{srv.URL}
	o.Keys = append(o.Keys, k.PublicKeyFile)
	if _, err := Prefetch(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	ow := &offlineWorld{cycleWorld: w, srv: srv, o: o, log: &bytes.Buffer{}, kept: filepath.Join(w.state, "metadata", "0", "kept")}
	ow.o.Log = slog.New(slog.NewJSONHandler(ow.log, nil))
	return ow
}

// TestPrefetchKeepsMetadata: the prefetch keeps repomd.xml, its signature,
// primary and updateinfo in the state dir, private.
func TestPrefetchKeepsMetadata(t *testing.T) {
	w := newOfflineWorld(t)
	entries, err := os.ReadDir(w.kept)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		fi, err := e.Info()
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", e.Name(), fi.Mode(), err)
		}
	}
	got := strings.Join(names, " ")
	for _, want := range []string{"kept.json", "repomd.xml", "repomd.xml.asc", "-primary.xml", "-updateinfo.xml"} {
		if !strings.Contains(got, want) {
			t.Errorf("kept %q, want a %s", got, want)
		}
	}
	served, _ := os.ReadFile(filepath.Join(w.repo, "repodata", "repomd.xml"))
	kept, _ := os.ReadFile(filepath.Join(w.kept, "repomd.xml"))
	if len(served) == 0 || !bytes.Equal(served, kept) {
		t.Errorf("kept repomd.xml is not the served one")
	}
	if fi, err := os.Stat(w.kept); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("kept folder: %v, %v; want 0700", fi.Mode(), err)
	}
}

// TestApplyWithNoNetworkFromPrefetch: with the repository's server gone
// (connection refused), the apply plans from the kept metadata, installs
// the prefetched packages and commits, and says so in the log.
func TestApplyWithNoNetworkFromPrefetch(t *testing.T) {
	w := newOfflineWorld(t)
	w.srv.Close()
	res, err := Run(context.Background(), w.o)
	if err != nil || res.Cycle == nil || res.Cycle.Phase != Committed {
		t.Fatalf("apply with no network: %+v, %v\n%s", res, err, w.log)
	}
	if v := w.versions(t); v != "demo-a-1.1 demo-b-1.1" {
		t.Errorf("after the apply: %s", v)
	}
	for _, v := range res.Cycle.Verdicts {
		if !v.OK {
			t.Errorf("verdict on %s: %s", v.NEVRA, v.Detail)
		}
	}
	var line map[string]any
	for _, l := range strings.Split(w.log.String(), "\n") {
		if strings.Contains(l, "applying from the prefetched copy") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil || line["level"] != "INFO" || !strings.Contains(line["repo"].(string), w.srv.URL) || !strings.Contains(line["err"].(string), "connection refused") {
		t.Fatalf("no info line naming the repository and why:\n%s", w.log)
	}
	if age, err := time.ParseDuration(line["age"].(string)); err != nil || age < 0 || age > time.Hour {
		t.Errorf("logged age %v, %v", line["age"], err)
	}
}

// TestApplyRefusesTamperedAnswerNoFallback: a repository that answers
// with a repomd.xml its signature does not cover fails the apply; the
// kept copy is not a fallback for a wrong answer.
func TestApplyRefusesTamperedAnswerNoFallback(t *testing.T) {
	w := newOfflineWorld(t)
	p := filepath.Join(w.repo, "repodata", "repomd.xml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte("<revision>"), []byte("<revision>9"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), w.o)
	if !errors.Is(err, repo.ErrBadSignature) || strings.Contains(w.log.String(), "prefetched copy") {
		t.Fatalf("tampered answer: %v\n%s", err, w.log)
	}
	if v := w.versions(t); v != "demo-a-1.0 demo-b-1.0" {
		t.Errorf("after a refused apply: %s", v)
	}
}

// TestApplyRefusesTamperedKeptCopy: with no network, a kept repomd.xml
// changed on disk fails its signature, and a kept primary changed on disk
// fails its checksum: nothing is installed.
func TestApplyRefusesTamperedKeptCopy(t *testing.T) {
	for _, tc := range []struct {
		file string
		want error
	}{{"repomd.xml", repo.ErrBadSignature}, {"-primary.xml", repo.ErrChecksum}} {
		t.Run(tc.file, func(t *testing.T) {
			w := newOfflineWorld(t)
			w.srv.Close()
			entries, _ := os.ReadDir(w.kept)
			tampered := 0
			for _, e := range entries {
				if e.Name() == tc.file || strings.HasPrefix(tc.file, "-") && strings.Contains(e.Name(), tc.file) {
					tampered++
					p := filepath.Join(w.kept, e.Name())
					b, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					b[len(b)/2] ^= 1
					if err := os.WriteFile(p, b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tampered != 1 {
				t.Fatalf("tampered %d files named %s", tampered, tc.file)
			}
			_, err := Run(context.Background(), w.o)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrPlan) {
				t.Fatalf("tampered kept %s: %v, want %v", tc.file, err, tc.want)
			}
			if v := w.versions(t); v != "demo-a-1.0 demo-b-1.0" {
				t.Errorf("after a refused apply: %s", v)
			}
		})
	}
}

// TestApplyRefusesTooOldKeptCopy: a copy kept more than
// DefaultPrefetchMaxAge ago is refused, naming its age.
func TestApplyRefusesTooOldKeptCopy(t *testing.T) {
	w := newOfflineWorld(t)
	w.srv.Close()
	p := filepath.Join(w.kept, "kept.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	// A prefetch 8 days ago.
	info["fetched"] = time.Now().Add(-DefaultPrefetchMaxAge - 24*time.Hour).UTC().Format(time.RFC3339)
	b, _ = json.Marshal(info)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), w.o)
	if !errors.Is(err, repo.ErrKeptTooOld) || !strings.Contains(err.Error(), "more than the 168h0m0s allowed") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("too old a copy: %v", err)
	}
	if v := w.versions(t); v != "demo-a-1.0 demo-b-1.0" {
		t.Errorf("after a refused apply: %s", v)
	}
}
