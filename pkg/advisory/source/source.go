// Package source opens whatever a user names as a source of advisories and
// reads the advisories from it one at a time, telling the kind by content,
// never by name:
//
//   - an updateinfo.xml file, plain or compressed (gzip, xz, zstd, bzip2);
//   - an OSV file: one object, or JSON lines, plain or compressed;
//   - a folder of OSV files;
//   - a yum/dnf repository, as a folder or an http(s) URL of its base: its
//     repodata/repomd.xml leads to updateinfo.xml, whose checksum is verified;
//   - a repodata/repomd.xml file, which stands for its repository.
//
// An http(s) URL whose last element has a file extension (.xml, .json, .gz,
// ...) is fetched and read as a file; any other URL is a repository base.
//
// Sources are untrusted (an upload, a URL, a mirror). Besides the limits of
// the parsers (package updateinfo, osv and compressed), a source is held to
// Options.MaxSize decompressed bytes, a fetched file to as many bytes on
// the wire, and Load, which holds every advisory it reads, to
// Options.MaxHeld bytes of them, so that many small advisories cannot
// fill memory where one large one cannot.
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
	"unsafe"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/osv"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
	"github.com/rpmfleet/rpmfleet/pkg/repo"
)

// ErrTooLarge is returned (wrapped) by Load when the advisories it has
// read hold more than Options.MaxHeld.
var ErrTooLarge = errors.New("source: advisories over the limit")

// DefaultMaxHeld bounds what Load holds. The whole AlmaLinux 8 OSV
// database, 3,277 advisories with 40,838 packages, holds 11 MB; a large
// repository's full updateinfo a few times that.
const DefaultMaxHeld = 256 << 20

// ErrUnknownFormat is returned for a file that is neither updateinfo.xml nor
// OSV JSON.
var ErrUnknownFormat = errors.New("source: unknown advisory format (want updateinfo.xml, OSV JSON or a repository)")

// Options tune Open and Load.
type Options struct {
	// HTTPClient fetches URLs; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Locations makes Load read a repository's primary.xml too (streamed,
	// after the advisories) and set each advisory package it lists to its
	// location href (Filename) and SHA-256, so a plan can pin the exact
	// file. It applies to repository sources only.
	Locations bool
	// MaxSize bounds a file's decompressed size and a fetched file's size
	// on the wire; zero means compressed.DefaultMaxSize. A repository's
	// files are held to package repo's limits.
	MaxSize int64
	// MaxHeld bounds the advisories Load holds, counted by Held; zero
	// means DefaultMaxHeld.
	MaxHeld int64
	// Descriptions keeps each advisory's description (updateinfo's
	// <description>, OSV's details), bounded to advisory.MaxDescription.
	// The server, which shows them, sets it; the agent's check leaves it
	// off and so holds and copies none of that text.
	Descriptions bool
}

func (o Options) maxSize() int64 {
	if o.MaxSize > 0 {
		return o.MaxSize
	}
	return compressed.DefaultMaxSize
}

func (o Options) client() *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return http.DefaultClient
}

// Stream yields a source's advisories one at a time. Next returns io.EOF
// after the last one; any other error is final and names the source. Each
// Advisory returned is the caller's.
type Stream interface {
	Next() (*advisory.Advisory, error)
	Close() error
}

// Open opens src for reading its advisories one at a time, so that a caller
// that keeps only some of them (the agent's check keeps those that apply)
// holds memory bounded whatever the size of the source.
func Open(ctx context.Context, src string, opts Options) (Stream, error) {
	s, err := open(ctx, src, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return &named{Stream: s, name: src}, nil
}

// Load reads every advisory from src. Errors name src.
func Load(ctx context.Context, src string, opts Options) ([]advisory.Advisory, error) {
	s, err := Open(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	maxHeld := opts.MaxHeld
	if maxHeld <= 0 {
		maxHeld = DefaultMaxHeld
	}
	var out []advisory.Advisory
	var held int64
	for {
		a, err := s.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if held += Held(a); held > maxHeld {
			return nil, fmt.Errorf("%s: %w: the %d advisories read up to %s hold more than %d MiB", src, ErrTooLarge, len(out)+1, a.ID, maxHeld>>20)
		}
		out = append(out, *a)
	}
	if rs, ok := s.(*named).Stream.(*repoStream); ok && opts.Locations {
		if _, err := locate(ctx, rs.r, out); err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
	}
	return out, nil
}

// Held is about how many bytes a holds in memory on a 64-bit machine: its
// strings and the records of its lists.
func Held(a *advisory.Advisory) int64 {
	const str = 16 // a string header
	n := int64(unsafe.Sizeof(*a)) + int64(len(a.ID)+len(a.Ecosystem)+len(a.Type)+len(a.Title))
	for _, c := range a.CVEs {
		n += str + int64(len(c))
	}
	for _, r := range a.References {
		n += int64(unsafe.Sizeof(r)) + int64(len(r.Type)+len(r.ID)+len(r.URL)+len(r.Title))
	}
	for _, p := range a.Packages {
		n += int64(unsafe.Sizeof(p)) + int64(len(p.Name)+len(p.Epoch)+len(p.Version)+len(p.Release)+len(p.Arch)+len(p.Filename)+len(p.SHA256))
		if p.Module != nil {
			n += int64(unsafe.Sizeof(*p.Module)) + int64(len(p.Module.Name)+len(p.Module.Stream))
		}
	}
	return n
}

// named prefixes a stream's errors with the source's name.
type named struct {
	Stream
	name string
}

func (n *named) Next() (*advisory.Advisory, error) {
	a, err := n.Stream.Next()
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("%s: %w", n.name, err)
	}
	return a, err
}

func open(ctx context.Context, src string, opts Options) (Stream, error) {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		return openURL(ctx, src, opts)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(src, "repodata", "repomd.xml")); err == nil {
			return openRepo(ctx, src, opts)
		}
		advs, err := osv.ParseFile(src, osv.Options{Descriptions: opts.Descriptions})
		if err != nil {
			return nil, err
		}
		return &sliceStream{advs: advs}, nil
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	s, err := decode(f, f, opts)
	if errors.Is(err, errRepomd) {
		// A repomd.xml stands for the repository above its repodata folder.
		return openRepo(ctx, filepath.Dir(filepath.Dir(src)), opts)
	}
	return s, err
}

var errRepomd = errors.New("source: repomd.xml")

// decode reads one stream, telling updateinfo.xml from OSV JSON by the first
// bytes after decompression, which is held to max bytes. body is closed
// with the returned Stream, or before decode returns an error.
func decode(r io.Reader, body io.Closer, opts Options) (Stream, error) {
	rc, _, err := compressed.NewReaderMax(r, opts.maxSize())
	if err != nil {
		body.Close()
		return nil, err
	}
	closeAll := func() error {
		err := rc.Close()
		if cerr := body.Close(); err == nil {
			err = cerr
		}
		return err
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	head, err := br.Peek(512)
	if err != nil && !errors.Is(err, io.EOF) {
		closeAll()
		return nil, err
	}
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		closeAll()
		return nil, fmt.Errorf("%w: the file is empty", ErrUnknownFormat)
	case trimmed[0] == '<':
		if isRepomd(head) {
			closeAll()
			return nil, errRepomd
		}
		d := updateinfo.NewDecoder(br)
		if opts.Descriptions {
			d.KeepDescriptions()
		}
		return &closing{Stream: d, close: closeAll}, nil
	case trimmed[0] == '{' || trimmed[0] == '[':
		return &closing{Stream: osv.NewDecoder(br, osv.Options{Descriptions: opts.Descriptions}), close: closeAll}, nil
	}
	closeAll()
	return nil, ErrUnknownFormat
}

// closing closes what lies under a decoder along with it.
type closing struct {
	Stream
	close func() error
}

func (c *closing) Close() error {
	err := c.Stream.Close()
	if cerr := c.close(); err == nil {
		err = cerr
	}
	return err
}

// sliceStream yields advisories already read.
type sliceStream struct {
	advs []advisory.Advisory
	i    int
}

func (s *sliceStream) Next() (*advisory.Advisory, error) {
	if s.i >= len(s.advs) {
		return nil, io.EOF
	}
	a := s.advs[s.i]
	s.advs[s.i] = advisory.Advisory{} // the caller owns it now
	s.i++
	return &a, nil
}

func (s *sliceStream) Close() error { s.advs = nil; return nil }

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

// openURL reads a URL: one that names a file (by its extension) is fetched
// and read as a file, any other is a repository base.
func openURL(ctx context.Context, u string, opts Options) (Stream, error) {
	base := strings.TrimSuffix(u, "/")
	if strings.HasSuffix(base, "/repodata/repomd.xml") {
		return openRepo(ctx, strings.TrimSuffix(base, "/repodata/repomd.xml"), opts)
	}
	if !namesFile(base) {
		return openRepo(ctx, base, opts)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := opts.client().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	// A plain file is passed through by the decompressor unbounded: hold
	// what is fetched to the same limit.
	max := opts.maxSize()
	body := compressed.Capped(resp.Body, max, func() error {
		return fmt.Errorf("%w: more than %d bytes fetched", compressed.ErrTooLarge, max)
	})
	return decode(body, resp.Body, opts)
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

// openRepo reads a repository's updateinfo through its repomd.xml, checking
// the file's checksum as it streams. A repository without updateinfo is an
// error, since the user named it as their source of advisories.
func openRepo(ctx context.Context, base string, opts Options) (Stream, error) {
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
	if opts.Descriptions {
		u.KeepDescriptions()
	}
	return &repoStream{Stream: u, r: r}, nil
}
