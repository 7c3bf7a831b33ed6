package osv

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// This file is a small strict JSON reader over one complete top-level value.
// It exists because the OSV files are mostly text the decoder does not need
// (the "details" prose is most of every object): walking the bytes directly,
// keeping only the few strings that become the model and skipping the rest
// without allocating, is several times faster than encoding/json's
// reflection. It accepts exactly what encoding/json accepts (the fuzz target
// checks this against json.Valid) and decodes strings the same way.

// maxDepth bounds nesting, as encoding/json does, so hostile input cannot
// exhaust the stack.
const maxDepth = 10000

// syntaxError is malformed JSON at a byte offset of the current object.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return e.msg }

// fieldError is well-formed JSON whose value for a field is wrong.
type fieldError struct {
	off  int    // offset of the offending value in the current object
	path string // "affected[2].ranges[0].events[1].fixed"
	err  error
}

func (e *fieldError) Error() string { return e.path + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// inField puts err under the field (or "[i]" element) name. Syntax errors
// keep their offset and take no path.
func inField(name string, err error) error {
	switch e := err.(type) {
	case nil:
		return nil
	case *syntaxError:
		return err
	case *fieldError:
		switch {
		case e.path == "":
			e.path = name
		case e.path[0] == '[':
			e.path = name + e.path
		default:
			e.path = name + "." + e.path
		}
		return e
	}
	return &fieldError{path: name, err: err}
}

// inKey is inField for an object member, building the name only on error.
func inKey(key []byte, err error) error {
	if err == nil {
		return nil
	}
	return inField(string(key), err)
}

// inIndex is inField for an array element.
func inIndex(i int, err error) error {
	if err == nil {
		return nil
	}
	return inField(fmt.Sprintf("[%d]", i), err)
}

type parser struct {
	data  []byte
	pos   int
	depth int
	// hitEnd is set when the parser needed a byte past the end of data:
	// its error may go away with more input.
	hitEnd bool
}

func (p *parser) reset(data []byte) {
	p.data, p.pos, p.depth, p.hitEnd = data, 0, 0, false
}

// next skips whitespace and returns the next byte without consuming it, or 0
// at the end of the data.
func (p *parser) next() byte {
	if p.pos < len(p.data) && p.data[p.pos] > ' ' {
		return p.data[p.pos] // compact JSON: no whitespace to skip
	}
	return p.skipSpace()
}

func (p *parser) skipSpace() byte {
	for p.pos < len(p.data) {
		switch c := p.data[p.pos]; c {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return c
		}
	}
	p.hitEnd = true
	return 0
}

func (p *parser) syntaxErr(format string, args ...any) error {
	return &syntaxError{off: p.pos, msg: fmt.Sprintf(format, args...)}
}

// unexpected reports the byte at p.pos (or the end of the data) where
// something else was wanted.
func (p *parser) unexpected(want string) error {
	if p.pos >= len(p.data) {
		p.hitEnd = true
		return p.syntaxErr("unexpected end of JSON input, want %s", want)
	}
	return p.syntaxErr("invalid character %s, want %s", quoteByte(p.data[p.pos]), want)
}

func quoteByte(c byte) string {
	if c < utf8.RuneSelf {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// kind names the JSON type starting with c, for "want string, got number".
func kind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "number"
	}
	return "invalid JSON"
}

// typeErr reports a value of the wrong JSON type at p.pos. The value is
// skipped first, so a malformed value is reported as the syntax error it is.
func (p *parser) typeErr(want string) error {
	off := p.pos
	got := kind(p.data[p.pos])
	if err := p.skip(); err != nil {
		return err
	}
	return &fieldError{off: off, err: fmt.Errorf("want %s, got %s", want, got)}
}

// object reads an object, calling fn with each member's key; fn must consume
// the member's value. The next byte must be '{'.
func (p *parser) object(fn func(key []byte) error) error {
	if p.depth++; p.depth > maxDepth {
		return p.syntaxErr("exceeded max nesting depth %d", maxDepth)
	}
	p.pos++ // '{'
	if p.next() == '}' {
		p.pos++
		p.depth--
		return nil
	}
	for {
		if p.next() != '"' {
			return p.unexpected("'\"' starting an object key")
		}
		key, err := p.str()
		if err != nil {
			return err
		}
		if p.next() != ':' {
			return p.unexpected("':' after object key")
		}
		p.pos++
		if err := fn(key); err != nil {
			return err
		}
		switch p.next() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			p.depth--
			return nil
		default:
			return p.unexpected("',' or '}' after object member")
		}
	}
}

// array reads an array, calling fn for each element; fn must consume it.
// The next byte must be '['.
func (p *parser) array(fn func(i int) error) error {
	if p.depth++; p.depth > maxDepth {
		return p.syntaxErr("exceeded max nesting depth %d", maxDepth)
	}
	p.pos++ // '['
	if p.next() == ']' {
		p.pos++
		p.depth--
		return nil
	}
	for i := 0; ; i++ {
		if err := fn(i); err != nil {
			return err
		}
		switch p.next() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			p.depth--
			return nil
		default:
			return p.unexpected("',' or ']' after array element")
		}
	}
}

// objectValue reads an object value; null reads as an empty object, as
// encoding/json leaves a field unset for null.
func (p *parser) objectValue(fn func(key []byte) error) error {
	switch p.next() {
	case '{':
		return p.object(fn)
	case 'n':
		return p.literal("null")
	case 0:
		return p.unexpected("object")
	}
	return p.typeErr("object")
}

// arrayValue reads an array value; null reads as an empty array.
func (p *parser) arrayValue(fn func(i int) error) error {
	switch p.next() {
	case '[':
		return p.array(fn)
	case 'n':
		return p.literal("null")
	case 0:
		return p.unexpected("array")
	}
	return p.typeErr("array")
}

// stringValue reads a string value that the decoder keeps, at most
// MaxFieldSize bytes as written; null reads as nil. The bytes alias the
// parser's data unless the string held escapes.
func (p *parser) stringValue() ([]byte, error) {
	switch p.next() {
	case '"':
		return p.strMax(MaxFieldSize)
	case 'n':
		return nil, p.literal("null")
	case 0:
		return nil, p.unexpected("string")
	}
	return nil, p.typeErr("string")
}

// strSafe marks the bytes a string may hold as they are: not the quote, not
// the backslash, not a control character.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString moves past the string starting at p.pos and reports whether
// it held escapes or bytes outside ASCII.
func (p *parser) scanString() (escaped, nonASCII bool, err error) {
	start := p.pos
	i := p.pos + 1
	data := p.data
	var high byte
	for {
		// Eight bytes at a time while none of them ends the fast path
		// (a quote, a backslash or a control character): the details
		// prose is most of every object.
		var high8 uint64
		for i+8 <= len(data) {
			x := binary.LittleEndian.Uint64(data[i:])
			if hasLess(x, 0x20)|hasZero(x^(lsb*'"'))|hasZero(x^(lsb*'\\')) != 0 {
				break
			}
			high8 |= x
			i += 8
		}
		if high8&msb != 0 {
			high = 0x80
		}
		for i < len(data) {
			c := data[i]
			if !strSafe[c] {
				break
			}
			high |= c
			i++
		}
		if i >= len(data) {
			p.pos, p.hitEnd = start, true
			return false, false, p.syntaxErr("unexpected end of JSON input in string")
		}
		switch c := data[i]; c {
		case '"':
			p.pos = i + 1
			return escaped, high >= utf8.RuneSelf, nil
		case '\\':
			escaped = true
			i++
			if i >= len(data) {
				p.pos, p.hitEnd = start, true
				return false, false, p.syntaxErr("unexpected end of JSON input in string")
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				for k := 1; k <= 4; k++ {
					if i+k >= len(data) {
						p.pos, p.hitEnd = start, true
						return false, false, p.syntaxErr("unexpected end of JSON input in string")
					}
					if !isHex(data[i+k]) {
						p.pos = i
						return false, false, p.syntaxErr("invalid \\u escape in string")
					}
				}
				i += 5
			default:
				p.pos = i
				return false, false, p.syntaxErr("invalid escape %s in string", quoteByte(data[i]))
			}
		default:
			p.pos = i
			return false, false, p.syntaxErr("invalid control character %s in string", quoteByte(c))
		}
	}
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasZero reports (as a non-zero result) whether any byte of x is zero;
// hasLess whether any byte is below n (n <= 0x80).
func hasZero(x uint64) uint64    { return (x - lsb) & ^x & msb }
func hasLess(x, n uint64) uint64 { return (x - lsb*n) & ^x & msb }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// str reads the string starting at p.pos. Plain valid UTF-8 is returned in
// place; anything else is decoded by encoding/json, so escapes, surrogate
// pairs and invalid UTF-8 read exactly as they would there.
func (p *parser) str() ([]byte, error) { return p.strMax(-1) }

// strMax is str for a string of at most limit bytes as written (no limit
// when negative), refused before it is decoded.
func (p *parser) strMax(limit int) ([]byte, error) {
	start := p.pos
	escaped, nonASCII, err := p.scanString()
	if err != nil {
		return nil, err
	}
	if limit >= 0 && p.pos-start-2 > limit {
		return nil, &fieldError{off: start, err: fmt.Errorf("longer than %d KiB", limit>>10)}
	}
	raw := p.data[start+1 : p.pos-1]
	if !escaped && (!nonASCII || utf8.Valid(raw)) {
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(p.data[start:p.pos], &s); err != nil {
		return nil, &syntaxError{off: start, msg: err.Error()}
	}
	return []byte(s), nil
}

// literal reads true, false or null; a mismatch is reported at the first
// wrong byte.
func (p *parser) literal(word string) error {
	for k := 0; k < len(word); k++ {
		if p.pos+k >= len(p.data) || p.data[p.pos+k] != word[k] {
			p.pos += k
			return p.unexpected(fmt.Sprintf("%q", word))
		}
	}
	p.pos += len(word)
	return nil
}

func (p *parser) number() error {
	d := p.data
	i := p.pos
	digits := func() bool {
		s := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		return i > s
	}
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case !digits():
		p.pos = i
		return p.unexpected("digit in number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if !digits() {
			p.pos = i
			return p.unexpected("digit after decimal point")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if !digits() {
			p.pos = i
			return p.unexpected("digit in exponent")
		}
	}
	p.pos = i
	return nil
}

// skip checks and moves past one value of any type.
func (p *parser) skip() error {
	switch c := p.next(); c {
	case '{':
		return p.object(func([]byte) error { return p.skip() })
	case '[':
		return p.array(func(int) error { return p.skip() })
	case '"':
		_, _, err := p.scanString()
		return err
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return p.number()
	}
	return p.unexpected("value")
}
