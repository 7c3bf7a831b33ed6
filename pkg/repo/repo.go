// Package repo reads yum/dnf repositories the way dnf does:
// repodata/repomd.xml first, then the metadata files it lists (primary.xml
// for package locations, sizes and digests; updateinfo.xml for advisories),
// over HTTP(S) or from a local directory, streaming and with bounded memory.
//
// Threat model. The network and the mirror are not trusted. repomd.xml is
// the root of the repository's metadata: everything below it is accepted
// only when its digest matches the one repomd.xml gives, so a mirror or a
// proxy that alters primary.xml or updateinfo.xml, or serves a stale copy
// of one, is caught (Open fails with ErrChecksum at the end of the stream,
// naming the file and both digests, and never reports the stream as
// complete). repomd.xml itself is trusted only as far as its transport
// (HTTPS) or its detached signature repodata/repomd.xml.asc: given
// Options.Keyring (the distribution's pinned RPM-GPG-KEY-* keys), a present
// signature must verify, and with RequireSignature a missing one is refused.
// The packages' own digests in primary.xml are what the agent checks each
// downloaded RPM against, on top of the RPM's own signature. Locations in
// repomd.xml must stay inside the repository (no absolute paths, no ".."),
// so a hostile repomd.xml cannot make a local read escape the directory.
// The optional metadata cache keeps only files whose digest matched and
// hashes them again before each use, so it is no more trusted than the
// network.
package repo

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
)

// Errors callers branch on.
var (
	// ErrChecksum: a metadata file's digest or size is not what
	// repomd.xml says.
	ErrChecksum = errors.New("repo: checksum mismatch")
	// ErrNoData: repomd.xml lists no file of the requested type.
	ErrNoData = errors.New("repo: no such data type in repomd.xml")
	// ErrNoUpdateinfo: the repository publishes no updateinfo (many
	// repositories, such as Rocky's extras, do not).
	ErrNoUpdateinfo = errors.New("repo: repository has no updateinfo")
)

// Options configure a Repo.
type Options struct {
	// HTTPClient fetches http and https repositories; nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// CacheDir, when set, keeps the metadata files of an http(s)
	// repository, named by their checksum: a file whose checksum
	// repomd.xml still lists is read from disk, not downloaded again.
	// Use one directory per repository: Metadata removes the files the
	// new repomd.xml no longer lists. Ignored for local repositories.
	CacheDir string
	// Keyring, when set, holds the keys trusted to sign repomd.xml: a
	// repodata/repomd.xml.asc must verify against one of them, or
	// Metadata fails with ErrBadSignature.
	Keyring openpgp.KeyRing
	// RequireSignature, with Keyring, refuses a repository that has no
	// repomd.xml.asc (ErrNoSignature). Without it a missing signature is
	// accepted, since many distributions do not sign repomd.xml, and only
	// a present one is checked.
	RequireSignature bool
}

// Repo is one repository, given by its base: an http or https URL, a
// file:// URL or a local directory, under which repodata/repomd.xml lives.
type Repo struct {
	base       *url.URL // for http and https
	dir        string   // for local directories
	client     *http.Client
	cacheDir   string
	keyring    openpgp.KeyRing
	requireSig bool

	mu        sync.Mutex // guards repomd and downloads
	repomd    *Repomd    // the last one Metadata read
	downloads int        // downloads being written into the cache
}

// New returns the repository at base. It does not touch the network or the
// disk.
func New(base string, opts Options) (*Repo, error) {
	r := &Repo{client: opts.HTTPClient, cacheDir: opts.CacheDir, keyring: opts.Keyring, requireSig: opts.RequireSignature}
	if r.requireSig && r.keyring == nil {
		return nil, errors.New("repo: RequireSignature without a Keyring")
	}
	if r.client == nil {
		r.client = http.DefaultClient
	}
	u, err := url.Parse(base)
	switch {
	case err == nil && (u.Scheme == "http" || u.Scheme == "https"):
		if u.Host == "" {
			return nil, fmt.Errorf("repo: %q: no host", base)
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
			u.RawPath = ""
		}
		r.base = u
	case err == nil && u.Scheme == "file":
		r.dir = filepath.FromSlash(u.Path)
	case err == nil && u.Scheme != "" && len(u.Scheme) > 1:
		return nil, fmt.Errorf("repo: %q: unsupported scheme %q (want http, https, file or a directory)", base, u.Scheme)
	default:
		r.dir = base
	}
	if r.base == nil && r.dir == "" {
		return nil, fmt.Errorf("repo: empty repository base")
	}
	return r, nil
}

// String returns the repository's base.
func (r *Repo) String() string {
	if r.base != nil {
		return r.base.String()
	}
	return r.dir
}

// Metadata fetches and parses repodata/repomd.xml. Open uses the last one
// read; calling Metadata again refreshes it.
func (r *Repo) Metadata(ctx context.Context) (*Repomd, error) {
	rc, name, err := r.fetch(ctx, "repodata/repomd.xml")
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var src io.Reader = rc
	if r.keyring != nil {
		// The signature covers the exact bytes: read them once, check,
		// then parse what was checked.
		raw, err := io.ReadAll(io.LimitReader(rc, maxRepomdSize+1))
		if err != nil {
			return nil, fmt.Errorf("repo: %s: %w", name, err)
		}
		if err := r.verifySignature(ctx, raw, name); err != nil {
			return nil, err
		}
		src = bytes.NewReader(raw)
	}
	m, err := ParseRepomd(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	r.mu.Lock()
	r.repomd = m
	r.mu.Unlock()
	if r.cacheDir != "" && r.base != nil {
		if err := r.pruneCache(m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (r *Repo) metadata(ctx context.Context) (*Repomd, error) {
	r.mu.Lock()
	m := r.repomd
	r.mu.Unlock()
	if m != nil {
		return m, nil
	}
	return r.Metadata(ctx)
}

// Open returns the decompressed content of the metadata file of the given
// type ("primary", "updateinfo", ...), streaming. The file's digest and size
// are checked against repomd.xml as it is read: a mismatch is an error
// wrapping ErrChecksum, returned by Read at the end of the stream (or as
// soon as the file is longer than repomd.xml says), so a caller must not
// act on what it read until Read has returned io.EOF. With
// Options.CacheDir the file is downloaded and checked whole before the
// first byte is returned. The caller must Close it.
func (r *Repo) Open(ctx context.Context, dataType string) (io.ReadCloser, error) {
	m, err := r.metadata(ctx)
	if err != nil {
		return nil, err
	}
	d, ok := m.Get(dataType)
	if !ok {
		return nil, fmt.Errorf("%w: %q in %s", ErrNoData, dataType, r)
	}
	return r.OpenData(ctx, d)
}

// OpenData is Open for a Data entry already looked up.
func (r *Repo) OpenData(ctx context.Context, d Data) (io.ReadCloser, error) {
	if d.LocationBase != "" {
		return nil, fmt.Errorf("repo: data %q: location xml:base %q is not supported", d.Type, d.LocationBase)
	}
	h, err := newHash(d.Checksum.Type)
	if err != nil {
		return nil, fmt.Errorf("repo: data %q: %w", d.Type, err)
	}
	body, name, err := r.openRaw(ctx, d)
	if err != nil {
		return nil, err
	}
	v := &verifier{r: body, h: h, name: name, want: d.Checksum, size: d.Size}
	zr, _, err := compressed.NewReader(v)
	if err != nil {
		body.Close()
		if v.err != nil {
			return nil, v.err
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &dataReader{dec: zr, v: v, body: body, name: name}, nil
}

// Updateinfo is a repository's updateinfo, decoded as it streams in.
type Updateinfo struct {
	*updateinfo.Decoder
	rc io.ReadCloser
}

// Close releases the decoder and the underlying stream.
func (u *Updateinfo) Close() error {
	u.Decoder.Close()
	return u.rc.Close()
}

// Updateinfo opens the repository's updateinfo. It returns an error
// wrapping ErrNoUpdateinfo when repomd.xml lists none.
func (r *Repo) Updateinfo(ctx context.Context) (*Updateinfo, error) {
	rc, err := r.Open(ctx, "updateinfo")
	if errors.Is(err, ErrNoData) {
		return nil, fmt.Errorf("%w: %s", ErrNoUpdateinfo, r)
	}
	if err != nil {
		return nil, err
	}
	return &Updateinfo{Decoder: updateinfo.NewDecoder(rc), rc: rc}, nil
}

// Primary is a repository's primary.xml, decoded as it streams in.
type Primary struct {
	*PrimaryDecoder
	rc io.ReadCloser
}

// Close releases the decoder and the underlying stream.
func (p *Primary) Close() error {
	p.PrimaryDecoder.Close()
	return p.rc.Close()
}

// Primary opens the repository's primary.xml.
func (r *Repo) Primary(ctx context.Context) (*Primary, error) {
	rc, err := r.Open(ctx, "primary")
	if err != nil {
		return nil, err
	}
	return &Primary{PrimaryDecoder: NewPrimaryDecoder(rc), rc: rc}, nil
}

// PackageURL returns where a package of this repository is: a URL for an
// http(s) repository, a file path for a directory. Like metadata
// locations, it must stay inside the repository.
func (r *Repo) PackageURL(p *Package) (string, error) {
	if p.LocationBase != "" {
		return "", fmt.Errorf("repo: package %s: location xml:base %q is not supported", p.NEVRA(), p.LocationBase)
	}
	rel, err := cleanLocation(p.Location)
	if err != nil {
		return "", fmt.Errorf("repo: package %s: %w", p.NEVRA(), err)
	}
	if r.base != nil {
		return r.base.ResolveReference(&url.URL{Path: rel}).String(), nil
	}
	return filepath.Join(r.dir, filepath.FromSlash(rel)), nil
}

// cleanLocation checks that a location href is a relative path that stays
// inside the repository, and returns it cleaned.
func cleanLocation(href string) (string, error) {
	if href == "" {
		return "", errors.New("empty location")
	}
	if strings.Contains(href, "://") || strings.HasPrefix(href, "/") || strings.Contains(href, "\\") {
		return "", fmt.Errorf("location %q is not a relative path", href)
	}
	clean := path.Clean(href)
	if clean == ".." || strings.HasPrefix(clean, "../") || clean == "." {
		return "", fmt.Errorf("location %q leaves the repository", href)
	}
	return clean, nil
}

// fetch opens a repository-relative file and returns it with a name for
// errors (its URL or path).
func (r *Repo) fetch(ctx context.Context, href string) (io.ReadCloser, string, error) {
	rel, err := cleanLocation(href)
	if err != nil {
		return nil, href, fmt.Errorf("repo: %s: %w", r, err)
	}
	if r.base == nil {
		name := filepath.Join(r.dir, filepath.FromSlash(rel))
		f, err := os.Open(name)
		if err != nil {
			return nil, name, fmt.Errorf("repo: %w", err)
		}
		return f, name, nil
	}
	u := r.base.ResolveReference(&url.URL{Path: rel})
	name := u.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, name, nil)
	if err != nil {
		return nil, name, fmt.Errorf("repo: %w", err)
	}
	// The bytes as stored, which are what the checksums are of: without
	// this, Go's transport asks for gzip and silently decompresses the
	// .xml.gz files of servers that label them Content-Encoding: gzip.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, name, fmt.Errorf("repo: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, name, &statusError{url: name, status: resp.Status, code: resp.StatusCode}
	}
	return resp.Body, name, nil
}

// statusError is an HTTP answer other than 200 OK. A 404 is
// os.ErrNotExist, as a missing file in a local repository is.
type statusError struct {
	url, status string
	code        int
}

func (e *statusError) Error() string { return "repo: GET " + e.url + ": " + e.status }

func (e *statusError) Is(target error) bool {
	return target == os.ErrNotExist && (e.code == http.StatusNotFound || e.code == http.StatusGone)
}

func newHash(typ string) (hash.Hash, error) {
	switch typ {
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	case "sha384":
		return sha512.New384(), nil
	case "sha224":
		return sha256.New224(), nil
	case "sha1":
		return sha1.New(), nil
	case "md5":
		return md5.New(), nil
	}
	return nil, fmt.Errorf("unknown checksum type %q", typ)
}

// verifier hashes and counts the raw (compressed) bytes of a metadata file.
// At EOF, or when more bytes come than repomd.xml says, it sets err.
type verifier struct {
	r    io.Reader
	h    hash.Hash
	name string
	want Checksum
	size int64 // 0: not given
	n    int64
	err  error
	eof  bool
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.eof {
		return 0, io.EOF
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size > 0 && v.n > v.size {
		v.err = fmt.Errorf("%w: %s: longer than the %d bytes repomd.xml says", ErrChecksum, v.name, v.size)
		return n, v.err
	}
	if err == io.EOF {
		v.eof = true
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.Value {
			v.err = fmt.Errorf("%w: %s: repomd.xml says %s, the file has %s:%s", ErrChecksum, v.name, v.want, v.want.Type, got)
		} else if v.size > 0 && v.n != v.size {
			v.err = fmt.Errorf("%w: %s: %d bytes, repomd.xml says %d", ErrChecksum, v.name, v.n, v.size)
		}
		if v.err != nil {
			return n, v.err
		}
	}
	return n, err
}

// dataReader is the decompressed stream of a verified metadata file.
type dataReader struct {
	dec  io.ReadCloser
	v    *verifier
	body io.Closer
	name string
}

func (d *dataReader) Read(p []byte) (int, error) {
	n, err := d.dec.Read(p)
	if err == nil {
		return n, nil
	}
	// The decompressor may stop before the end of the raw stream (a gzip
	// member's trailer), or fail on altered bytes: either way, read the
	// raw stream to its end so the digest is checked, and report a
	// mismatch first, since it explains any corruption.
	if d.v.err == nil && !d.v.eof {
		io.Copy(io.Discard, d.v)
	}
	if d.v.err != nil {
		return n, d.v.err
	}
	if err == io.EOF {
		return n, io.EOF
	}
	return n, fmt.Errorf("%s: %w", d.name, err)
}

func (d *dataReader) Close() error {
	d.dec.Close()
	return d.body.Close()
}
