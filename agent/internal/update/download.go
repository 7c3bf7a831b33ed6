package update

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// downloadTries is how many times one download is tried in a cycle, each
// try resuming where the last one stopped.
const downloadTries = 3

// fetcher downloads package files into the state dir.
type fetcher struct {
	client *http.Client
	log    func(msg string, args ...any)
}

// fetch makes dst a copy of src (an http(s) URL or a local path) whose size
// and digest are those of the repository metadata. An existing dst that
// matches is kept. A download goes to dst.part and resumes from its end with
// an HTTP Range request, so a transfer cut by a mirror going away is
// continued, not restarted, by the next try or the next cycle. It returns the
// offset a resumed download started from (0 when none was).
func (f *fetcher) fetch(ctx context.Context, src, dst, checksum string, size int64) (resumedAt int64, err error) {
	typ, want, ok := strings.Cut(checksum, ":")
	if !ok {
		return 0, stepErr(ErrChecksum, false, "%s: no checksum in the repository metadata", src)
	}
	if ok, _ := fileMatches(dst, typ, want, size); ok {
		return 0, nil
	}
	part := dst + ".part"
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		if err := copyFile(src, part); err != nil {
			return 0, stepErr(ErrDownload, false, "copy %s: %w", src, err)
		}
	} else {
		var last error
		for try := 0; try < downloadTries; try++ {
			if try > 0 {
				select {
				case <-ctx.Done():
					return resumedAt, ctx.Err()
				case <-time.After(time.Duration(try) * 200 * time.Millisecond):
				}
			}
			var from int64
			from, last = f.get(ctx, src, part, size)
			if from > 0 && resumedAt == 0 {
				resumedAt = from
			}
			if last == nil {
				break
			}
			f.log("download interrupted", "url", src, "try", try+1, "err", last)
		}
		if last != nil {
			if stopping(ctx) {
				return resumedAt, ctx.Err()
			}
			return resumedAt, stepErr(ErrDownload, true, "download %s: %w", src, last)
		}
	}
	ok, got := fileMatches(part, typ, want, size)
	if !ok {
		os.Remove(part)
		return resumedAt, stepErr(ErrChecksum, false, "%s: %s; the repository metadata says %s:%s, %d bytes", src, got, typ, want, size)
	}
	if err := os.Rename(part, dst); err != nil {
		return resumedAt, stepErr(ErrDownload, false, "store %s: %w", dst, err)
	}
	return resumedAt, syncDir(dirOf(dst))
}

// get appends to part what the server has beyond its current length.
func (f *fetcher) get(ctx context.Context, url, part string, size int64) (from int64, err error) {
	if fi, err := os.Stat(part); err == nil {
		from = fi.Size()
		if size > 0 && from > size {
			os.Remove(part)
			from = 0
		}
	}
	if size > 0 && from == size {
		return from, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if from > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", from))
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return from, err
	}
	defer resp.Body.Close()
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	switch {
	case resp.StatusCode == http.StatusPartialContent && from > 0:
	case resp.StatusCode == http.StatusOK:
		flags |= os.O_TRUNC // the server ignored the range: start over
		from = 0
	default:
		return from, fmt.Errorf("%s", resp.Status)
	}
	out, err := os.OpenFile(part, flags, 0o600)
	if err != nil {
		return from, err
	}
	limit := int64(1 << 40)
	if size > 0 {
		limit = size - from + 1 // one more byte shows a file longer than listed
	}
	_, err = io.Copy(out, io.LimitReader(resp.Body, limit))
	if serr := out.Sync(); err == nil {
		err = serr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return from, err
}

// fileMatches reports whether path has the size and digest given; got says
// what it has instead.
func fileMatches(path, typ, want string, size int64) (ok bool, got string) {
	h, err := newHash(typ)
	if err != nil {
		return false, err.Error()
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err.Error()
	}
	defer f.Close()
	n, err := io.Copy(h, f)
	if err != nil {
		return false, err.Error()
	}
	sum := fmt.Sprintf("%x", h.Sum(nil))
	if size > 0 && n != size {
		return false, fmt.Sprintf("got %d bytes with %s %s", n, typ, sum)
	}
	if sum != strings.ToLower(want) {
		return false, fmt.Sprintf("got %s:%s, %d bytes", typ, sum, n)
	}
	return true, ""
}

func newHash(typ string) (hash.Hash, error) {
	switch typ {
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	case "sha384":
		return sha512.New384(), nil
	case "sha1", "sha":
		return sha1.New(), nil
	}
	return nil, fmt.Errorf("unsupported checksum type %q", typ)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if serr := out.Sync(); err == nil {
		err = serr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}
