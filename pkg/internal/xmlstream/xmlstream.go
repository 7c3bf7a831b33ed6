// Package xmlstream reads XML one token at a time for the streaming decoders
// of repository metadata (updateinfo.xml, primary.xml): one element in memory
// at a time, and every error naming the line and, for a stream that ends
// early, saying the file is truncated.
//
// Threat model. The XML comes from outside (an upload, a mirror, a URL), and
// encoding/xml reads a whole token into memory before returning it: a text
// run, a tag with its attributes, a comment. A skipped <description> that
// inflates to 400 MB was therefore buffered whole. Here encoding/xml reads
// through a byte reader that knows which token is being read and stops it
// at its limit (Limits): an element's text at the limit of its kind, any
// markup at Limits.Markup, nesting at Limits.Depth. So whatever the input,
// the reader holds at most about one limit's worth of bytes, and an
// over-long token is refused with an error naming the line and the element
// ("updateinfo: line 12: <description> longer than 1 MiB") without ever
// being held whole. encoding/xml expands no entities beyond XML's five and
// character references, so there is no entity expansion to bound.
package xmlstream

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrTooLong is returned (wrapped) when an element's text, a tag or the
// nesting of elements goes past its limit.
var ErrTooLong = errors.New("xmlstream: over the limit")

// Limits bound what one token and one element may make the reader hold.
// Sizes are of the input as written (entities count as written).
type Limits struct {
	// Text bounds the character data of an element, by its local name;
	// an element not named here has DefaultText.
	Text        map[string]int
	DefaultText int
	// Markup bounds one tag with its attributes, one comment, one
	// processing instruction or document type declaration.
	Markup int
	// Depth bounds the nesting of elements.
	Depth int
}

// DefaultLimits are generous for repository metadata. The longest text in
// the real files the project has is an EPEL 4 update's <description>, 18
// KB; the longest of any other element, a title of 1.6 KB; the largest tag
// 261 bytes; the deepest nesting 6. Each limit is 30 to 250 times that.
func DefaultLimits() Limits {
	return Limits{
		Text:        map[string]int{"description": 1 << 20},
		DefaultText: 64 << 10,
		Markup:      64 << 10,
		Depth:       64,
	}
}

// Reader reads tokens from an XML stream. Its errors start with prefix
// ("updateinfo", "primary").
type Reader struct {
	x      *xml.Decoder
	in     *input
	prefix string
	lim    Limits
	stack  []element // the open elements
	text   strings.Builder
	err    error // sticky: the first error
}

// element is an open element.
type element struct {
	name  string
	line  int // where its start tag ends
	limit int // its text limit
}

// New returns a Reader of r, with DefaultLimits, whose errors start with
// prefix.
func New(r io.Reader, prefix string) *Reader {
	return NewLimits(r, prefix, DefaultLimits())
}

// NewLimits returns a Reader of r with the given limits. Markup is at
// least 64 bytes, so that a token's kind is always known before its limit.
func NewLimits(r io.Reader, prefix string, lim Limits) *Reader {
	lim.Markup = max(lim.Markup, 64)
	lim.DefaultText = max(lim.DefaultText, 1)
	lim.Depth = max(lim.Depth, 1)
	in := &input{src: r, buf: make([]byte, 32<<10)}
	return &Reader{x: xml.NewDecoder(in), in: in, prefix: prefix, lim: lim}
}

func (l *Limits) text(name string) int {
	if n, ok := l.Text[name]; ok {
		return n
	}
	return l.DefaultText
}

// Token returns the next token, or io.EOF at the end of the stream. XML
// syntax errors, read errors (such as a truncated compressed stream) and
// limits passed are wrapped with the line.
func (r *Reader) Token() (xml.Token, error) {
	if r.err != nil {
		return nil, r.err
	}
	tok, err := r.token()
	if err != nil && err != io.EOF {
		r.err = err
	}
	return tok, err
}

func (r *Reader) token() (xml.Token, error) {
	textLimit, in := r.lim.DefaultText, "the prolog"
	if n := len(r.stack); n > 0 {
		textLimit, in = r.stack[n-1].limit, "<"+r.stack[n-1].name+">"
	}
	startLine := r.Line()
	// One byte more than the limit for text: encoding/xml reads the '<'
	// that ends a text run before it returns the run.
	r.in.begin(r.x.InputOffset(), textLimit+1, r.lim.Markup)
	tok, err := r.x.Token()
	if r.in.over {
		// encoding/xml may return the part of a text run it read with
		// no error; the error is the limit, whatever it returned.
		return nil, r.overError(startLine, in, textLimit)
	}
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
	switch t := tok.(type) {
	case xml.StartElement:
		if len(r.stack) >= r.lim.Depth {
			return nil, r.limitErrorf(r.Line(), "elements nested deeper than %d", r.lim.Depth)
		}
		r.stack = append(r.stack, element{name: t.Name.Local, line: r.Line(), limit: r.lim.text(t.Name.Local)})
	case xml.EndElement:
		// encoding/xml has checked that it closes the innermost element.
		r.stack = r.stack[:len(r.stack)-1]
	}
	return tok, nil
}

// overError describes the token the input stopped: text of the element
// in, or markup.
func (r *Reader) overError(line int, in string, textLimit int) error {
	head := r.in.head[:r.in.headLen]
	if r.in.kind == kindText {
		if n := len(r.stack); n > 0 {
			line = r.stack[n-1].line
		}
		return r.limitErrorf(line, "%s longer than %s", textOf(in), size(textLimit))
	}
	what := "markup"
	switch {
	case strings.HasPrefix(string(head), "<!--"):
		what = "comment"
	case strings.HasPrefix(string(head), "<?"):
		what = "processing instruction"
	case strings.HasPrefix(string(head), "<!"):
		what = "declaration"
	case strings.HasPrefix(string(head), "</"):
		what = "end tag"
	default:
		if name := tagName(head[1:]); name != "" {
			what = "tag <" + name + ">"
		} else {
			what = "tag"
		}
	}
	return r.limitErrorf(line, "%s in %s longer than %s", what, in, size(r.lim.Markup))
}

// textOf names the text of in: "<description>" for an element, "text in
// the prolog" otherwise.
func textOf(in string) string {
	if strings.HasPrefix(in, "<") {
		return in
	}
	return "text in " + in
}

// tagName is the element name at the start of b, for an error message:
// only the characters of a plain XML name, at most 64 of them.
func tagName(b []byte) string {
	n := 0
	for n < len(b) && n < 64 {
		c := b[n]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == ':' || c == '-' || c == '.') {
			break
		}
		n++
	}
	return string(b[:n])
}

// LimitErrorf returns an error naming the prefix and the current line and
// wrapping ErrTooLong, for a limit a decoder keeps itself.
func (r *Reader) LimitErrorf(format string, args ...any) error {
	return r.limitErrorf(r.Line(), format, args...)
}

func (r *Reader) limitErrorf(line int, format string, args ...any) error {
	return &limitError{prefix: r.prefix, line: line, msg: fmt.Sprintf(format, args...)}
}

// limitError is a limit passed; it wraps ErrTooLong without repeating its
// text.
type limitError struct {
	prefix string
	line   int
	msg    string
}

func (e *limitError) Error() string { return fmt.Sprintf("%s: line %d: %s", e.prefix, e.line, e.msg) }
func (e *limitError) Unwrap() error { return ErrTooLong }

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
// elements are skipped. The text may come in several runs (between
// comments, or CDATA sections); together they are held to the element's
// limit.
func (r *Reader) Text() (string, error) {
	r.text.Reset()
	var el element
	if n := len(r.stack); n > 0 {
		el = r.stack[n-1]
	}
	for {
		tok, err := r.Token()
		if err != nil {
			return "", r.EOFError(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if r.text.Len()+len(t) > el.limit {
				r.err = r.limitErrorf(el.line, "<%s> longer than %s", el.name, size(el.limit))
				return "", r.err
			}
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

// size writes a byte count for an error message: "1 MiB", "64 KiB", "100
// bytes".
func size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
