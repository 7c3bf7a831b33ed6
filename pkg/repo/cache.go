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

	"github.com/rpmfleet/rpmfleet/pkg/durable"
)

// The metadata cache keeps the files of an http(s) repository as they were
// downloaded (still compressed), each named by the checksum repomd.xml gives
// it, so the name alone says which version of the file it is:
//
//	<cache dir>/sha256-<hex>-primary.xml.gz
//
// A file is downloaded whole under a temporary name (pkg/durable) and
// renamed only once its digest and size have matched; only then is it read,
// from the cache. The cache folder is 0700 and its files 0600: what a
// device's repositories hold is nobody else's business.
// So a cut or tampered download leaves nothing behind, and a caller never
// sees a byte that was not checked. A cached
// file is hashed again before use; one that no longer matches (a bad disk,
// a stray edit) is removed and downloaded again. Files that the current
// repomd.xml no longer lists are removed each time Metadata reads it.

func cacheName(d Data) string {
	name := d.Checksum.Type + "-" + d.Checksum.Value + "-" + path.Base(d.Location)
	if len(name) > 255 {
		// createrepo's file names start with the digest: a sha512 one
		// twice passes the 255 bytes a file name may have. The name
		// stays unique by its leading type and digest.
		name = d.Checksum.Type + "-" + d.Checksum.Value + "-" + strings.TrimPrefix(path.Base(d.Location), d.Checksum.Value+"-")
		name = name[:min(len(name), 255)]
	}
	return name
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
		if !r.offline {
			os.Remove(p)
		}
		return nil, nil
	}
	return f, nil
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
		if keep[name] || e.IsDir() || (durable.IsTemp(name) && busy > 0) {
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
	if f == nil && r.offline {
		return nil, "", fmt.Errorf("%w: the kept copy of %s in %s is missing or does not match repomd.xml", ErrChecksum, d.Location, r.cacheDir)
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
	if err := os.MkdirAll(r.cacheDir, 0o700); err != nil {
		return fmt.Errorf("repo: cache: %w", err)
	}
	// What went wrong with the download is the answer; only a failure
	// to keep a good one is the cache's.
	var fetchErr error
	v := &verifier{r: body, h: h, name: name, want: d.Checksum, size: d.Size}
	err = durable.Write(filepath.Join(r.cacheDir, cacheName(d)), 0o600, func(w io.Writer) error {
		if _, err := io.Copy(w, v); err != nil && v.err == nil {
			fetchErr = fmt.Errorf("repo: %s: %w", name, err)
		} else {
			fetchErr = v.err
		}
		return fetchErr
	})
	if fetchErr != nil {
		return fetchErr
	}
	if err != nil {
		return fmt.Errorf("repo: cache: %w", err)
	}
	return nil
}
