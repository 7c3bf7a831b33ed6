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
// network. A kept copy (Keep, UseKept; kept.go), for an update that runs
// while the repository cannot be reached, is checked the same way again
// when used, and is never used when the repository answered, however
// wrongly (Unreachable).
package repo

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

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
	// FetchTimeout bounds each fetch of a small document: a mirror list,
	// a metalink, a mirror's repomd.xml and its signature, body included,
	// so a mirror that stalls or trickles is given up for the next one.
	// 0 means 60 s.
	FetchTimeout time.Duration
	// Vars fill the variables ($basearch, ...) in the URLs a mirror list
	// returns, as dnf does; see SystemVars. Used by NewFromConfig.
	Vars map[string]string
	// Log receives the mirrors skipped on the way to a usable one, with
	// why; nil discards.
	Log *slog.Logger
}

// Repo is one repository, given by its base: an http or https URL, a
// file:// URL or a local directory, under which repodata/repomd.xml lives;
// or, from a .repo file (NewFromConfig), by several bases, a mirror list
// or a metalink, tried in order until one serves a usable repomd.xml.
type Repo struct {
	id         string     // the .repo file's id, "" for New
	bases      []*url.URL // http(s) bases given (baseurl=), tried first
	mirrorList string     // mirrorlist= URL, "" when none
	metalink   string     // metalink= URL, "" when none
	dir        string     // for local directories
	client     *http.Client
	cacheDir   string
	keyring    openpgp.KeyRing
	requireSig bool
	timeout    time.Duration
	vars       map[string]string
	log        *slog.Logger

	// base is the http(s) base in use: the only one for New, else the
	// mirror the last Metadata chose (nil before). Metadata writes it
	// under mu; Open and PackageURL read it, so Metadata must not run
	// concurrently with them.
	base *url.URL
	// spares are the mirrors after base in the order Metadata tries them,
	// not yet found wanting: where a package that base fails to serve is
	// looked for next (PackageURLs).
	spares []*url.URL

	// offline: the metadata is a kept copy (UseKept), read from the
	// cache dir only, never downloaded.
	offline bool

	mu        sync.Mutex // guards repomd, base's writes and downloads
	repomd    *Repomd    // the last one Metadata read
	downloads int        // downloads being written into the cache
}

func newRepo(opts Options) (*Repo, error) {
	r := &Repo{client: opts.HTTPClient, cacheDir: opts.CacheDir, keyring: opts.Keyring, requireSig: opts.RequireSignature,
		timeout: opts.FetchTimeout, vars: opts.Vars, log: opts.Log}
	if r.requireSig && r.keyring == nil {
		return nil, errors.New("repo: RequireSignature without a Keyring")
	}
	if r.client == nil {
		r.client = http.DefaultClient
	}
	if r.timeout <= 0 {
		r.timeout = 60 * time.Second
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// New returns the repository at base. It does not touch the network or the
// disk.
func New(base string, opts Options) (*Repo, error) {
	r, err := newRepo(opts)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(base)
	switch {
	case err == nil && (u.Scheme == "http" || u.Scheme == "https"):
		if r.base, err = httpBase(base); err != nil {
			return nil, err
		}
		r.bases = []*url.URL{r.base}
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

// httpBase parses an http(s) repository base, with a trailing slash.
func httpBase(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("repo: %q: scheme %q is not http or https", s, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("repo: %q: no host", s)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	return u, nil
}

// String returns the repository's base; for a repository of a .repo
// file, its id and the mirror in use (or where mirrors come from).
func (r *Repo) String() string {
	if r.dir != "" {
		return r.dir
	}
	where := ""
	switch {
	case r.base != nil:
		where = r.base.String()
	case r.metalink != "":
		where = "metalink " + r.metalink
	case r.mirrorList != "":
		where = "mirror list " + r.mirrorList
	}
	if r.id == "" {
		return where
	}
	return r.id + " (" + where + ")"
}

// ID returns the .repo file's id of the repository, "" for New.
func (r *Repo) ID() string { return r.id }

// Metadata fetches and parses repodata/repomd.xml. Open uses the last one
// read; calling Metadata again refreshes it. A repository with several
// mirrors (NewFromConfig) tries them in order: one that cannot be reached,
// answers an HTTP error, or serves a repomd.xml that does not match the
// metalink, fails its signature check or does not parse is skipped for
// the next, and the skips are logged once one succeeds; when none does,
// the error (wrapping ErrNoMirror and each mirror's error) says why each
// failed.
func (r *Repo) Metadata(ctx context.Context) (*Repomd, error) {
	if r.dir != "" {
		return r.use(r.metadataFrom(ctx, nil, nil))
	}
	src, err := r.mirrors(ctx)
	if err != nil {
		return nil, err
	}
	if len(src.bases) == 1 && len(src.skipped) == 0 && src.metalink == nil {
		m, err := r.metadataFrom(ctx, src.bases[0], nil)
		if err == nil {
			r.setBase(src.bases[0], nil)
		}
		return r.use(m, err)
	}
	for i, b := range src.bases {
		m, err := r.metadataFrom(ctx, b, src.metalink)
		if err == nil {
			r.setBase(b, src.bases[i+1:])
			for _, s := range src.skipped {
				r.log.Warn("mirror skipped", "repo", r.id, "mirror", s.mirror, "err", s.err)
			}
			r.log.Info("mirror in use", "repo", r.id, "mirror", b.String(), "skipped", len(src.skipped))
			return r.use(m, nil)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		src.skipped = append(src.skipped, skippedMirror{mirror: b.String(), err: err})
	}
	return nil, &mirrorsError{repo: r.String(), skipped: src.skipped}
}

func (r *Repo) setBase(b *url.URL, spares []*url.URL) {
	r.mu.Lock()
	r.base, r.spares = b, spares
	r.mu.Unlock()
}

// use makes m the repository's metadata and prunes the cache to it.
func (r *Repo) use(m *Repomd, err error) (*Repomd, error) {
	if err != nil {
		return nil, err
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

// metadataFrom reads repomd.xml from one base (nil: the local directory)
// and checks it against the metalink (when given) and the signature
// (with a keyring) before parsing it. The whole fetch is bounded by the
// fetch timeout.
func (r *Repo) metadataFrom(ctx context.Context, base *url.URL, ml *Metalink) (*Repomd, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	rc, name, err := r.fetchFrom(ctx, base, "repodata/repomd.xml")
	if err != nil {
		return nil, err
	}
	// The metalink's digests and the signature cover the exact bytes:
	// read them once, check, then parse what was checked.
	raw, err := io.ReadAll(io.LimitReader(rc, maxRepomdSize+1))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("repo: %s: %w", name, err)
	}
	if len(raw) > maxRepomdSize {
		return nil, fmt.Errorf("repo: %s: larger than %d bytes", name, maxRepomdSize)
	}
	if ml != nil {
		if err := ml.Verify(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	var sig []byte
	if r.keyring != nil {
		if sig, err = r.verifySignature(ctx, base, raw, name); err != nil {
			return nil, err
		}
	}
	m, err := ParseRepomd(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// The exact bytes checked, for Keep.
	m.raw, m.sig = raw, sig
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

// PackageURLs is PackageURL followed by the same package on the mirrors
// Metadata would have tried after the one in use, in that order: where a
// download goes next when a mirror fails to serve the file or serves one
// that does not match primary.xml's digest.
// Mirrors whose repomd.xml was refused are not among them. Whichever
// mirror serves it, a package is checked against the digest and size the
// verified metadata gives, so a spare mirror can delay an update, never
// change it.
func (r *Repo) PackageURLs(p *Package) ([]string, error) {
	first, err := r.PackageURL(p)
	if err != nil {
		return nil, err
	}
	urls := []string{first}
	rel, _ := cleanLocation(p.Location) // PackageURL checked it
	for _, b := range r.spares {
		urls = append(urls, b.ResolveReference(&url.URL{Path: rel}).String())
	}
	return urls, nil
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

// fetch opens a repository-relative file of the base in use and returns
// it with a name for errors (its URL or path).
func (r *Repo) fetch(ctx context.Context, href string) (io.ReadCloser, string, error) {
	return r.fetchFrom(ctx, r.base, href)
}

// fetchFrom opens a file relative to base, or to the local directory when
// base is nil.
func (r *Repo) fetchFrom(ctx context.Context, base *url.URL, href string) (io.ReadCloser, string, error) {
	rel, err := cleanLocation(href)
	if err != nil {
		return nil, href, fmt.Errorf("repo: %s: %w", r, err)
	}
	if base == nil {
		name := filepath.Join(r.dir, filepath.FromSlash(rel))
		f, err := os.Open(name)
		if err != nil {
			return nil, name, fmt.Errorf("repo: %w", err)
		}
		return f, name, nil
	}
	u := base.ResolveReference(&url.URL{Path: rel})
	name := u.String()
	body, err := r.get(ctx, name)
	return body, name, err
}

// get fetches an http(s) URL: 200 OK only (another answer is a
// statusError), the body as stored.
func (r *Repo) get(ctx context.Context, name string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, name, nil)
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	// The bytes as stored, which are what the checksums are of: without
	// this, Go's transport asks for gzip and silently decompresses the
	// .xml.gz files of servers that label them Content-Encoding: gzip.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, &statusError{url: name, status: resp.Status, code: resp.StatusCode}
	}
	return resp.Body, nil
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
