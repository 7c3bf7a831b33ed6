// Package xmlstream reads XML one token at a time for the streaming decoders
// of repository metadata (updateinfo.xml, primary.xml): one element in memory
// at a time, and every error naming the line and, for a stream that ends
// early, saying the file is truncated.
package xmlstream

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Reader reads tokens from an XML stream. Its errors start with prefix
// ("updateinfo", "primary").
type Reader struct {
	x      *xml.Decoder
	prefix string
	text   strings.Builder
}

// New returns a Reader of r whose errors start with prefix.
func New(r io.Reader, prefix string) *Reader {
	return &Reader{x: xml.NewDecoder(r), prefix: prefix}
}

// Token returns the next token, or io.EOF at the end of the stream. XML
// syntax errors and read errors (such as a truncated compressed stream) are
// wrapped with the line.
func (r *Reader) Token() (xml.Token, error) {
	tok, err := r.x.Token()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			if se.Msg == "unexpected EOF" {
				return nil, fmt.Errorf("%s: line %d: unexpected EOF: the file is truncated", r.prefix, se.Line)
			}
			return nil, fmt.Errorf("%s: line %d: %s", r.prefix, se.Line, se.Msg)
		}
		return nil, fmt.Errorf("%s: line %d: %w", r.prefix, r.Line(), err)
	}
	return tok, nil
}

// Skip skips the rest of the current element.
func (r *Reader) Skip() error {
	for depth := 1; depth > 0; {
		tok, err := r.Token()
		if err != nil {
			return r.EOFError(err)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return nil
}

// Text returns the character data of the current element, trimmed; nested
// elements are skipped.
func (r *Reader) Text() (string, error) {
	r.text.Reset()
	for {
		tok, err := r.Token()
		if err != nil {
			return "", r.EOFError(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			r.text.Write(t)
		case xml.StartElement:
			if err := r.Skip(); err != nil {
				return "", err
			}
		case xml.EndElement:
			return strings.TrimSpace(r.text.String()), nil
		}
	}
}

// EOFError turns io.EOF met inside an element into an error naming the line;
// other errors pass unchanged.
func (r *Reader) EOFError(err error) error {
	if errors.Is(err, io.EOF) {
		return r.Errorf("unexpected end of input")
	}
	return err
}

// Line is the line the reader has reached.
func (r *Reader) Line() int {
	line, _ := r.x.InputPos()
	return line
}

// Errorf returns an error naming the prefix and the current line.
func (r *Reader) Errorf(format string, args ...any) error {
	return fmt.Errorf("%s: line %d: %s", r.prefix, r.Line(), fmt.Sprintf(format, args...))
}
