package rpmtest

import (
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/compressed"
)

// TestNewRepoServe makes a repository with createrepo_c and modifyrepo_c,
// reads its metadata back the way a client does, and serves it: counted
// requests, range requests, a download cut mid-body, and a server down.
func TestNewRepoServe(t *testing.T) {
	mustTools(t, "createrepo_c", "modifyrepo_c", "rpmbuild")
	build := t.TempDir()
	rpms, err := Build(build,
		Package{Name: "repotest", Version: "1.0", Release: "1", Arch: "noarch", Files: map[string]string{"/etc/repotest": strings.Repeat("content ", 2000)}},
		Package{Name: "repotest", Version: "1.1", Release: "1", Arch: "noarch", Files: map[string]string{"/etc/repotest": strings.Repeat("content ", 2000)}},
	)
	if err != nil {
		t.Fatal(err)
	}
	ui := []byte(`<?xml version="1.0" encoding="UTF-8"?>
<updates><update from="test" status="final" type="security" version="2"><id>TEST-2026:0001</id><title>repotest fix</title></update></updates>
`)
	repo := t.TempDir()
	if err := NewRepo(repo, rpms, ui); err != nil {
		t.Fatal(err)
	}
	repomd, err := os.ReadFile(filepath.Join(repo, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	loc := regexp.MustCompile(`<location href="(repodata/[0-9a-f]{64}-updateinfo\.xml\.gz)"/>`).FindSubmatch(repomd)
	if loc == nil {
		t.Fatalf("repomd.xml has no gzipped updateinfo record:\n%s", repomd)
	}
	if got := gunzip(t, filepath.Join(repo, string(loc[1]))); got != string(ui) {
		t.Errorf("updateinfo in the repo is %q, want %q", got, ui)
	}
	ploc := regexp.MustCompile(`<location href="(repodata/[0-9a-f]{64}-primary\.xml\.gz)"/>`).FindSubmatch(repomd)
	if ploc == nil {
		t.Fatalf("repomd.xml has no primary record:\n%s", repomd)
	}
	primary := gunzip(t, filepath.Join(repo, string(ploc[1])))
	for _, want := range []string{`<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="2">`, `<location href="Packages/repotest-1.0-1.noarch.rpm"/>`, `<version epoch="0" ver="1.1" rel="1"/>`} {
		if !strings.Contains(primary, want) {
			t.Errorf("primary.xml lacks %s:\n%s", want, primary)
		}
	}

	srv := Serve(t, repo)
	get := func(path string, hdr ...string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	resp, body, err := get("/repodata/repomd.xml")
	if err != nil || resp.StatusCode != 200 || string(body) != string(repomd) {
		t.Fatalf("GET repomd.xml: %v %v", resp, err)
	}
	if n := srv.Requests("/repodata/repomd.xml"); n != 1 {
		t.Errorf("%d requests counted for repomd.xml, want 1", n)
	}
	pkg := "/Packages/repotest-1.1-1.noarch.rpm"
	whole, err := os.ReadFile(filepath.Join(repo, pkg))
	if err != nil {
		t.Fatal(err)
	}
	srv.CutAfter(1000, 1)
	resp, body, err = get(pkg)
	if err == nil || len(body) != 1000 || resp.ContentLength != int64(len(whole)) {
		t.Errorf("cut download: %d of %d bytes, err %v; want 1000 bytes and an error", len(body), len(whole), err)
	}
	resp, body, err = get(pkg, "Range", "bytes=1000-")
	if err != nil || resp.StatusCode != http.StatusPartialContent || string(body) != string(whole[1000:]) {
		t.Errorf("resumed download: status %v, %d bytes, err %v; want 206 and the rest", resp.StatusCode, len(body), err)
	}
	srv.SetDown(true)
	if resp, _, err = get(pkg); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("server down: %v %v, want 503", resp.StatusCode, err)
	}
	srv.SetDown(false)
	if n, total := srv.Requests(pkg), srv.Total(); n != 3 || total != 4 {
		t.Errorf("counted %d requests for the package and %d in all, want 3 and 4", n, total)
	}
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(b)
}

// TestAddUpdateinfo adds updateinfo.xml with each compression dnf reads and
// reads it back by magic with pkg/compressed.
func TestAddUpdateinfo(t *testing.T) {
	mustTools(t, "createrepo_c", "modifyrepo_c")
	ui := []byte("<?xml version=\"1.0\"?>\n<updates></updates>\n")
	for _, tc := range []struct{ compression, ext string }{
		{"", "gz"}, {"gz", "gz"}, {"xz", "xz"}, {"bz2", "bz2"},
	} {
		t.Run("compression "+tc.compression, func(t *testing.T) {
			repo := t.TempDir()
			if err := NewRepo(repo, nil, nil); err != nil {
				t.Fatal(err)
			}
			if err := AddUpdateinfo(repo, ui, tc.compression); err != nil {
				t.Fatal(err)
			}
			repomd, err := os.ReadFile(filepath.Join(repo, "repodata", "repomd.xml"))
			if err != nil {
				t.Fatal(err)
			}
			loc := regexp.MustCompile(`<location href="(repodata/[0-9a-f]{64}-updateinfo\.xml\.` + tc.ext + `)"/>`).FindSubmatch(repomd)
			if loc == nil {
				t.Fatalf("repomd.xml has no updateinfo.xml.%s record:\n%s", tc.ext, repomd)
			}
			f, err := os.Open(filepath.Join(repo, string(loc[1])))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, _, err := compressed.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil || string(got) != string(ui) {
				t.Errorf("updateinfo reads back %q, %v; want %q", got, err, ui)
			}
		})
	}
}
