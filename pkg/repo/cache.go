package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// The metadata cache keeps the files of an http(s) repository as they were
// downloaded (still compressed), each named by the checksum repomd.xml gives
// it, so the name alone says which version of the file it is:
//
//	<cache dir>/sha256-<hex>-primary.xml.gz
//
// A file is downloaded whole under a temporary name and renamed only once
// its digest and size have matched; only then is it read, from the cache.
// So a cut or tampered download leaves nothing behind, and a caller never
// sees a byte that was not checked. A cached
// file is hashed again before use; one that no longer matches (a bad disk,
// a stray edit) is removed and downloaded again. Files that the current
// repomd.xml no longer lists are removed each time Metadata reads it.

const partPrefix = ".part-"

func cacheName(d Data) string {
	return d.Checksum.Type + "-" + d.Checksum.Value + "-" + path.Base(d.Location)
}

// openCached returns the cached copy of d, checked, or nil when there is
// none usable.
func (r *Repo) openCached(d Data) (io.ReadCloser, error) {
	p := filepath.Join(r.cacheDir, cacheName(d))
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("repo: cache: %w", err)
	}
	h, err := newHash(d.Checksum.Type)
	if err != nil {
		f.Close()
		return nil, err
	}
	v := &verifier{r: f, h: h, name: p, want: d.Checksum, size: d.Size}
	_, err = io.Copy(io.Discard, v)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		// Not what repomd.xml names any more: drop it and download.
		f.Close()
		os.Remove(p)
		return nil, nil
	}
	return f, nil
}

// cacheWriter receives the raw bytes of a download and keeps them once the
// verifier has accepted the whole file.
type cacheWriter struct {
	f    *os.File
	dest string
}

func (r *Repo) newCacheWriter(d Data) (*cacheWriter, error) {
	if err := os.MkdirAll(r.cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("repo: cache: %w", err)
	}
	f, err := os.CreateTemp(r.cacheDir, partPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("repo: cache: %w", err)
	}
	return &cacheWriter{f: f, dest: filepath.Join(r.cacheDir, cacheName(d))}, nil
}

func (c *cacheWriter) Write(p []byte) (int, error) { return c.f.Write(p) }

// commit makes the verified download the cached copy.
func (c *cacheWriter) commit() error {
	if err := c.f.Sync(); err != nil {
		c.abort()
		return fmt.Errorf("repo: cache: %w", err)
	}
	if err := c.f.Close(); err != nil {
		os.Remove(c.f.Name())
		return fmt.Errorf("repo: cache: %w", err)
	}
	if err := os.Rename(c.f.Name(), c.dest); err != nil {
		os.Remove(c.f.Name())
		return fmt.Errorf("repo: cache: %w", err)
	}
	return nil
}

func (c *cacheWriter) abort() {
	c.f.Close()
	os.Remove(c.f.Name())
}

// pruneCache removes cached files that m does not list, and leftovers of
// interrupted downloads.
func (r *Repo) pruneCache(m *Repomd) error {
	entries, err := os.ReadDir(r.cacheDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("repo: cache: %w", err)
	}
	keep := map[string]bool{}
	for _, d := range m.Data {
		keep[cacheName(d)] = true
	}
	r.mu.Lock()
	busy := r.downloads
	r.mu.Unlock()
	for _, e := range entries {
		name := e.Name()
		if keep[name] || e.IsDir() || (strings.HasPrefix(name, partPrefix) && busy > 0) {
			continue
		}
		if err := os.Remove(filepath.Join(r.cacheDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("repo: cache: %w", err)
		}
	}
	return nil
}

// openRaw returns the raw (compressed) bytes of d and a name for errors.
// With a cache, a file not cached yet is downloaded whole and checked
// before it is kept and returned, so a caller never sees a byte that did
// not match repomd.xml.
func (r *Repo) openRaw(ctx context.Context, d Data) (io.ReadCloser, string, error) {
	if r.cacheDir == "" || r.base == nil {
		return r.fetch(ctx, d.Location)
	}
	f, err := r.openCached(d)
	if err != nil {
		return nil, "", err
	}
	if f == nil {
		if err := r.download(ctx, d); err != nil {
			return nil, "", err
		}
		if f, err = r.openCached(d); err != nil {
			return nil, "", err
		}
		if f == nil {
			return nil, "", fmt.Errorf("repo: cache: %s vanished after download", cacheName(d))
		}
	}
	return f, f.(*os.File).Name(), nil
}

// download fetches d into the cache, keeping it only when its digest and
// size match repomd.xml.
func (r *Repo) download(ctx context.Context, d Data) error {
	h, err := newHash(d.Checksum.Type)
	if err != nil {
		return fmt.Errorf("repo: data %q: %w", d.Type, err)
	}
	body, name, err := r.fetch(ctx, d.Location)
	if err != nil {
		return err
	}
	defer body.Close()
	r.mu.Lock()
	r.downloads++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.downloads--
		r.mu.Unlock()
	}()
	cw, err := r.newCacheWriter(d)
	if err != nil {
		return err
	}
	v := &verifier{r: body, h: h, name: name, want: d.Checksum, size: d.Size}
	if _, err := io.Copy(cw, v); err != nil {
		cw.abort()
		if v.err != nil {
			return v.err
		}
		return fmt.Errorf("repo: %s: %w", name, err)
	}
	if v.err != nil {
		cw.abort()
		return v.err
	}
	return cw.commit()
}
