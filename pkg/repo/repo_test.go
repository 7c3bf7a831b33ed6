package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run make deps", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The real packages the test repositories hold.
var rpmFiles = []string{
	"rpm-packages/rpm-upstream-testdata/hello-2.0-1.x86_64.rpm",
	"rpm-packages/rpm-upstream-testdata/foo-1.0-1.noarch.rpm",
	"rpm-packages/rhel8-signed/crypto-policies-20210617-1.gitc776d3e.el8.noarch.rpm",
}

// testAdvisories fix the repository's packages; one is in a module stream.
func testAdvisories() []*advisory.Advisory {
	return []*advisory.Advisory{
		{
			ID: "RFSA-2026:0001", Type: advisory.Security, Severity: advisory.Important,
			Issued: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Title: "Important: hello security update",
			CVEs:       []string{"CVE-2026-0001"},
			References: []advisory.Reference{{Type: "cve", ID: "CVE-2026-0001", URL: "https://example.org/CVE-2026-0001", Title: "CVE-2026-0001"}},
			Packages: []advisory.Package{{
				Name: "hello", EVR: rpmver.EVR{Epoch: "0", Version: "2.0", Release: "1"}, Arch: "x86_64",
				Filename: "Packages/hello-2.0-1.x86_64.rpm",
			}},
		},
		{
			ID: "RFBA-2026:0002", Type: advisory.Bugfix, RebootSuggested: true,
			Packages: []advisory.Package{
				{Name: "crypto-policies", EVR: rpmver.EVR{Version: "20210617", Release: "1.gitc776d3e.el8"}, Arch: "noarch"},
				{Name: "foo", EVR: rpmver.EVR{Version: "1.0", Release: "1"}, Arch: "noarch", Module: &advisory.Module{Name: "foo", Stream: "1"}},
			},
		},
	}
}

// rpmFacts is what the real rpm says about a package file, with the file's
// own digest and size.
type rpmFacts struct {
	name, epoch, version, release, arch, sourcerpm string
	sha256                                         string
	size                                           int64
}

func factsFromRPM(t *testing.T, paths []string) map[string]rpmFacts {
	t.Helper()
	out := run(t, "rpm", append([]string{"-qp", "--nosignature", "--qf", `%{NAME} %{EPOCHNUM} %{VERSION} %{RELEASE} %{ARCH} %{SOURCERPM}\n`}, paths...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(paths) {
		t.Fatalf("rpm -qp printed %d lines for %d packages:\n%s", len(lines), len(paths), out)
	}
	facts := map[string]rpmFacts{}
	for i, l := range lines {
		f := strings.Fields(l)
		raw, err := os.ReadFile(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(raw)
		facts[f[0]] = rpmFacts{f[0], f[1], f[2], f[3], f[4], f[5], hex.EncodeToString(sum[:]), int64(len(raw))}
	}
	return facts
}

// makeRepo builds a repository with createrepo_c over the real packages,
// compressing its metadata with compress, and, when withUpdateinfo, adds
// the test advisories with modifyrepo_c.
func makeRepo(t *testing.T, compress string, withUpdateinfo bool) string {
	t.Helper()
	need(t, "createrepo_c", "modifyrepo_c", "rpm")
	dir := t.TempDir()
	pkgDir := filepath.Join(dir, "Packages")
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range rpmFiles {
		raw, err := os.ReadFile(filepath.Join(sharedFixtures(t), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkgDir, filepath.Base(f)), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "createrepo_c", "--quiet", "--no-database", "--general-compress-type", compress, dir)
	if withUpdateinfo {
		ui := filepath.Join(t.TempDir(), "updateinfo.xml")
		f, err := os.Create(ui)
		if err != nil {
			t.Fatal(err)
		}
		if err := updateinfo.Encode(f, testAdvisories()); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		run(t, "modifyrepo_c", "--mdtype", "updateinfo", "--compress-type", compress, ui, filepath.Join(dir, "repodata"))
	}
	return dir
}

var extensions = map[string]string{"gz": ".gz", "xz": ".xz", "bz2": ".bz2"}

// TestRepository reads a repository made by the real createrepo_c and
// modifyrepo_c, from its directory and over HTTP, and checks what it finds
// against the real rpm and the advisories written into it.
func TestRepository(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, compress := range []string{"gz", "xz", "bz2"} {
		dir := makeRepo(t, compress, true)
		srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
		defer srv.Close()
		var rpmPaths []string
		for _, f := range rpmFiles {
			rpmPaths = append(rpmPaths, filepath.Join(dir, "Packages", filepath.Base(f)))
		}
		facts := factsFromRPM(t, rpmPaths)

		for _, base := range []struct{ name, base string }{{"dir", dir}, {"file url", "file://" + dir}, {"http", srv.URL}} {
			t.Run(compress+"/"+base.name, func(t *testing.T) {
				r, err := New(base.base, Options{HTTPClient: srv.Client()})
				if err != nil {
					t.Fatal(err)
				}
				m, err := r.Metadata(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, typ := range []string{"primary", "filelists", "other", "updateinfo"} {
					d, ok := m.Get(typ)
					if !ok {
						t.Fatalf("repomd.xml has no %s: %v", typ, types(m))
					}
					// Unique file names: "<sha256>-<type>.xml.<ext>".
					if want := "repodata/" + d.Checksum.Value + "-" + typ + ".xml" + extensions[compress]; d.Location != want || d.Checksum.Type != "sha256" {
						t.Errorf("%s at %s (%s), want %s", typ, d.Location, d.Checksum.Type, want)
					}
				}

				p, err := r.Primary(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				seen := 0
				for {
					pkg, err := p.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					seen++
					f, ok := facts[pkg.Name]
					got := rpmFacts{pkg.Name, pkg.Epoch, pkg.Version, pkg.Release, pkg.Arch, pkg.SourceRPM, pkg.Checksum.Value, pkg.Size}
					if !ok || got != f {
						t.Errorf("primary says %+v\n     rpm says %+v", got, f)
					}
					if pkg.Location != "Packages/"+filepath.Base(rpmPathOf(rpmPaths, pkg.Name)) {
						t.Errorf("%s at %q", pkg.Name, pkg.Location)
					}
					u, err := r.PackageURL(pkg)
					if err != nil {
						t.Fatal(err)
					}
					if sum := digestOf(t, srv.Client(), u); sum != pkg.Checksum.Value {
						t.Errorf("%s: %s has sha256 %s, primary says %s", pkg.Name, u, sum, pkg.Checksum.Value)
					}
				}
				if seen != len(rpmFiles) {
					t.Errorf("primary lists %d packages, want %d", seen, len(rpmFiles))
				}

				u, err := r.Updateinfo(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer u.Close()
				var advs []*advisory.Advisory
				for {
					a, err := u.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					advs = append(advs, a)
				}
				if want := testAdvisories(); !reflect.DeepEqual(advs, want) {
					t.Errorf("updateinfo through the repository:\n got %+v\nwant %+v", advs, want)
				}
			})
		}
	}
}

func rpmPathOf(paths []string, name string) string {
	for _, p := range paths {
		if strings.HasPrefix(filepath.Base(p), name+"-") {
			return p
		}
	}
	return ""
}

func digestOf(t *testing.T, c *http.Client, loc string) string {
	t.Helper()
	var rc io.ReadCloser
	if strings.HasPrefix(loc, "http") {
		resp, err := c.Get(loc)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", loc, resp.Status)
		}
		rc = resp.Body
	} else {
		f, err := os.Open(loc)
		if err != nil {
			t.Fatal(err)
		}
		rc = f
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// readData opens and reads a metadata file to its end.
func readData(r *Repo, typ string) error {
	rc, err := r.Open(context.Background(), typ)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// TestTampered: a metadata file that is not what repomd.xml says is refused,
// from a directory and over HTTP, and the error names the file and both
// digests.
func TestTampered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		typ    string
		tamper func(t *testing.T, path string)
		want   []string
	}{
		{"primary byte flipped", "primary", func(t *testing.T, path string) {
			raw := readFile(t, path)
			raw[len(raw)/2] ^= 0x01
			writeFile(t, path, raw)
		}, []string{"repo: checksum mismatch", "-primary.xml.gz: repomd.xml says sha256:"}},
		{"primary replaced by another valid gzip", "primary", func(t *testing.T, path string) {
			// Well-formed, decompresses fine, still not the file repomd.xml names.
			writeFile(t, path, readFile(t, "testdata/yummy/repodata/primary.xml.gz"))
		}, []string{"repo: checksum mismatch", ", the file has sha256:82223f69a4954f5a172973631e45a17af8fe8255e7748444c8842bb28713fbb6"}},
		{"updateinfo with bytes appended", "updateinfo", func(t *testing.T, path string) {
			writeFile(t, path, append(readFile(t, path), "junk"...))
		}, []string{"repo: checksum mismatch", "-updateinfo.xml.gz: longer than the"}},
		{"updateinfo cut short", "updateinfo", func(t *testing.T, path string) {
			raw := readFile(t, path)
			writeFile(t, path, raw[:len(raw)-10])
		}, []string{"repo: checksum mismatch", "-updateinfo.xml.gz: repomd.xml says sha256:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := makeRepo(t, "gz", true)
			srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
			defer srv.Close()
			r, err := New(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			m, err := r.Metadata(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			d, _ := m.Get(tt.typ)
			tt.tamper(t, filepath.Join(dir, d.Location))
			for _, base := range []string{dir, srv.URL} {
				r, err := New(base, Options{HTTPClient: srv.Client()})
				if err != nil {
					t.Fatal(err)
				}
				err = readData(r, tt.typ)
				if !errors.Is(err, ErrChecksum) {
					t.Fatalf("%s: got %v, want ErrChecksum", base, err)
				}
				for _, w := range append(tt.want, d.Checksum.Value) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: error %q does not say %q", base, err, w)
					}
				}
			}
		})
	}
}

// TestYummyStaleChecksum: the real RHEL 7 primary.xml.gz was trimmed after
// its repomd.xml was written, so its digest no longer matches.
func TestYummyStaleChecksum(t *testing.T) {
	t.Parallel()
	r, err := New("testdata/yummy", Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = readData(r, "primary")
	want := "repo: checksum mismatch: " + filepath.Join("testdata/yummy", "repodata/primary.xml.gz") +
		": repomd.xml says sha256:0d601662ea6b0c7e71e02a1a71a85852b3ddba6ff900ad9406d38fb543393091, the file has sha256:82223f69a4954f5a172973631e45a17af8fe8255e7748444c8842bb28713fbb6"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

func TestNoUpdateinfo(t *testing.T) {
	t.Parallel()
	dir := makeRepo(t, "gz", false)
	r, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Updateinfo(context.Background()); !errors.Is(err, ErrNoUpdateinfo) {
		t.Fatalf("got %v, want ErrNoUpdateinfo", err)
	}
	if err := readData(r, "modules"); !errors.Is(err, ErrNoData) {
		t.Fatalf("got %v, want ErrNoData", err)
	}
}

func TestFetchErrors(t *testing.T) {
	t.Parallel()
	dir := makeRepo(t, "gz", true)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	ctx := context.Background()

	t.Run("http 404 names the URL", func(t *testing.T) {
		r, _ := New(srv.URL+"/nowhere", Options{HTTPClient: srv.Client()})
		_, err := r.Metadata(ctx)
		want := "repo: GET " + srv.URL + "/nowhere/repodata/repomd.xml: 404 Not Found"
		if err == nil || err.Error() != want {
			t.Fatalf("got %v, want %s", err, want)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		r, _ := New(filepath.Join(dir, "nowhere"), Options{})
		if _, err := r.Metadata(ctx); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unreachable server", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL
		dead.Close()
		r, _ := New(url, Options{})
		if _, err := r.Metadata(ctx); err == nil || !strings.Contains(err.Error(), url) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		r, _ := New(srv.URL, Options{HTTPClient: srv.Client()})
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := r.Metadata(cctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("location leaving the repository", func(t *testing.T) {
		for _, href := range []string{"../../etc/passwd", "/etc/passwd", "repodata/../../x", "http://evil.example/x"} {
			r, _ := New(dir, Options{})
			_, err := r.OpenData(ctx, Data{Type: "primary", Location: href, Checksum: Checksum{"sha256", strings.Repeat("0", 64)}})
			if err == nil || !(strings.Contains(err.Error(), "leaves the repository") || strings.Contains(err.Error(), "is not a relative path")) {
				t.Errorf("%s: got %v", href, err)
			}
		}
	})
	t.Run("unsupported scheme", func(t *testing.T) {
		if _, err := New("ftp://mirror.example/repo", Options{}); err == nil || !strings.Contains(err.Error(), `unsupported scheme "ftp"`) {
			t.Fatalf("got %v", err)
		}
	})
}

// TestMetadataRefresh: Metadata reads repomd.xml again, so a repository
// updated in place is seen.
func TestMetadataRefresh(t *testing.T) {
	t.Parallel()
	dir := makeRepo(t, "gz", false)
	r, _ := New(dir, Options{})
	ctx := context.Background()
	m1, err := r.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m1.Get("updateinfo"); ok {
		t.Fatal("updateinfo before modifyrepo_c")
	}
	ui := filepath.Join(t.TempDir(), "updateinfo.xml")
	writeFile(t, ui, []byte("<updates/>"))
	run(t, "modifyrepo_c", "--mdtype", "updateinfo", ui, filepath.Join(dir, "repodata"))
	if _, err := r.Metadata(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := r.Updateinfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Next(); err != io.EOF {
		t.Fatalf("empty updateinfo: got %v, want io.EOF", err)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func writeFile(t *testing.T, p string, raw []byte) {
	t.Helper()
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestContentEncodingGzip: some web servers label .gz files
// Content-Encoding: gzip. The checksums are of the stored bytes, so the
// reader must not let the HTTP client decompress them.
func TestContentEncodingGzip(t *testing.T) {
	t.Parallel()
	dir := makeRepo(t, "gz", true)
	fs := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasSuffix(req.URL.Path, ".gz") {
			w.Header().Set("Content-Encoding", "gzip")
		}
		fs.ServeHTTP(w, req)
	}))
	defer srv.Close()
	r, err := New(srv.URL, Options{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"primary", "updateinfo"} {
		if err := readData(r, typ); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
}
