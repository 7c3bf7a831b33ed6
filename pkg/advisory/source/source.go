// Package source opens whatever a user names as a source of advisories and
// reads every advisory from it, telling the kind by content, never by name:
//
//   - an updateinfo.xml file, plain or compressed (gzip, xz, zstd, bzip2);
//   - an OSV file: one object, or JSON lines, plain or compressed;
//   - a folder of OSV files;
//   - a yum/dnf repository, as a folder or an http(s) URL of its base: its
//     repodata/repomd.xml leads to updateinfo.xml, whose checksum is verified;
//   - a repodata/repomd.xml file, which stands for its repository.
//
// An http(s) URL that is not a repository base is fetched and read as a file.
package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/osv"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
	"github.com/rpmfleet/rpmfleet/pkg/repo"
)

// ErrUnknownFormat is returned for a file that is neither updateinfo.xml nor
// OSV JSON.
var ErrUnknownFormat = errors.New("source: unknown advisory format (want updateinfo.xml, OSV JSON or a repository)")

// Options tune Load.
type Options struct {
	// HTTPClient fetches URLs; nil means http.DefaultClient.
	HTTPClient *http.Client
}

func (o Options) client() *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return http.DefaultClient
}

// Load reads every advisory from src. Errors name src.
func Load(ctx context.Context, src string, opts Options) ([]advisory.Advisory, error) {
	advs, err := load(ctx, src, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return advs, nil
}

func load(ctx context.Context, src string, opts Options) ([]advisory.Advisory, error) {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		return loadURL(ctx, src, opts)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(src, "repodata", "repomd.xml")); err == nil {
			return loadRepo(ctx, src, opts)
		}
		return osv.ParseFile(src, osv.Options{})
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	advs, err := decode(f)
	if errors.Is(err, errRepomd) {
		// A repomd.xml stands for the repository above its repodata folder.
		return loadRepo(ctx, filepath.Dir(filepath.Dir(src)), opts)
	}
	return advs, err
}

var errRepomd = errors.New("source: repomd.xml")

// decode reads one stream, telling updateinfo.xml from OSV JSON by the first
// bytes after decompression.
func decode(r io.Reader) ([]advisory.Advisory, error) {
	rc, _, err := compressed.NewReader(r)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	head, err := br.Peek(512)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return nil, fmt.Errorf("%w: the file is empty", ErrUnknownFormat)
	case trimmed[0] == '<':
		if isRepomd(head) {
			return nil, errRepomd
		}
		return readAll(updateinfo.NewDecoder(br))
	case trimmed[0] == '{' || trimmed[0] == '[':
		return readAll(osv.NewDecoder(br, osv.Options{}))
	}
	return nil, ErrUnknownFormat
}

// isRepomd reports whether an XML head's root element is <repomd>.
func isRepomd(head []byte) bool {
	s := string(head)
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 || i+1 >= len(s) {
			return false
		}
		s = s[i+1:]
		if s[0] == '?' || s[0] == '!' {
			continue
		}
		return strings.HasPrefix(s, "repomd")
	}
}

type decoder interface {
	Next() (*advisory.Advisory, error)
	Close() error
}

func readAll(d decoder) ([]advisory.Advisory, error) {
	defer d.Close()
	var out []advisory.Advisory
	for {
		a, err := d.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
}

// loadURL reads a URL: one that names a file (by its extension) is fetched
// and read as a file, any other is a repository base.
func loadURL(ctx context.Context, u string, opts Options) ([]advisory.Advisory, error) {
	base := strings.TrimSuffix(u, "/")
	if strings.HasSuffix(base, "/repodata/repomd.xml") {
		return loadRepo(ctx, strings.TrimSuffix(base, "/repodata/repomd.xml"), opts)
	}
	if !namesFile(base) {
		return loadRepo(ctx, base, opts)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := opts.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return decode(resp.Body)
}

var fileExts = []string{".xml", ".json", ".jsonl", ".gz", ".xz", ".zst", ".bz2"}

func namesFile(u string) bool {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	last := u[strings.LastIndexByte(u, '/')+1:]
	for _, ext := range fileExts {
		if strings.HasSuffix(last, ext) {
			return true
		}
	}
	return false
}

// loadRepo reads a repository's updateinfo through its repomd.xml, checking
// the file's checksum as it streams. A repository without updateinfo has no
// advisories; that is an error, since the user named it as their source.
func loadRepo(ctx context.Context, base string, opts Options) ([]advisory.Advisory, error) {
	r, err := repo.New(base, repo.Options{HTTPClient: opts.HTTPClient})
	if err != nil {
		return nil, err
	}
	if _, err := r.Metadata(ctx); err != nil {
		return nil, err
	}
	u, err := r.Updateinfo(ctx)
	if err != nil {
		return nil, err
	}
	return readAll(u)
}
