// Package compressed opens a stream that may be compressed with gzip, xz,
// zstd or bzip2, telling which by its first bytes (its magic number), never by
// a file name: repositories name files by checksum, and users rename them.
//
// Decompression is streaming: memory stays bounded whatever the size of the
// input, so a 100 MB primary.xml.zst costs the same as a small one.
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

// ErrTruncated is returned (wrapped) when a compressed stream ends early.
var ErrTruncated = errors.New("compressed: stream truncated")

// NewReader returns a reader of r's decompressed content and the format it
// found. The caller must Close it (r itself is not closed). Errors while
// reading name the format and say when the stream ended early.
func NewReader(r io.Reader) (io.ReadCloser, Format, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, "", fmt.Errorf("compressed: read header: %w", err)
	}
	f := Detect(head)
	var dec io.Reader
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
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, f, wrap(f, err)
		}
		dec = xr
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return nil, f, wrap(f, err)
		}
		dec, closeFn = zr, func() error { zr.Close(); return nil }
	case Bzip2:
		dec = bzip2.NewReader(br)
	}
	return &reader{r: dec, format: f, close: closeFn}, f, nil
}

type reader struct {
	r      io.Reader
	format Format
	close  func() error
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = wrap(r.format, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.close() }

func wrap(f Format, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: %w: %w", f, ErrTruncated, err)
	}
	return fmt.Errorf("%s: corrupt data: %w", f, err)
}
