// Package compressed opens a stream that may be compressed with gzip, xz,
// zstd or bzip2, telling which by its first bytes (its magic number), never by
// a file name: repositories name files by checksum, and users rename them.
//
// Threat model. The compressed input comes from outside: an upload, a URL an
// operator names, a mirror the agent was sent to. A few hundred kilobytes can
// inflate to gigabytes (a "bomb"), and a header can ask the decoder for a
// history window of gigabytes. So decompression is streaming, with bounds on
// both: at most MaxWindow of history per stream (the xz dictionary, the zstd
// window; gzip and bzip2 are small by design), refused before any of it is
// allocated, and at most DefaultMaxSize decompressed bytes (NewReaderMax takes
// another limit), refused when the limit is passed rather than cut short. A
// stream that ends early is an error wrapping ErrTruncated, never a short
// read that looks complete. Memory then stays bounded whatever the input.
package compressed

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Format is a compression format.
type Format string

// The formats NewReader recognizes. Plain means no compression.
const (
	Plain Format = "plain"
	Gzip  Format = "gzip"
	XZ    Format = "xz"
	Zstd  Format = "zstd"
	Bzip2 Format = "bzip2"
)

// DefaultMaxSize bounds what NewReader decompresses from one stream. The
// largest metadata the project reads, a big repository's primary.xml or a
// distribution's whole updateinfo.xml, is a few hundred MB uncompressed;
// 2 GiB leaves a wide margin while an inflating bomb stops after seconds of
// work. A caller that needs more uses NewReaderMax.
const DefaultMaxSize int64 = 2 << 30

// MaxWindow bounds the history a decoder keeps for one stream: the xz
// (LZMA2) dictionary and the zstd window. xz -9 uses 64 MiB and zstd's
// levels up to 19 at most 8 MiB; only zstd --ultra -22 and --long reach
// 128 MiB, and those are refused.
const MaxWindow = 64 << 20

var magics = []struct {
	format Format
	magic  []byte
}{
	{Gzip, []byte{0x1f, 0x8b}},
	{XZ, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{Bzip2, []byte("BZh")},
}

// Detect reports the format whose magic number starts head.
func Detect(head []byte) Format {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.format
		}
	}
	return Plain
}

var (
	// ErrTruncated is returned (wrapped) when a compressed stream ends
	// early.
	ErrTruncated = errors.New("compressed: stream truncated")
	// ErrTooLarge is returned (wrapped) when a stream decompresses to more
	// than its limit.
	ErrTooLarge = errors.New("compressed: decompressed size over the limit")
	// ErrWindow is returned (wrapped) when a stream asks for a history
	// window larger than MaxWindow.
	ErrWindow = errors.New("compressed: window over the limit")
)

// NewReader returns a reader of r's decompressed content and the format it
// found, decompressing at most DefaultMaxSize bytes. The caller must Close
// it (r itself is not closed). Errors while reading name the format and say
// when the stream ended early or went over a limit.
func NewReader(r io.Reader) (io.ReadCloser, Format, error) {
	return NewReaderMax(r, DefaultMaxSize)
}

// NewReaderMax is NewReader with another bound on the decompressed size. A
// plain (uncompressed) stream is passed through unbounded: its size is its
// source's, which the caller bounds (a file, an upload limit).
func NewReaderMax(r io.Reader, max int64) (io.ReadCloser, Format, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, "", fmt.Errorf("compressed: read header: %w", err)
	}
	f := Detect(head)
	var dec io.Reader
	var guard *xzGuard
	closeFn := func() error { return nil }
	switch f {
	case Plain:
		return io.NopCloser(br), Plain, nil
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, f, wrap(f, err)
		}
		dec, closeFn = zr, zr.Close
	case XZ:
		// The xz decoder allocates whatever dictionary a block header
		// asks for (up to 4 GiB); the guard reads the headers as they
		// pass and refuses a larger one first.
		guard = &xzGuard{src: br, maxDict: MaxWindow}
		xr, err := xz.NewReader(guard)
		if err != nil {
			return nil, f, wrapGuard(f, guard, err)
		}
		dec = xr
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(MaxWindow))
		if err != nil {
			return nil, f, wrap(f, err)
		}
		dec, closeFn = zr, func() error { zr.Close(); return nil }
	case Bzip2:
		dec = bzip2.NewReader(br)
	}
	tooLarge := func() error {
		return fmt.Errorf("%s: %w: more than %s decompressed", f, ErrTooLarge, size(max))
	}
	return &reader{Reader: Capped(&named{r: dec, format: f, guard: guard}, max, tooLarge), close: closeFn}, f, nil
}

// reader is a decompressor, capped, with its errors named.
type reader struct {
	io.Reader
	close func() error
}

// named says which format a read error came from and what it means.
type named struct {
	r      io.Reader
	format Format
	guard  *xzGuard // xz only
}

func (r *named) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = wrapGuard(r.format, r.guard, err)
	}
	return n, err
}

// Capped returns a reader of at most max bytes of r that then fails with
// tooLarge(), an error wrapping ErrTooLarge, where io.LimitReader would end
// the stream there as if it were whole.
func Capped(r io.Reader, max int64, tooLarge func() error) io.Reader {
	return &capped{r: r, left: max, tooLarge: tooLarge}
}

type capped struct {
	r        io.Reader
	left     int64 // bytes still allowed; -1 once over the limit
	tooLarge func() error
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, c.tooLarge()
	}
	// Ask for one byte past the limit, to tell a stream that ends at the
	// limit from one that goes on.
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	if int64(n) > c.left {
		n, c.left = int(c.left), -1
		return n, c.tooLarge()
	}
	c.left -= int64(n)
	return n, err
}

func (r *reader) Close() error { return r.close() }

// wrapGuard prefers the xz guard's own error, which says what was refused,
// to what the decoder made of the read failing.
func wrapGuard(f Format, g *xzGuard, err error) error {
	if g != nil && g.err != nil {
		return fmt.Errorf("%s: %w", f, g.err)
	}
	return wrap(f, err)
}

func wrap(f Format, err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: %w: %w", f, ErrTruncated, err)
	case errors.Is(err, zstd.ErrWindowSizeExceeded):
		return fmt.Errorf("%s: %w: the stream asks for more than %s", f, ErrWindow, size(MaxWindow))
	}
	return fmt.Errorf("%s: corrupt data: %w", f, err)
}

// size writes a byte count for an error message: "64 MiB", "2 GiB",
// "1500 bytes".
func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
