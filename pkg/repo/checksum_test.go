package repo

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
)

func TestChecksumType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		err      error
	}{
		{"sha", "sha1", nil}, {"SHA1", "sha1", nil}, {" sha224 ", "sha224", nil}, {"sha256", "sha256", nil},
		{"sha384", "sha384", nil}, {"Sha512", "sha512", nil},
		{"md5", "", ErrWeakChecksum}, {"MD5", "", ErrWeakChecksum},
		{"crc32", "", ErrUnknownChecksum}, {"", "", ErrUnknownChecksum}, {"sha3-256", "", ErrUnknownChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ChecksumType(tt.in)
			if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("ChecksumType(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
			}
			if tt.err != nil && !strings.Contains(err.Error(), `"`+tt.in+`"`) {
				t.Errorf("error does not name the type: %v", err)
			}
		})
	}
	if _, err := ParseChecksum("sha256"); err == nil || !strings.Contains(err.Error(), "is not type:hex") {
		t.Errorf("ParseChecksum without a colon: %v", err)
	}
	if c, err := ParseChecksum("SHA:" + strings.Repeat("AB", 20)); err != nil || c != (Checksum{"sha1", strings.Repeat("ab", 20)}) {
		t.Errorf("ParseChecksum(sha:...) = %+v, %v", c, err)
	}
}

// checksumRepo is makeRepo with createrepo_c's and modifyrepo_c's
// --checksum.
func checksumRepo(t *testing.T, sum string) string {
	t.Helper()
	need(t, "createrepo_c", "modifyrepo_c")
	dir := t.TempDir()
	pkgDir := filepath.Join(dir, "Packages")
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range rpmFiles {
		writeFile(t, filepath.Join(pkgDir, filepath.Base(f)), readFile(t, filepath.Join(sharedFixtures(t), f)))
	}
	run(t, "createrepo_c", "--quiet", "--no-database", "--checksum", sum, dir)
	ui := filepath.Join(t.TempDir(), "updateinfo.xml")
	f, err := os.Create(ui)
	if err != nil {
		t.Fatal(err)
	}
	if err := updateinfo.Encode(f, testAdvisories()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, "modifyrepo_c", "--mdtype", "updateinfo", "--checksum", sum, ui, filepath.Join(dir, "repodata"))
	return dir
}

// TestChecksumNames: a real repository written with each checksum name
// createrepo_c knows is read whole over HTTP through the cache (repomd,
// primary with its packages' digests, updateinfo), and one written with
// md5 is refused when repomd.xml is read, naming md5.
//
// The sha512 case is the regression for the cache's file names: the
// digest prefix plus createrepo's own digest-named file passed 255 bytes
// ("file name too long") and the repository could not be read at all.
func TestChecksumNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, sum := range []string{"sha", "sha1", "sha224", "sha256", "sha384", "sha512", "md5"} {
		t.Run(sum, func(t *testing.T) {
			dir := checksumRepo(t, sum)
			srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
			defer srv.Close()
			r, err := New(srv.URL, Options{CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			m, err := r.Metadata(ctx)
			if sum == "md5" {
				if !errors.Is(err, ErrWeakChecksum) || !strings.Contains(err.Error(), `"md5"`) {
					t.Fatalf("md5 repository: got %v, want ErrWeakChecksum naming md5", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, _ := ChecksumType(sum)
			if d, _ := m.Get("primary"); d.Checksum.Type != want {
				t.Fatalf("primary checksum %+v, want type %s", d.Checksum, want)
			}
			for _, typ := range []string{"primary", "updateinfo"} {
				if err := readData(r, typ); err != nil {
					t.Fatalf("%s: %v", typ, err)
				}
			}
			p, err := r.Primary(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			n := 0
			for {
				pkg, err := p.Next()
				if err != nil {
					break
				}
				n++
				if pkg.Checksum.Type != want {
					t.Errorf("%s: package checksum %+v", pkg.Name, pkg.Checksum)
				}
			}
			if n != len(rpmFiles) {
				t.Errorf("%d packages, want %d", n, len(rpmFiles))
			}
		})
	}
}

// TestCacheNameTooLongSHA512 is the regression for "file name too long":
// createrepo_c --checksum sha512 names its files <digest>-primary.xml.gz,
// and the cache's sha512-<digest>- prefix made 282 bytes.
func TestCacheNameTooLongSHA512(t *testing.T) {
	t.Parallel()
	sum := strings.Repeat("0f", 64)
	d := Data{Type: "primary", Location: "repodata/" + sum + "-primary.xml.gz", Checksum: Checksum{"sha512", sum}}
	name := cacheName(d)
	if len(name) > 255 || name != "sha512-"+sum+"-primary.xml.gz" {
		t.Fatalf("cache name %q (%d bytes)", name, len(name))
	}
	short := Data{Type: "primary", Location: "repodata/" + sum[:64] + "-primary.xml.gz", Checksum: Checksum{"sha256", sum[:64]}}
	if got := cacheName(short); got != "sha256-"+sum[:64]+"-"+sum[:64]+"-primary.xml.gz" {
		t.Errorf("a name that fits changed: %q", got)
	}
}
