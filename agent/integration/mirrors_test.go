package integration

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// The mirror tests put the real stock .repo text of an AlmaLinux 9 device
// (pkg/repo/testdata/mirrors: baseurl commented out, mirrorlist= on
// mirrors.almalinux.org) and of EPEL (metalink= on
// mirrors.fedoraproject.org, with $infra and $contentdir) into a device
// root, and point them at loopback servers. The only change made to the
// files' text is the host part of the mirrorlist/metalink URL
// (mirrors.almalinux.org and mirrors.fedoraproject.org become 127.0.0.1
// and the port of a TLS server the test starts; the scheme stays https,
// and the agent trusts the test server's certificate through
// SSL_CERT_FILE). The mirror list and the metalink name three mirrors of
// the world's real createrepo_c repository of signed RPMs: one that
// refuses connections, one broken (500, or a tampered repomd.xml), one
// good. The agent must end on the good one and log the others with why.

// basearch is dnf's $basearch of this machine, which the agent fills in.
func basearch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "arm":
		return "armhfp"
	}
	return runtime.GOARCH
}

// mirrorSite serves a repository folder at a path prefix over HTTP, or
// answers 500, or serves a tampered repomd.xml, or (lagging) good metadata
// but no packages, or (corrupt) other bytes for each package; it counts
// requests.
type mirrorSite struct {
	srv  *httptest.Server
	base string
	mu   sync.Mutex
	hits map[string]int
}

func newMirrorSite(t *testing.T, dir, prefix, mode string) *mirrorSite {
	t.Helper()
	m := &mirrorSite{hits: map[string]int{}}
	files := http.StripPrefix(prefix, http.FileServer(http.Dir(dir)))
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.hits[strings.TrimPrefix(r.URL.Path, prefix)]++
		m.mu.Unlock()
		switch {
		case mode == "500":
			http.Error(w, "mirror broken on purpose", http.StatusInternalServerError)
		case mode == "lagging" && strings.Contains(r.URL.Path, "/Packages/"):
			// Metadata synced, packages not yet: a mirror mid-sync.
			http.NotFound(w, r)
		case mode == "corrupt" && strings.HasSuffix(r.URL.Path, ".rpm"):
			// Another file under the package's name, of the same size.
			fi, err := os.Stat(filepath.Join(dir, strings.TrimPrefix(r.URL.Path, prefix)))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			w.Write(bytes.Repeat([]byte{0xed}, int(fi.Size())))
		case mode == "tampered" && strings.HasSuffix(r.URL.Path, "/repodata/repomd.xml"):
			raw, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			// A mirror that rolls the revision back: what a replay of
			// an old repomd.xml looks like to the bytes.
			w.Write(bytes.Replace(raw, []byte("<revision>"), []byte("<revision>1"), 1))
		default:
			files.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(m.srv.Close)
	m.base = m.srv.URL + prefix
	return m
}

func (m *mirrorSite) count(rel string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hits[rel]
}

// refusedURL is a loopback URL that refuses connections.
func refusedURL(t *testing.T) string {
	s := httptest.NewServer(http.NotFoundHandler())
	u := s.URL
	s.Close()
	return u
}

// listSite is the stand-in for mirrors.almalinux.org and
// mirrors.fedoraproject.org: https on loopback, answering one path.
type listSite struct {
	srv      *httptest.Server
	host     string // 127.0.0.1:port
	certFile string
	mu       sync.Mutex
	asked    []string // request URIs
}

func newListSite(t *testing.T, path string, body func(r *http.Request) (string, int)) *listSite {
	t.Helper()
	s := &listSite{}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.asked = append(s.asked, r.URL.RequestURI())
		s.mu.Unlock()
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		b, code := body(r)
		w.WriteHeader(code)
		io.WriteString(w, b)
	}))
	t.Cleanup(s.srv.Close)
	s.host = strings.TrimPrefix(s.srv.URL, "https://")
	s.certFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	if err := os.WriteFile(s.certFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// stockRepoFile returns a real .repo file of the testdata with only the
// host of its mirror URLs changed, and checks that nothing else changed.
func stockRepoFile(t *testing.T, name, realHost, host string) []byte {
	t.Helper()
	// The real files live beside the parsers that read them.
	raw, err := os.ReadFile(filepath.Join("..", "..", "pkg", "repo", "testdata", "mirrors", name))
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.ReplaceAll(raw, []byte("https://"+realHost+"/"), []byte("https://"+host+"/"))
	if bytes.Equal(out, raw) || !bytes.Equal(bytes.ReplaceAll(out, []byte(host), []byte(realHost)), raw) {
		t.Fatalf("%s: rewriting %s to %s changed more than the host", name, realHost, host)
	}
	if !bytes.Contains(raw, []byte("# baseurl=")) && !bytes.Contains(raw, []byte("#baseurl=")) {
		t.Fatalf("%s: not the stock text with baseurl commented out", name)
	}
	return out
}

// deviceRepos writes a .repo file, the keys its gpgkey= names (the world's
// test keys under the stock file names) and dnf variables into a root.
func deviceRepos(t *testing.T, w *world, repoFile string, body []byte, keyNames []string, vars map[string]string) {
	t.Helper()
	var keys []byte
	for _, k := range w.keys {
		b, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, b...)
	}
	files := map[string][]byte{"etc/yum.repos.d/" + repoFile: body}
	for _, n := range keyNames {
		files["etc/pki/rpm-gpg/"+n] = keys
	}
	for k, v := range vars {
		files["etc/dnf/vars/"+k] = []byte(v + "\n")
	}
	for p, b := range files {
		full := filepath.Join(w.root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runWithCA runs the agent trusting the list site's certificate.
func runWithCA(t *testing.T, certFile string, args ...string) result {
	t.Helper()
	cmd := exec.Command(agentBin, args...)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+certFile, "SSL_CERT_DIR=/nonexistent")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// assertSkipped finds the log line saying a mirror was skipped, and checks why.
func assertSkipped(t *testing.T, log, mirror, why string) {
	t.Helper()
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="mirror skipped"`) && strings.Contains(l, "mirror="+mirror) {
			if !strings.Contains(l, why) {
				t.Errorf("mirror %s skipped for another reason than %q:\n%s", mirror, why, l)
			}
			return
		}
	}
	t.Errorf("the log does not say mirror %s was skipped (%s):\n%s", mirror, why, log)
}

// TestStockAlmaLinuxMirrorList: check (no --advisories) and apply on a root
// whose yum.repos.d holds the stock almalinux-baseos.repo.
func TestStockAlmaLinuxMirrorList(t *testing.T) {
	w := newWorld(t, worldOpts{})
	arch := basearch()
	prefix := "/almalinux/9/BaseOS/" + arch + "/os/"
	refused := refusedURL(t) + prefix
	broken := newMirrorSite(t, w.repoDir, prefix, "500")
	good := newMirrorSite(t, w.repoDir, prefix, "good")
	// AlmaLinux's service answers base URLs with $basearch left in.
	generic := func(s string) string { return strings.Replace(s, "/"+arch+"/", "/$basearch/", 1) }
	list := newListSite(t, "/mirrorlist/9/baseos", func(*http.Request) (string, int) {
		return generic(refused) + "\n" + generic(broken.base) + "\n" + generic(good.base) + "\n", http.StatusOK
	})
	deviceRepos(t, w, "almalinux-baseos.repo", stockRepoFile(t, "almalinux-9-baseos.repo", "mirrors.almalinux.org", list.host),
		[]string{"RPM-GPG-KEY-AlmaLinux-9"}, nil)
	cache := t.TempDir()

	r := runWithCA(t, list.certFile, "check", "--root", w.root, "--cache-dir", cache, "--json")
	if r.code != 100 {
		t.Fatalf("check: exit %d, want 100\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	out := parseCheck(t, r)
	if len(out.Advisories) != 1 || out.Advisories[0].ID != applyAdvisory || len(out.Advisories[0].Packages) != 2 {
		t.Fatalf("check found %+v, want %s for demo-lib and demo-app", out.Advisories, applyAdvisory)
	}
	assertSkipped(t, r.stderr, refused, "connection refused")
	assertSkipped(t, r.stderr, broken.base, "500 Internal Server Error")
	if got := list.asked; len(got) != 1 || got[0] != "/mirrorlist/9/baseos" {
		t.Errorf("mirror list asked as %v, want /mirrorlist/9/baseos ($releasever from os-release)", got)
	}
	uiFile := ""
	for p := range good.hits {
		if strings.HasSuffix(p, "-updateinfo.xml.gz") {
			uiFile = p
		}
	}
	if uiFile == "" || good.count(uiFile) != 1 {
		t.Fatalf("updateinfo not fetched from the good mirror once: %v", good.hits)
	}
	// Again: the updateinfo is cached by checksum, only repomd.xml is asked.
	r = runWithCA(t, list.certFile, "check", "--root", w.root, "--cache-dir", cache)
	if r.code != 100 || !strings.Contains(r.stdout, applyAdvisory) {
		t.Fatalf("second check: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if n := good.count(uiFile); n != 1 {
		t.Errorf("updateinfo fetched %d times over two checks, want once (cache)", n)
	}
	if n := good.count("repodata/repomd.xml"); n != 2 {
		t.Errorf("repomd.xml fetched %d times, want once a check", n)
	}

	r = runWithCA(t, list.certFile, "apply", "--root", w.root, "--state-dir", w.stateDir, "--security")
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, after, "apply through the stock mirror list")
	assertSkipped(t, r.stderr, refused, "connection refused")
	assertSkipped(t, r.stderr, broken.base, "500 Internal Server Error")
	for _, p := range []string{"Packages/demo-lib-1.1-1.x86_64.rpm", "Packages/demo-app-2.1-1.x86_64.rpm"} {
		if good.count(p) == 0 {
			t.Errorf("%s not downloaded from the good mirror: %v", p, good.hits)
		}
	}
}

// TestApplyPackageMirrorFailover: the mirror whose metadata is taken can
// still fail to serve a package: one mid-sync answers 404 for it, another
// serves other bytes under its name. apply goes on to the next mirror for
// each package, as dnf does, and installs what the good one serves; the
// corrupt bytes never reach rpm (they do not match primary.xml's digest).
func TestApplyPackageMirrorFailover(t *testing.T) {
	w := newWorld(t, worldOpts{})
	arch := basearch()
	prefix := "/almalinux/9/BaseOS/" + arch + "/os/"
	lagging := newMirrorSite(t, w.repoDir, prefix, "lagging")
	corrupt := newMirrorSite(t, w.repoDir, prefix, "corrupt")
	good := newMirrorSite(t, w.repoDir, prefix, "good")
	list := newListSite(t, "/mirrorlist/9/baseos", func(*http.Request) (string, int) {
		return lagging.base + "\n" + corrupt.base + "\n" + good.base + "\n", http.StatusOK
	})
	deviceRepos(t, w, "almalinux-baseos.repo", stockRepoFile(t, "almalinux-9-baseos.repo", "mirrors.almalinux.org", list.host),
		[]string{"RPM-GPG-KEY-AlmaLinux-9"}, nil)

	r := runWithCA(t, list.certFile, "apply", "--root", w.root, "--state-dir", w.stateDir, "--security")
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, after, "apply through mirrors that fail to serve the packages")
	if n := lagging.count("repodata/repomd.xml"); n != 1 {
		t.Errorf("the lagging mirror's repomd.xml was asked %d times, want once (its metadata is taken)", n)
	}
	if n := good.count("repodata/repomd.xml"); n != 0 {
		t.Errorf("the good mirror's repomd.xml was asked %d times, want none (the first mirror served it)", n)
	}
	for _, p := range []string{"Packages/demo-lib-1.1-1.x86_64.rpm", "Packages/demo-app-2.1-1.x86_64.rpm"} {
		for _, m := range []*mirrorSite{lagging, corrupt, good} {
			if m.count(p) == 0 {
				t.Errorf("%s not asked of %s: %v", p, m.base, m.hits)
			}
		}
	}
	var failedOver []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, "mirror failed to serve the package") {
			failedOver = append(failedOver, l)
		}
	}
	// Each new package and each rollback package (old versions, also on
	// the mirrors): two failures apiece, one per bad mirror.
	if len(failedOver) < 4 {
		t.Fatalf("%d failover lines, want 2 per package:\n%s", len(failedOver), r.stderr)
	}
	for _, l := range failedOver {
		switch {
		case strings.Contains(l, "url="+lagging.base) && strings.Contains(l, "404 Not Found"):
		case strings.Contains(l, "url="+corrupt.base) && strings.Contains(l, "the repository metadata says"):
		default:
			t.Errorf("failover for another reason than expected:\n%s", l)
		}
	}
}

// metalinkDoc writes a metalink in MirrorManager's format for a repomd.xml
// and mirror bases, highest preference first.
func metalinkDoc(repomd []byte, bases ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="utf-8"?>
<metalink version="3.0" xmlns="http://www.metalinker.org/" type="dynamic" pubdate="Tue, 15 Oct 2013 08:48:18 GMT" generator="mirrormanager" xmlns:mm0="http://fedorahosted.org/mirrormanager">
  <files>
    <file name="repomd.xml">
      <mm0:timestamp>1381706941</mm0:timestamp>
      <size>%d</size>
      <verification>
        <hash type="sha256">%x</hash>
        <hash type="sha512">%x</hash>
      </verification>
      <resources maxconnections="1">
`, len(repomd), sha256.Sum256(repomd), sha512.Sum512(repomd))
	for i, base := range bases {
		fmt.Fprintf(&b, "        <url protocol=\"http\" type=\"http\" location=\"US\" preference=\"%d\" >%srepodata/repomd.xml</url>\n", 100-i, base)
	}
	b.WriteString("      </resources>\n    </file>\n  </files>\n</metalink>\n")
	return b.String()
}

// TestStockEPELMetalink: check and apply on a root whose yum.repos.d holds
// the stock epel.repo; the tampered mirror is caught by the metalink.
func TestStockEPELMetalink(t *testing.T) {
	w := newWorld(t, worldOpts{})
	arch := basearch()
	prefix := "/pub/epel/9/Everything/" + arch + "/"
	refused := refusedURL(t) + prefix
	tampered := newMirrorSite(t, w.repoDir, prefix, "tampered")
	good := newMirrorSite(t, w.repoDir, prefix, "good")
	repomd, err := os.ReadFile(filepath.Join(w.repoDir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	wantQuery := "repo=epel-9&arch=" + arch + "&infra=stock&content=almalinux"
	list := newListSite(t, "/metalink", func(r *http.Request) (string, int) {
		if r.URL.RawQuery != wantQuery {
			return "unexpected query " + r.URL.RawQuery, http.StatusBadRequest
		}
		return metalinkDoc(repomd, refused, tampered.base, good.base), http.StatusOK
	})
	deviceRepos(t, w, "epel.repo", stockRepoFile(t, "epel-8.repo", "mirrors.fedoraproject.org", list.host),
		[]string{"RPM-GPG-KEY-EPEL-8"}, map[string]string{"infra": "stock", "contentdir": "almalinux"})

	w2 := w.fork(t) // the device as it was, for the last part

	r := runWithCA(t, list.certFile, "check", "--root", w.root, "--cache-dir", t.TempDir(), "--json")
	if r.code != 100 {
		t.Fatalf("check: exit %d, want 100\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if out := parseCheck(t, r); len(out.Advisories) != 1 || out.Advisories[0].ID != applyAdvisory {
		t.Fatalf("check found %+v", out.Advisories)
	}
	assertSkipped(t, r.stderr, refused, "connection refused")
	assertSkipped(t, r.stderr, tampered.base, "repomd.xml does not match the metalink")
	if tampered.count("repodata/primary.xml.gz") != 0 || len(tampered.hits) != 1 {
		t.Errorf("the tampered mirror was used beyond its repomd.xml: %v", tampered.hits)
	}

	r = runWithCA(t, list.certFile, "apply", "--root", w.root, "--state-dir", w.stateDir, "--advisory", applyAdvisory)
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w, after, "apply through the stock metalink")
	assertSkipped(t, r.stderr, tampered.base, "repomd.xml does not match the metalink")
	if good.count("Packages/demo-lib-1.1-1.x86_64.rpm") == 0 {
		t.Errorf("demo-lib not downloaded from the good mirror: %v", good.hits)
	}

	// Every mirror bad: nothing is planned and the error names each.
	all := newListSite(t, "/metalink", func(*http.Request) (string, int) {
		return metalinkDoc(repomd, refused, tampered.base), http.StatusOK
	})
	deviceRepos(t, w2, "epel.repo", stockRepoFile(t, "epel-8.repo", "mirrors.fedoraproject.org", all.host),
		[]string{"RPM-GPG-KEY-EPEL-8"}, map[string]string{"infra": "stock", "contentdir": "almalinux"})
	r = runWithCA(t, all.certFile, "apply", "--root", w2.root, "--state-dir", w2.stateDir, "--advisory", applyAdvisory)
	if r.code != 1 || !strings.Contains(r.stderr, "no usable mirror") || !strings.Contains(r.stderr, "2 tried") ||
		!strings.Contains(r.stderr, "does not match the metalink") {
		t.Fatalf("all mirrors bad: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertDB(t, w2, before, "no usable mirror")
}

// TestApplyChecksumNames: a repository whose metadata uses each checksum
// name createrepo_c writes plans and downloads; md5 is refused when the
// plan reads the metadata, before anything is downloaded.
func TestApplyChecksumNames(t *testing.T) {
	w := newWorld(t, worldOpts{})
	var ui []byte
	matches, _ := filepath.Glob(filepath.Join(w.repoDir, "repodata", "*-updateinfo.xml.gz"))
	if len(matches) != 1 {
		t.Fatalf("updateinfo files %v", matches)
	}
	f, err := os.Open(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if ui, err = io.ReadAll(zr); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, sum := range []string{"sha", "sha1", "sha224", "sha256", "sha384", "sha512", "md5"} {
		t.Run(sum, func(t *testing.T) {
			dev := w.fork(t)
			repoDir := filepath.Join(t.TempDir(), "repo")
			if err := os.MkdirAll(repoDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("cp", "-a", filepath.Join(w.repoDir, "Packages"), repoDir+"/").CombinedOutput(); err != nil {
				t.Fatalf("cp: %v\n%s", err, out)
			}
			uiFile := filepath.Join(t.TempDir(), "updateinfo.xml")
			if err := os.WriteFile(uiFile, ui, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, c := range [][]string{
				{"createrepo_c", "--quiet", "--no-database", "--checksum", sum, repoDir},
				{"modifyrepo_c", "--mdtype=updateinfo", "--checksum", sum, uiFile, filepath.Join(repoDir, "repodata")},
			} {
				if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
					t.Fatalf("%v: %v\n%s", c, err, out)
				}
			}
			md, _ := os.ReadFile(filepath.Join(repoDir, "repodata", "repomd.xml"))
			if !bytes.Contains(md, []byte(`<checksum type="`+sum+`">`)) {
				t.Fatalf("createrepo_c did not write checksum type %q:\n%s", sum, md)
			}
			srv := newMirrorSite(t, repoDir, "/", "good")
			args := []string{"apply", "--root", dev.root, "--repo", srv.base, "--state-dir", dev.stateDir, "--advisory", applyAdvisory}
			for _, k := range w.keys {
				args = append(args, "--gpgkey", k)
			}
			r := runAgent(t, args...)
			if sum == "md5" {
				if r.code != 1 || !strings.Contains(r.stderr, `refused weak checksum type "md5"`) {
					t.Fatalf("md5: exit %d, want a refusal naming md5\n%s\n%s", r.code, r.stdout, r.stderr)
				}
				if h := dev.history(t); len(h) != 0 {
					t.Errorf("md5 repository made a cycle: %v", h)
				}
				for p := range srv.hits {
					if strings.HasPrefix(p, "Packages/") {
						t.Errorf("md5 repository: %s downloaded", p)
					}
				}
				assertDB(t, dev, before, "md5 refused")
				return
			}
			if r.code != 0 {
				t.Fatalf("%s: exit %d\n%s\n%s", sum, r.code, r.stdout, r.stderr)
			}
			assertDB(t, dev, after, sum+" repository")
			if srv.count("Packages/demo-lib-1.1-1.x86_64.rpm") == 0 {
				t.Errorf("demo-lib not downloaded: %v", srv.hits)
			}
		})
	}
}
