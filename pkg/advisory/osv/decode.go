package osv

// The Decoder: finding one object at a time in a stream, bounded, and
// placing errors by line and column.

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
)

// Decoder reads advisories from a stream of OSV objects, one object in
// memory at a time.
type Decoder struct {
	opts Options
	name string // file name for errors, set by ParseFile

	src io.Reader
	rc  io.ReadCloser // decompressed src, opened on the first Next
	err error         // sticky: io.EOF or the first error

	buf        []byte // buf[start:end] is read and not yet consumed
	start, end int
	eof        bool
	line       int // line number of buf[start]

	objects int // objects read
	skipped int // affected entries with no fixed event

	p       parser
	pending []*advisory.Advisory

	// Scratch reused across objects.
	related, aliases [][]byte
	refs             []ref
	entries          []entry
	fixed            []fixedEvent
	rangeFixed       []fixedEvent
	cveViews         [][]byte
	arena            []byte
	table            []int32 // dropDuplicatePackages' hash table: index+1 into the packages, 0 empty
	seed             maphash.Seed
	ecosystems       []string
	interned         map[string]string
}

type ref struct {
	typ, url []byte
	typLen   int // length of the lower-cased type in the arena
}

// entry is one affected[] element with at least one fixed version:
// d.fixed[lo:hi].
type entry struct {
	index  int // position in affected[], for errors
	eco    string
	name   []byte
	lo, hi int
	at     int // where name and fixed versions start in the arena
}

// fixedEvent is the fixed version of an ECOSYSTEM range event, as written.
type fixedEvent struct {
	value      []byte
	off        int // offset in the object, for errors
	rng, event int // positions in ranges[] and events[], for errors
}

// NewDecoder returns a Decoder reading r, which may be compressed.
func NewDecoder(r io.Reader, opts Options) *Decoder {
	return &Decoder{
		opts:     opts,
		src:      r,
		line:     1,
		interned: make(map[string]string),
		seed:     maphash.MakeSeed(),
	}
}

// Next returns the next advisory, or io.EOF after the last one. Any other
// error is an *Error and is final. Each call returns a new Advisory that the
// caller owns.
func (d *Decoder) Next() (*advisory.Advisory, error) {
	for len(d.pending) == 0 {
		if d.err != nil {
			return nil, d.err
		}
		if err := d.readObject(); err != nil {
			d.fail(err)
			return nil, d.err
		}
	}
	a := d.pending[0]
	d.pending[0] = nil
	d.pending = d.pending[1:]
	return a, nil
}

// Skipped returns how many affected entries were skipped so far because
// they name no fixed version.
func (d *Decoder) Skipped() int { return d.skipped }

// Close stops and releases the decompressor (a compressed input is
// decompressed by a goroutine of its own, ahead of the parser). It does not
// close the reader given to NewDecoder. Next does the same by itself when it
// returns an error or io.EOF; a caller that stops before must call Close.
func (d *Decoder) Close() error {
	if d.err == nil {
		d.err = errors.New("osv: decoder closed")
	}
	return d.closeSource()
}

func (d *Decoder) closeSource() error {
	if d.rc == nil {
		return nil
	}
	err := d.rc.Close()
	d.rc = nil
	return err
}

// fail makes err final, as an *Error naming the file.
func (d *Decoder) fail(err error) {
	if err != io.EOF {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Line: d.line, Err: err}
			err = e
		}
		e.File = d.name
	}
	d.err = err
	d.closeSource()
}

// fill reads more input into buf, growing it when it is full.
func (d *Decoder) fill() error {
	if d.eof {
		return io.EOF
	}
	if d.rc == nil {
		rc, format, err := compressed.NewReader(d.src)
		if err != nil {
			return err
		}
		if format != compressed.Plain {
			rc = newPrefetcher(rc)
		}
		d.rc = rc
		d.buf = make([]byte, 256<<10)
	}
	if d.end == len(d.buf) {
		if d.start > 0 && d.start >= (d.end-d.start) {
			n := copy(d.buf, d.buf[d.start:d.end])
			d.start, d.end = 0, n
		} else {
			if d.end-d.start >= MaxObjectSize {
				return fmt.Errorf("%w: over %d MiB", ErrTooLarge, MaxObjectSize>>20)
			}
			nb := make([]byte, 2*len(d.buf))
			n := copy(nb, d.buf[d.start:d.end])
			d.buf, d.start, d.end = nb, 0, n
		}
	}
	n, err := d.rc.Read(d.buf[d.end:])
	d.end += n
	if err == io.EOF {
		d.eof = true
		if n > 0 {
			return nil
		}
		return io.EOF
	}
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

// readObject parses the next top-level object from buf and queues
// its advisories. It returns io.EOF at the clean end of the input.
func (d *Decoder) readObject() error {
	// Skip whitespace between objects, counting lines.
	for {
		for d.start < d.end {
			c := d.buf[d.start]
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				goto found
			}
			if c == '\n' {
				d.line++
			}
			d.start++
		}
		if err := d.fill(); err == io.EOF {
			return io.EOF
		} else if err != nil {
			return err
		}
	}
found:
	if d.buf[d.start] != '{' {
		head := d.buf[d.start:min(d.end, d.start+8)]
		if d.objects == 0 {
			return &Error{Line: d.line, Column: 1, Err: fmt.Errorf("%w (starts with %q)", ErrNotJSON, head)}
		}
		return &Error{Line: d.line, Column: d.column(d.start), Err: fmt.Errorf("%w: found %q where an object should start", ErrNotJSON, head)}
	}
	// Parse what is buffered. When the object runs past it, read more
	// (at least doubling what is buffered, so a large object costs linear
	// time) and parse it again from its start: parsing has no effect until
	// it succeeds, and with a 256 KiB buffer a retry is rare.
	for {
		obj := d.buf[d.start:d.end]
		d.p.reset(obj)
		err := d.parse()
		if err == nil {
			n := d.p.pos
			d.objects++
			d.line += bytes.Count(obj[:n], []byte{'\n'})
			d.start += n
			return nil
		}
		if !d.p.hitEnd || d.eof {
			return d.locate(obj, err)
		}
		if err := d.more(); err != nil && err != io.EOF {
			return err
		}
	}
}

// more reads until the unconsumed input has doubled (by 64 KiB at least) or
// the input ends.
func (d *Decoder) more() error {
	want := d.end - d.start
	want += max(want, 64<<10)
	for d.end-d.start < want {
		if err := d.fill(); err != nil {
			return err
		}
	}
	return nil
}

func (d *Decoder) column(pos int) int {
	ls := bytes.LastIndexByte(d.buf[:pos], '\n')
	return pos - ls
}

// locate turns a parse error at an offset of obj into an *Error with a line
// and, for malformed JSON, a column.
func (d *Decoder) locate(obj []byte, err error) error {
	e := &Error{Err: err}
	off := 0
	switch pe := err.(type) {
	case *syntaxError:
		off = pe.off
	case *fieldError:
		off, e.Field, e.Err = pe.off, pe.path, pe.err
	}
	off = min(off, len(obj))
	e.Line = d.line + bytes.Count(obj[:off], []byte{'\n'})
	if _, ok := err.(*syntaxError); ok {
		e.Column = d.column(d.start + off)
	}
	return e
}

func (d *Decoder) intern(b []byte) string {
	if s, ok := d.interned[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.interned) < 1024 {
		d.interned[s] = s
	}
	return s
}
