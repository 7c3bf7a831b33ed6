package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/repo"
)

// downloadTries is how many times one download is tried in a cycle, each
// try resuming where the last one stopped.
const downloadTries = 3

// The slowest transfer a download accepts, as dnf's minrate and timeout
// say it: fewer than minRate bytes a second over a whole stallWindow ends
// the try (and the download resumes from there on the next one). A mirror,
// or someone between it and the device, that trickles a package a byte at
// a time would otherwise hold the update cycle for as long as it liked.
const (
	minRate     = 1000
	stallWindow = 30 * time.Second
)

// errTooSlow ends a transfer below minRate.
var errTooSlow = errors.New("transfer slower than the minimum rate")

// fetcher downloads package files into the state dir.
type fetcher struct {
	client *http.Client
	log    func(msg string, args ...any)
	// minRate (bytes a second) and window override the constants above;
	// zero means them. A test seam.
	minRate int64
	window  time.Duration
}

// fetchAny is fetch from the first of srcs (the same file on a
// repository's mirrors, in order) that serves it whole and matching its
// digest: a mirror that cannot be reached after its tries, answers an
// error, or serves another file is given up for the next, as dnf does.
// The last mirror's error is the answer when none serves it.
func (f *fetcher) fetchAny(ctx context.Context, srcs []string, dst, checksum string, size int64) (resumedAt int64, err error) {
	if _, err := repo.ParseChecksum(checksum); err != nil {
		return f.fetch(ctx, srcs[0], dst, checksum, size) // no mirror can help
	}
	for i, src := range srcs {
		resumedAt, err = f.fetch(ctx, src, dst, checksum, size)
		if err == nil || stopping(ctx) || i == len(srcs)-1 ||
			!errors.Is(err, ErrDownload) && !errors.Is(err, ErrChecksum) {
			return resumedAt, err
		}
		f.log("mirror failed to serve the package; trying the next", "url", src, "next", srcs[i+1], "err", err)
	}
	return resumedAt, err
}

// fetch makes dst a copy of src (an http(s) URL or a local path) whose size
// and digest are those of the repository metadata. An existing dst that
// matches is kept. A download goes to dst.part and resumes from its end with
// an HTTP Range request, so a transfer cut by a mirror going away is
// continued, not restarted, by the next try or the next cycle. It returns the
// offset a resumed download started from (0 when none was).
func (f *fetcher) fetch(ctx context.Context, src, dst, checksum string, size int64) (resumedAt int64, err error) {
	// The repository's own vocabulary (repo.ParseChecksum), so what
	// planned is what downloads: a type the plan accepted is one this
	// accepts.
	sum, err := repo.ParseChecksum(checksum)
	if err != nil {
		return 0, stepErr(ErrChecksum, false, "%s: the repository metadata's checksum: %w", src, err)
	}
	typ, want := sum.Type, sum.Value
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
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
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
	body := &counter{r: io.LimitReader(resp.Body, limit)}
	stop := f.watchRate(body, cancel)
	_, err = io.Copy(out, body)
	stop()
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, errTooSlow) {
		err = cause
	}
	if serr := out.Sync(); err == nil {
		err = serr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return from, err
}

// counter counts what is read through it, for watchRate.
type counter struct {
	r io.Reader
	n atomic.Int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// watchRate cancels a transfer that moves fewer than the minimum rate's
// bytes in any window; the returned func stops watching.
func (f *fetcher) watchRate(c *counter, cancel context.CancelCauseFunc) (stop func()) {
	rate, window := f.minRate, f.window
	if rate <= 0 {
		rate = minRate
	}
	if window <= 0 {
		window = stallWindow
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(window)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n := c.n.Load()
				if n-last < rate*int64(window)/int64(time.Second) {
					cancel(fmt.Errorf("%w: %d bytes in %v, at least %d bytes a second needed", errTooSlow, n-last, window, rate))
					return
				}
				last = n
			}
		}
	}()
	return func() { close(done) }
}

// fileMatches reports whether path has the size and digest given; got says
// what it has instead.
func fileMatches(path, typ, want string, size int64) (ok bool, got string) {
	h, err := repo.NewHash(typ)
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

// copyFile copies a package from a local repository. The source is opened
// without blocking and must be a regular file: a FIFO planted in a local
// repository would otherwise hold the cycle in open or read for ever.
func copyFile(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil {
		return err
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is %v, not a regular file", src, fi.Mode().Type())
	}
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
