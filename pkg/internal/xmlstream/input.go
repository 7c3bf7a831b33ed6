package xmlstream

import (
	"errors"
	"io"
)

// input is the byte reader under encoding/xml. encoding/xml reads a byte
// at a time from an io.ByteReader without buffering of its own, and one
// Token call reads one token (and at most one byte past it, which it puts
// back), so input can tell how many bytes the token being read has taken
// and stop it at its limit, before encoding/xml has buffered more.
type input struct {
	src      io.Reader
	buf      []byte
	r, w     int
	err      error // src's error, returned once buf is drained
	consumed int64 // bytes handed out
	last     byte  // the last byte handed out

	// The token being read.
	n         int // its bytes handed out
	limit     int // the limit for its kind, once known
	textLimit int
	markLimit int
	kind      tokenKind
	head      [72]byte // its first bytes: its kind ("<![CDATA[" is 9) and a tag's name
	headLen   int
	over      bool // the token went past its limit
}

type tokenKind int

const (
	kindUnknown tokenKind = iota
	kindText              // character data, or a CDATA section
	kindMarkup            // a tag, comment, processing instruction or declaration
)

var errOver = errors.New("xmlstream: token over its limit")

// begin starts a token at offset off, the decoder's position: the bytes
// handed out past it (the one encoding/xml put back) are the token's first.
func (in *input) begin(off int64, textLimit, markupLimit int) {
	in.textLimit, in.markLimit = textLimit, markupLimit
	in.n, in.headLen, in.kind, in.over = 0, 0, kindUnknown, false
	in.limit = max(textLimit, markupLimit)
	if in.consumed > off {
		in.n = int(in.consumed - off)
		in.note(in.last)
	}
}

func (in *input) ReadByte() (byte, error) {
	if in.n >= in.limit {
		in.over = true
		return 0, errOver
	}
	if in.r == in.w {
		if err := in.fill(); err != nil {
			return 0, err
		}
	}
	c := in.buf[in.r]
	in.r++
	in.consumed++
	in.n++
	in.last = c
	if in.headLen < len(in.head) {
		in.note(c)
	}
	return c, nil
}

// note records one of the token's first bytes and, once they tell, its
// kind and limit.
func (in *input) note(c byte) {
	if in.headLen >= len(in.head) {
		return
	}
	in.head[in.headLen] = c
	in.headLen++
	switch {
	case in.headLen == 1 && c != '<':
		in.kind, in.limit = kindText, in.textLimit
	case in.headLen == 1:
		in.kind, in.limit = kindMarkup, in.markLimit
	case in.kind == kindMarkup && in.headLen == 9 && string(in.head[:9]) == "<![CDATA[":
		// A CDATA section is text: its content and 12 bytes of markup.
		in.kind, in.limit = kindText, in.textLimit+12
	}
}

// Read is there for xml.NewDecoder's signature; encoding/xml reads through
// ReadByte, and so does Read, so that the limits hold either way.
func (in *input) Read(p []byte) (int, error) {
	for i := range p {
		c, err := in.ReadByte()
		if err != nil {
			return i, err
		}
		p[i] = c
	}
	return len(p), nil
}

func (in *input) fill() error {
	if in.err != nil {
		return in.err
	}
	for range 100 {
		n, err := in.src.Read(in.buf)
		in.r, in.w = 0, n
		if err != nil {
			in.err = err
			if n == 0 {
				return err
			}
		}
		if n > 0 {
			return nil
		}
	}
	in.err = io.ErrNoProgress
	return in.err
}
