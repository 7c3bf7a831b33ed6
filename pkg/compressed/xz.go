package compressed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// xzGuard passes an xz file through to the decoder while reading its
// structure (the .xz file format, version 1.0.4): stream headers, block
// headers, the LZMA2 chunk headers that say how long each block is, the
// index, the stream footer and stream padding. It refuses a block whose
// LZMA2 dictionary is larger than maxDict before the decoder sees that
// block's header, since the decoder allocates the dictionary a header asks
// for (up to 4 GiB) and fills it as it decompresses.
//
// It checks only what it needs to find every block header; the decoder
// checks the rest (CRCs, the index against the blocks). Anything the guard
// cannot follow is refused: the decoder would refuse it too.
type xzGuard struct {
	src     io.Reader
	maxDict int64
	err     error // sticky

	state   xzState
	field   [1024]byte // the field being collected (a block header is at most 1024 bytes)
	have    int        // bytes of field collected
	want    int        // bytes of field wanted
	skip    int64      // bytes to pass over unread
	check   int        // the current stream's check size
	length  int64      // bytes of the current block or index so far, for its padding
	counted bool       // the index's number of records has been read
	varints uint64     // index varints still to read
	blocks  int        // block headers read, for tests
}

type xzState int

const (
	xzStreamHeader  xzState = iota // the 12-byte stream header
	xzBlockOrIndex                 // the first byte of a block header, or 0 for the index
	xzBlockHeader                  // the rest of a block header
	xzChunk                        // an LZMA2 chunk's control byte
	xzChunkHeader                  // the rest of an LZMA2 chunk header
	xzIndexVarint                  // the index's varints, a byte at a time
	xzStreamPadding                // zero bytes between streams, or the next stream
)

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

func (g *xzGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.src.Read(p)
	if ferr := g.feed(p[:n]); ferr != nil {
		g.err = ferr
		return 0, ferr
	}
	return n, err
}

// feed follows the structure through b.
func (g *xzGuard) feed(b []byte) error {
	for len(b) > 0 {
		if g.skip > 0 {
			k := min(int64(len(b)), g.skip)
			g.skip -= k
			b = b[k:]
			continue
		}
		if g.state == xzStreamPadding {
			if b[0] == 0 {
				b = b[1:]
				continue
			}
			g.state, g.want, g.have = xzStreamHeader, 12, 0
		}
		if g.want == 0 { // the first stream header
			g.want = 12
		}
		k := copy(g.field[g.have:g.want], b)
		g.have += k
		b = b[k:]
		if g.have < g.want {
			return nil
		}
		if err := g.step(); err != nil {
			return err
		}
	}
	return nil
}

// step acts on a collected field and says what to collect next.
func (g *xzGuard) step() error {
	f := g.field[:g.want]
	next := func(s xzState, want, have int) { g.state, g.want, g.have = s, want, have }
	switch g.state {
	case xzStreamHeader:
		if !bytes.Equal(f[:6], xzMagic) {
			return errors.New("not an xz stream after stream padding")
		}
		if f[6] != 0 || f[7]&0xf0 != 0 {
			return errors.New("unsupported stream flags")
		}
		g.check = checkSize(f[7] & 0x0f)
		next(xzBlockOrIndex, 1, 0)
	case xzBlockOrIndex:
		if f[0] == 0 {
			g.length, g.counted, g.varints = 1, false, 1 // the number of records comes first
			next(xzIndexVarint, 1, 0)
			return nil
		}
		// The header's size byte stays in field[0]; collect the rest.
		size := (int(f[0]) + 1) * 4
		g.length = int64(size)
		next(xzBlockHeader, size, 1)
	case xzBlockHeader:
		if err := g.blockHeader(f); err != nil {
			return err
		}
		g.blocks++
		next(xzChunk, 1, 0)
	case xzChunk:
		c := f[0]
		g.length++
		switch {
		case c == 0x00: // end of the block's data
			g.skip = (4-g.length%4)%4 + int64(g.check) // block padding, check
			next(xzBlockOrIndex, 1, 0)
		case c == 0x01 || c == 0x02: // uncompressed chunk: 2 bytes of size
			next(xzChunkHeader, 3, 1)
		case c >= 0xc0: // LZMA chunk with properties: sizes, properties
			next(xzChunkHeader, 6, 1)
		case c >= 0x80: // LZMA chunk: unpacked and packed sizes
			next(xzChunkHeader, 5, 1)
		default:
			return fmt.Errorf("invalid LZMA2 chunk control byte 0x%02x", c)
		}
	case xzChunkHeader:
		g.length += int64(g.want - 1)
		var payload int64
		if f[0] < 0x80 {
			payload = int64(f[1])<<8 | int64(f[2]) + 1 // uncompressed size
		} else {
			payload = int64(f[3])<<8 | int64(f[4]) + 1 // packed size
		}
		g.length += payload
		g.skip = payload
		next(xzChunk, 1, 0)
	case xzIndexVarint:
		return g.indexByte()
	}
	return nil
}

// indexByte takes one byte of the index's varints (the number of records,
// then each record's unpadded and uncompressed sizes), collected in field
// until a byte without the continuation bit ends one.
func (g *xzGuard) indexByte() error {
	g.length++
	if g.field[g.have-1]&0x80 != 0 {
		if g.have == 9 {
			return errors.New("index: varint too long")
		}
		g.want++ // more bytes of this varint
		return nil
	}
	v, _, err := uvarint(g.field[:g.have])
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	g.want, g.have = 1, 0
	g.varints--
	if !g.counted {
		g.counted = true
		if v > 1<<62 {
			return errors.New("index: too many records")
		}
		g.varints = 2 * v
	}
	if g.varints == 0 {
		// Index padding, CRC32, then the 12-byte stream footer.
		g.skip = (4-g.length%4)%4 + 4 + 12
		g.state = xzStreamPadding
	}
	return nil
}

// blockHeader reads a block header's filter flags and checks the LZMA2
// dictionary size.
func (g *xzGuard) blockHeader(h []byte) error {
	flags := h[1]
	if flags&0x3c != 0 {
		return errors.New("unsupported block flags")
	}
	p := h[2 : len(h)-4] // after the size byte and the flags, before the CRC32
	var err error
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // compressed, uncompressed size
		if present {
			if _, p, err = uvarint(p); err != nil {
				return fmt.Errorf("block header: %w", err)
			}
		}
	}
	filters := int(flags&0x03) + 1
	for i := range filters {
		var id, n uint64
		if id, p, err = uvarint(p); err != nil {
			return fmt.Errorf("block header: %w", err)
		}
		if n, p, err = uvarint(p); err != nil {
			return fmt.Errorf("block header: %w", err)
		}
		if n > uint64(len(p)) {
			return errors.New("block header: filter properties past its end")
		}
		props := p[:n]
		p = p[n:]
		if id != 0x21 || i != filters-1 {
			return errors.New("block header: a filter other than LZMA2 (the only one supported)")
		}
		if n != 1 {
			return errors.New("block header: bad LZMA2 properties")
		}
		dict, err := lzma2Dict(props[0])
		if err != nil {
			return err
		}
		if dict > g.maxDict {
			return fmt.Errorf("%w: a block asks for a %s dictionary, more than %s", ErrWindow, size(dict), size(g.maxDict))
		}
	}
	return nil
}

// checkSize is the size of a block's check for the stream flags' check
// type (0 none, 1 CRC32, 4 CRC64, 10 SHA-256, the others reserved but
// sized by the format).
func checkSize(t byte) int {
	switch {
	case t == 0:
		return 0
	case t <= 3:
		return 4
	case t <= 6:
		return 8
	case t <= 9:
		return 16
	case t <= 12:
		return 32
	}
	return 64
}

// lzma2Dict decodes an LZMA2 dictionary size property.
func lzma2Dict(p byte) (int64, error) {
	switch {
	case p > 40:
		return 0, errors.New("block header: bad LZMA2 dictionary size")
	case p == 40:
		return 1<<32 - 1, nil
	}
	return int64(2|p&1) << (p/2 + 11), nil
}

// uvarint reads an xz variable-length integer (at most 9 bytes, 63 bits).
func uvarint(b []byte) (uint64, []byte, error) {
	var v uint64
	for i := 0; i < len(b) && i < 9; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if i > 0 && b[i] == 0 {
				return 0, nil, errors.New("non-minimal varint")
			}
			return v, b[i+1:], nil
		}
	}
	return 0, nil, errors.New("bad varint")
}
