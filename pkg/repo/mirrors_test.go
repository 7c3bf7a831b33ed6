package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseMirrorList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"almalinux shape", "https://a.example/almalinux/9.6/BaseOS/$basearch/os/\nhttp://b.example/almalinux/9.6/BaseOS/$basearch/os/\n",
			[]string{"https://a.example/almalinux/9.6/BaseOS/$basearch/os/", "http://b.example/almalinux/9.6/BaseOS/$basearch/os/"}},
		{"comments, blanks and white space", "# mirror list for baseos\n\n   \t\n  https://a.example/r/  \r\n\t# indented comment\nhttps://b.example/r/\n",
			[]string{"https://a.example/r/", "https://b.example/r/"}},
		{"lines that are not URLs are dropped", "not a url\n/local/path\nftp://c.example/r/\n", []string{"ftp://c.example/r/"}},
		{"no final newline", "https://a.example/r/", []string{"https://a.example/r/"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMirrorList(strings.NewReader(tt.in))
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("line too long", func(t *testing.T) {
		in := "https://a.example/r/\n# x\nhttps://" + strings.Repeat("a", 70<<10) + "\n"
		_, err := ParseMirrorList(strings.NewReader(in))
		if !errors.Is(err, ErrMirrorList) || !strings.Contains(err.Error(), "line 3: longer than 65536 bytes") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("larger than 1 MiB", func(t *testing.T) {
		in := strings.Repeat("https://a.example/almalinux/9/BaseOS/x86_64/os/\n", (1<<20)/40)
		_, err := ParseMirrorList(strings.NewReader(in))
		if !errors.Is(err, ErrMirrorList) || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestParseMetalinkReal reads the real MirrorManager metalink of the
// testdata (Fedora 19 updates, with an alternate).
func TestParseMetalinkReal(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/mirrors/fedora19-updates-x86_64.metalink")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := ParseMetalink(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Versions) != 2 {
		t.Fatalf("%d versions, want the current one and its alternate", len(m.Versions))
	}
	cur := m.Versions[0]
	wantHashes := []Checksum{
		{"sha1", "d28e40ca29b3b1d1e2976610e8858f976b06f02e"},
		{"sha256", "d4f9ad66f7c6e000d8ebf9ec92ad2c4636547853708554d93dab672bdfd98ca1"},
		{"sha512", "c076ce639b0cbac02dc24dc3e32b04fbb834ffd7de6154a23cf1b61951e3b7af1eeed541cdff08410104268f799a1cae2365d17dce4bf1f080322d9d7e66a687"},
	}
	if cur.Size != 4761 || cur.Timestamp != 1381706941 || !reflect.DeepEqual(cur.Hashes, wantHashes) {
		t.Errorf("current version %+v: want size 4761, timestamp 1381706941, md5 left out and %v", cur, wantHashes)
	}
	if alt := m.Versions[1]; alt.Hashes[1] != (Checksum{"sha256", "099ff51a491eba3f16646efb5d16319249e0bb10f1dc1476d47e23b25e0e0f94"}) {
		t.Errorf("alternate %+v", alt)
	}
	for i := 1; i < len(m.URLs); i++ {
		if m.URLs[i].Preference > m.URLs[i-1].Preference {
			t.Fatalf("URLs not by preference: %d then %d", m.URLs[i-1].Preference, m.URLs[i].Preference)
		}
	}
	bases := m.Bases()
	if len(bases) == 0 || bases[0] != "http://www.mirrorservice.org/sites/dl.fedoraproject.org/pub/fedora/linux/updates/19/x86_64/" {
		t.Fatalf("bases %q", bases)
	}
	for _, b := range bases {
		if !strings.HasPrefix(b, "http://") && !strings.HasPrefix(b, "https://") || !strings.HasSuffix(b, "/x86_64/") {
			t.Errorf("base %q: only http(s), repodata/repomd.xml stripped", b)
		}
	}
	if ftp := 0; true {
		for _, u := range m.URLs {
			if u.Protocol == "ftp" || u.Protocol == "rsync" {
				ftp++
			}
		}
		if ftp == 0 || len(bases)+ftp != len(m.URLs) {
			t.Errorf("%d URLs, %d bases, %d ftp/rsync: only the ftp and rsync ones may be left out", len(m.URLs), len(bases), ftp)
		}
	}
}

// metalinkFor writes a metalink document, in MirrorManager's format, for a
// repomd.xml and mirror bases (in preference order).
func metalinkFor(repomd []byte, bases ...string) string {
	s256 := sha256.Sum256(repomd)
	s512 := sha512.Sum512(repomd)
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="utf-8"?>
<metalink version="3.0" xmlns="http://www.metalinker.org/" type="dynamic" pubdate="Tue, 15 Oct 2013 08:48:18 GMT" generator="mirrormanager" xmlns:mm0="http://fedorahosted.org/mirrormanager">
  <files>
    <file name="repomd.xml">
      <mm0:timestamp>1381706941</mm0:timestamp>
      <size>%d</size>
      <verification>
        <hash type="md5">0ffcd7798421c9a6760f3e4202cc4675</hash>
        <hash type="sha256">%x</hash>
        <hash type="sha512">%x</hash>
      </verification>
      <resources maxconnections="1">
`, len(repomd), s256, s512)
	for i, base := range bases {
		fmt.Fprintf(&b, "        <url protocol=\"http\" type=\"http\" location=\"US\" preference=\"%d\" >%srepodata/repomd.xml</url>\n", 100-i, base)
	}
	b.WriteString("      </resources>\n    </file>\n  </files>\n</metalink>\n")
	return b.String()
}

func TestParseMetalinkErrors(t *testing.T) {
	t.Parallel()
	raw := []byte("<repomd/>")
	good := metalinkFor(raw, "http://a.example/r/")
	tests := []struct{ name, in, want string }{
		{"not xml", "https://a.example/r/\n", "metalink: no root element"},
		{"other root", "<repomd/>", "metalink: line 1: root element is <repomd>, want <metalink>"},
		{"no repomd.xml", strings.Replace(good, `name="repomd.xml"`, `name="primary.xml"`, 1), `metalink: no <file name="repomd.xml">`},
		{"md5 alone is refused", strings.NewReplacer("sha256", "md5x", "sha512", "md5y").Replace(good), ""},
		{"bad size", strings.Replace(good, fmt.Sprintf("<size>%d</size>", len(raw)), "<size>-4</size>", 1), `metalink: repomd.xml: <size> "-4" is not a size`},
		{"bad digest", strings.Replace(good, `<hash type="sha256">`, `<hash type="sha256">zz`, 1), "metalink: repomd.xml: <hash>: sha256"},
		{"truncated", good[:len(good)/2], "metalink: line"},
		{"larger than 1 MiB", strings.Replace(good, "<files>", "<files>"+strings.Repeat("<!-- padding -->", (1<<20)/16+1), 1), "metalink: larger than 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMetalink(strings.NewReader(tt.in))
			want := tt.want
			if tt.name == "md5 alone is refused" {
				want = "no usable hash of repomd.xml (only md5"
			}
			if !errors.Is(err, ErrMirrorList) || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want ErrMirrorList containing %q", err, want)
			}
		})
	}
}

// Regression: a metalink whose only hashes are md5 must not be trusted,
// even though md5 is the first hash MirrorManager lists.
func TestMetalinkMD5OnlyRefused(t *testing.T) {
	t.Parallel()
	in := `<metalink><files><file name="repomd.xml"><verification><hash type="md5">0ffcd7798421c9a6760f3e4202cc4675</hash></verification></file></files></metalink>`
	_, err := ParseMetalink(strings.NewReader(in))
	if !errors.Is(err, ErrMirrorList) || !strings.Contains(err.Error(), "only md5, refused") {
		t.Fatalf("got %v", err)
	}
}

func TestMetalinkVerify(t *testing.T) {
	t.Parallel()
	cur := []byte("<repomd>current</repomd>\n")
	old := []byte("<repomd>one behind</repomd>\n")
	doc := metalinkFor(cur, "http://a.example/r/")
	// An alternate as MirrorManager writes it, for the copy one behind.
	alt := fmt.Sprintf(`<mm0:alternates><mm0:alternate><mm0:timestamp>1</mm0:timestamp><size>%d</size><verification><hash type="sha256">%x</hash></verification></mm0:alternate></mm0:alternates>
      <resources`, len(old), sha256.Sum256(old))
	withAlt := strings.Replace(doc, "<resources", alt, 1)
	tests := []struct {
		name string
		doc  string
		raw  []byte
		ok   bool
	}{
		{"current copy", doc, cur, true},
		{"tampered copy", doc, append([]byte("<repomd>currenT</repomd>"), '\n'), false},
		{"truncated copy", doc, cur[:len(cur)-1], false},
		{"copy one behind, no alternate", doc, old, false},
		{"copy one behind, listed as alternate", withAlt, old, true},
		{"current copy, with alternates", withAlt, cur, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMetalink(strings.NewReader(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			err = m.Verify(tt.raw)
			if tt.ok != (err == nil) || (!tt.ok && !errors.Is(err, ErrMetalinkMismatch)) {
				t.Fatalf("Verify = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// mirror is one loopback HTTP mirror of a repository folder, under a path
// prefix, that can be broken on purpose.
type mirror struct {
	srv    *httptest.Server
	base   string
	status int    // when not 0, every answer is this status
	repomd []byte // when set, served as repodata/repomd.xml
	hits   map[string]int
}

func newMirror(t *testing.T, dir, prefix string) *mirror {
	m := &mirror{hits: map[string]int{}}
	files := http.StripPrefix(prefix, http.FileServer(http.Dir(dir)))
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hits[r.URL.Path]++
		switch {
		case m.status != 0:
			http.Error(w, "broken on purpose", m.status)
		case m.repomd != nil && strings.HasSuffix(r.URL.Path, "/repodata/repomd.xml"):
			w.Write(m.repomd)
		default:
			files.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(m.srv.Close)
	m.base = m.srv.URL + prefix
	return m
}

// deadURL is a loopback URL nothing listens on: connection refused.
func deadURL(t *testing.T) string {
	s := httptest.NewServer(http.NotFoundHandler())
	u := s.URL
	s.Close()
	return u
}

// listServer serves a mirror list or metalink body at /list.
func listServer(t *testing.T, body func() string) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body())
	}))
	t.Cleanup(s.Close)
	return s.URL + "/list"
}

// TestMirrorFailover: a real createrepo_c repository on three loopback
// mirrors, one refusing connections (or answering 500), one serving a
// tampered repomd.xml, one good. Found through a metalink, the tampered one
// is caught by the metalink's digests; found through a mirror list (no
// digests to check against), the dead one is passed over. Either way the
// repository ends on the good mirror, its metadata verifies against that
// mirror's repomd.xml, and the log says which mirrors were skipped and why.
func TestMirrorFailover(t *testing.T) {
	t.Parallel()
	dir := makeRepo(t, "gz", true)
	good := readFile(t, filepath.Join(dir, "repodata", "repomd.xml"))
	tampered := bytes.Replace(good, []byte("<revision>"), []byte("<revision>1"), 1)
	if bytes.Equal(tampered, good) {
		t.Fatal("repomd.xml has no <revision> to tamper with")
	}
	ctx := context.Background()

	tests := []struct {
		name string
		// cfg gets the mirrors' bases in order (dead, 500, tampered,
		// good) and returns the .repo section and vars.
		cfg      func(bases []string) (Config, map[string]string)
		wantSkip []string // fragments of the log, in order
	}{
		{"metalink", func(bases []string) (Config, map[string]string) {
			doc := metalinkFor(good, bases...)
			return Config{ID: "epel", Enabled: true, Metalink: listServer(t, func() string { return doc })}, nil
		}, []string{"mirror=" + "DEAD", "connection refused", "mirror=" + "500", "500 Internal Server Error", "mirror=" + "TAMPERED", "repomd.xml does not match the metalink"}},
		{"mirror list with $basearch", func(bases []string) (Config, map[string]string) {
			var list strings.Builder
			list.WriteString("# AlmaLinux mirror list\n")
			for _, b := range bases[:2] {
				list.WriteString(strings.Replace(b, "/x86_64/", "/$basearch/", 1) + "\n")
			}
			list.WriteString(strings.Replace(bases[3], "/x86_64/", "/$basearch/", 1) + "\n")
			return Config{ID: "baseos", Enabled: true, MirrorList: listServer(t, list.String)}, map[string]string{"basearch": "x86_64"}
		}, []string{"mirror=DEAD", "connection refused", "mirror=500", "500 Internal Server Error"}},
		{"baseurls before the metalink", func(bases []string) (Config, map[string]string) {
			doc := metalinkFor(good, bases[3])
			return Config{ID: "b", Enabled: true, BaseURLs: bases[:3], Metalink: listServer(t, func() string { return doc })}, nil
		}, []string{"mirror=DEAD", "mirror=500", "mirror=TAMPERED", "does not match the metalink"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dead := deadURL(t) + "/almalinux/9/BaseOS/x86_64/os/"
			m500 := newMirror(t, dir, "/almalinux/9/BaseOS/x86_64/os/")
			m500.status = http.StatusInternalServerError
			bad := newMirror(t, dir, "/almalinux/9/BaseOS/x86_64/os/")
			bad.repomd = tampered
			ok := newMirror(t, dir, "/almalinux/9/BaseOS/x86_64/os/")
			bases := []string{dead, m500.base, bad.base, ok.base}
			c, vars := tt.cfg(bases)
			var log bytes.Buffer
			r, err := NewFromConfig(c, Options{Vars: vars, CacheDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Metadata(ctx); err != nil {
				t.Fatalf("Metadata: %v", err)
			}
			if got := r.String(); got != c.ID+" ("+ok.base+")" {
				t.Errorf("in use: %s, want the good mirror %s", got, ok.base)
			}
			if err := readData(r, "primary"); err != nil {
				t.Fatalf("primary from the chosen mirror: %v", err)
			}
			if err := readData(r, "updateinfo"); err != nil {
				t.Fatalf("updateinfo from the chosen mirror: %v", err)
			}
			if ok.hits["/almalinux/9/BaseOS/x86_64/os/repodata/repomd.xml"] != 1 {
				t.Errorf("good mirror hits %v", ok.hits)
			}
			text := strings.NewReplacer(dead, "DEAD", m500.base, "500", bad.base, "TAMPERED").Replace(log.String())
			at := 0
			for _, w := range tt.wantSkip {
				i := strings.Index(text[at:], w)
				if i < 0 {
					t.Fatalf("log lacks %q after offset %d:\n%s", w, at, text)
				}
				at += i
			}
			if !strings.Contains(text, `msg="mirror skipped"`) || !strings.Contains(text, "msg=\"mirror in use\"") {
				t.Errorf("log:\n%s", text)
			}
		})
	}
}

// TestMirrorsAllFail: when no mirror serves a usable repomd.xml the error
// names each and why, and wraps each cause.
func TestMirrorsAllFail(t *testing.T) {
	t.Parallel()
	dir := makeRepo(t, "gz", false)
	good := readFile(t, filepath.Join(dir, "repodata", "repomd.xml"))
	bad := newMirror(t, dir, "/r/")
	bad.repomd = append(append([]byte{}, good...), ' ')
	dead := deadURL(t) + "/r/"
	doc := metalinkFor(good, dead, bad.base)
	var log bytes.Buffer
	r, err := NewFromConfig(Config{ID: "x", Metalink: listServer(t, func() string { return doc })}, Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Metadata(context.Background())
	if !errors.Is(err, ErrNoMirror) || !errors.Is(err, ErrMetalinkMismatch) {
		t.Fatalf("got %v, want ErrNoMirror and ErrMetalinkMismatch", err)
	}
	for _, w := range []string{"2 tried", dead + ": ", "connection refused", bad.base + "repodata/repomd.xml: repo: repomd.xml does not match the metalink"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	if log.Len() != 0 {
		t.Errorf("logged and returned the same failures:\n%s", log.String())
	}
}

// TestMirrorListLimits: the mirror list and metalink are outside input:
// one that never ends, one sent a byte at a time, and one that answers an
// error each fail the repository quickly with an error saying so, and a
// list that names local files or unfilled variables uses none of them.
func TestMirrorListLimits(t *testing.T) {
	t.Parallel()
	dir := makeRepo(t, "gz", false)
	ok := newMirror(t, dir, "/r/")
	ctx := context.Background()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 100; i++ {
			if _, err := io.WriteString(w, "#"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}))
	defer slow.Close()
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		line := []byte("https://mirror.example/almalinux/9/BaseOS/x86_64/os/\n")
		for {
			if _, err := w.Write(line); err != nil {
				return
			}
		}
	}))
	defer endless.Close()
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer forbidden.Close()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"sent a byte at a time", Config{ID: "a", MirrorList: slow.URL}, "context deadline exceeded"},
		{"endless", Config{ID: "a", MirrorList: endless.URL}, "larger than 1048576 bytes"},
		{"endless metalink", Config{ID: "a", Metalink: endless.URL}, "larger than 1048576 bytes"},
		{"http error", Config{ID: "a", MirrorList: forbidden.URL}, "403 Forbidden"},
		{"local files and unfilled variables", Config{ID: "a", MirrorList: listServer(t, func() string {
			return "file:///etc/\n" + ok.base + "$unknown/\n"
		})}, "lists no http or https mirror"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewFromConfig(tt.cfg, Options{FetchTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = r.Metadata(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("took %v: the fetch timeout did not bound it", d)
			}
		})
	}
	t.Run("a mirror list that fails leaves the baseurls", func(t *testing.T) {
		r, err := NewFromConfig(Config{ID: "a", BaseURLs: []string{ok.base}, MirrorList: forbidden.URL}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Metadata(ctx); err != nil {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a metalink that fails fails the repository, baseurls or not", func(t *testing.T) {
		r, err := NewFromConfig(Config{ID: "a", BaseURLs: []string{ok.base}, Metalink: forbidden.URL}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Metadata(ctx); err == nil || !strings.Contains(err.Error(), "403 Forbidden") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a mirror that stalls its repomd.xml is given up", func(t *testing.T) {
		stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("<repomd>"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}))
		defer stall.Close()
		r, err := NewFromConfig(Config{ID: "a", MirrorList: listServer(t, func() string { return stall.URL + "/r/\n" + ok.base + "\n" })},
			Options{FetchTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Metadata(ctx); err != nil {
			t.Fatalf("got %v", err)
		}
		if r.base.String() != ok.base {
			t.Errorf("in use %s, want %s", r.base, ok.base)
		}
	})
}

func TestNewFromConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{ID: "a", File: "x.repo", Line: 3}, `x.repo: line 3: repository "a" has no baseurl, mirrorlist or metalink`},
		{"unfilled variable", Config{ID: "a", File: "x.repo", Line: 3, MirrorList: "https://m.example/$releasever/baseos"}, `mirrorlist="https://m.example/$releasever/baseos" has a variable`},
		{"ftp baseurl", Config{ID: "a", File: "x.repo", Line: 3, BaseURLs: []string{"ftp://m.example/r/", "http://n.example/r/"}}, `baseurl="ftp://m.example/r/"`},
		{"metalink not a URL", Config{ID: "a", File: "x.repo", Line: 3, Metalink: "mirrors.example/metalink"}, `is not an http, https or file URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewFromConfig(tt.cfg, Options{})
			if !errors.Is(err, ErrRepoConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrRepoConfig containing %q", err, tt.want)
			}
		})
	}
}

// TestPackageURLsFollowMirrors: a package's URLs are the mirror in use
// first, then the ones the list gives after it; mirrors refused for their
// repomd.xml are not among them, and a lone baseurl gives one URL.
func TestPackageURLsFollowMirrors(t *testing.T) {
	t.Parallel()
	dir := makeRepo(t, "gz", false)
	const prefix = "/almalinux/9/BaseOS/x86_64/os/"
	dead := deadURL(t) + prefix
	first := newMirror(t, dir, prefix)
	second := newMirror(t, dir, prefix)
	list := dead + "\n" + first.base + "\n" + second.base + "\n"
	firstPackage := func(r *Repo) *Package {
		t.Helper()
		if _, err := r.Metadata(context.Background()); err != nil {
			t.Fatal(err)
		}
		p, err := r.Primary(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		pkg, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		return pkg
	}

	r, err := NewFromConfig(Config{ID: "baseos", Enabled: true, MirrorList: listServer(t, func() string { return list })}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pkg := firstPackage(r)
	got, err := r.PackageURLs(pkg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{first.base + pkg.Location, second.base + pkg.Location}
	if !slices.Equal(got, want) {
		t.Errorf("PackageURLs = %q, want %q (the dead mirror left out)", got, want)
	}

	one, err := NewFromConfig(Config{ID: "one", Enabled: true, BaseURLs: []string{second.base}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pkg = firstPackage(one)
	if got, err := one.PackageURLs(pkg); err != nil || !slices.Equal(got, []string{second.base + pkg.Location}) {
		t.Errorf("one baseurl: PackageURLs = %q, %v", got, err)
	}
}
