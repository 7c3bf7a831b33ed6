// Package osv reads advisories in the OSV JSON format (https://ossf.github.io/osv-schema/)
// as the AlmaLinux OSV database publishes them, into advisory.Advisory values.
//
// Input is untrusted: it comes from a download or an upload. The reader
// never panics on it, bounds nesting depth and the size of one object
// (MaxObjectSize), holds one object in memory at a time, and answers every
// malformed, truncated or unknown input with an *Error naming the file, the
// line and the field, never with a silently short list.
//
// Accepted inputs, told apart by content and never by file name: one OSV
// object, a stream of objects one per line (JSON lines) or otherwise
// concatenated, each plain or compressed in any format package compressed
// detects; ParseFile also takes a folder of such files.
//
// How OSV maps onto the model, following the AlmaLinux database's habits:
//   - one OSV file may name packages of several ecosystems (ALSA-2024:0265
//     has AlmaLinux:8 and AlmaLinux:9 entries), so an object becomes one
//     Advisory per ecosystem, with Advisory.Ecosystem set; Options.Ecosystem
//     keeps one ecosystem only;
//   - each affected entry's fixed events of ECOSYSTEM ranges become
//     Packages, read with rpmver.ParseEVR ("1:3.0.7-16.el9_2"), with no Arch
//     and no Module; the same name may appear once per module stream build,
//     and only exact duplicates are dropped; "introduced" is ignored; an
//     entry with no fixed event names no fix and is skipped (Decoder.Skipped
//     counts them);
//   - the severity is the prefix of summary ("Important: openssl security
//     update"), SeverityNone without one; the whole summary is the Title, as
//     dnf shows it; the type comes from the id (advisory.TypeFromID);
//   - CVEs are the CVE ids of related and aliases, sorted and deduplicated;
//     references keep their OSV type, lower-cased ("advisory", "report");
//   - published and modified are Issued and Updated.
package osv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// MaxObjectSize bounds one OSV object. The largest in the AlmaLinux
// database is under 100 KiB.
const MaxObjectSize = 64 << 20

// ErrNotJSON is returned (inside an *Error) for input that is not JSON, or
// JSON whose top-level values are not objects.
var ErrNotJSON = errors.New("osv: unknown format, not OSV JSON")

// ErrTooLarge is returned (inside an *Error) for an object over MaxObjectSize.
var ErrTooLarge = errors.New("osv: object too large")

// Options select what a Decoder emits.
type Options struct {
	// Ecosystem, when set ("AlmaLinux:9"), keeps only the packages of that
	// ecosystem; advisories left with none are dropped. When empty, each
	// (id, ecosystem) pair becomes its own Advisory.
	Ecosystem string
}

// Error is a problem in OSV input, placed as precisely as it is known.
type Error struct {
	File   string // the file, when known
	Line   int    // 1-based line, 0 when unknown
	Column int    // 1-based byte column, for malformed JSON; else 0
	Field  string // the JSON path of a bad value ("affected[2].package.name")
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("osv: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(strings.TrimPrefix(e.Err.Error(), "osv: "))
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

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
	fixed            []rpmver.EVR
	rangeFixed       []fixedEvent
	ecosystems       []string
	seen             map[advisory.Package]struct{}
	interned         map[string]string
}

type ref struct{ typ, url []byte }

// entry is one affected[] element with at least one fixed version:
// d.fixed[lo:hi].
type entry struct {
	eco    string
	name   []byte
	lo, hi int
}

type fixedEvent struct {
	value []byte
	off   int
	event int
}

// NewDecoder returns a Decoder reading r, which may be compressed.
func NewDecoder(r io.Reader, opts Options) *Decoder {
	return &Decoder{
		opts:     opts,
		src:      r,
		line:     1,
		seen:     make(map[advisory.Package]struct{}),
		interned: make(map[string]string),
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

// Close releases the decompressor. It does not close the reader given to
// NewDecoder. Next closes it by itself at the end of the input or on error.
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
		rc, _, err := compressed.NewReader(d.src)
		if err != nil {
			return err
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
				return ErrTooLarge
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

// readObject frames the next top-level object in buf, parses it and queues
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
	// Find the object's end: the matching '}' outside strings.
	n, complete, err := d.frame()
	if err != nil {
		return err
	}
	obj := d.buf[d.start : d.start+n]
	d.p.reset(obj)
	if !complete {
		// Let the parser say where the input ran out.
		if perr := d.parse(); perr != nil {
			return d.locate(obj, perr)
		}
		return d.locate(obj, &syntaxError{off: n, msg: "unexpected end of JSON input"})
	}
	d.objects++
	if err := d.parse(); err != nil {
		return d.locate(obj, err)
	}
	d.line += bytes.Count(obj, []byte{'\n'})
	d.start += n
	return nil
}

// frame returns the length of the object starting at buf[start], reading
// more input as needed; complete is false when the input ended first.
func (d *Decoder) frame() (n int, complete bool, err error) {
	depth := 0
	i := d.start
	for {
		for i < d.end {
			switch d.buf[i] {
			case '"':
				// Jump to the closing quote: one not preceded by an odd
				// number of backslashes.
				j := i + 1
				for {
					k := bytes.IndexByte(d.buf[j:d.end], '"')
					if k < 0 {
						j = d.end
						break
					}
					j += k
					bs := 0
					for b := j - 1; b > i && d.buf[b] == '\\'; b-- {
						bs++
					}
					if bs%2 == 0 {
						break
					}
					j++
				}
				if j >= d.end {
					goto more // string not finished: rescan it after filling
				}
				i = j + 1
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1 - d.start, true, nil
				}
			}
			i++
		}
	more:
		off := i - d.start
		if err := d.fill(); err == io.EOF {
			return d.end - d.start, false, nil
		} else if err != nil {
			return 0, false, err
		}
		i = d.start + off
	}
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

// parse reads the object in d.p and queues its advisories.
func (d *Decoder) parse() error {
	p := &d.p
	var id, summary []byte
	var issued, updated time.Time
	d.related, d.aliases = d.related[:0], d.aliases[:0]
	d.refs, d.entries, d.fixed = d.refs[:0], d.entries[:0], d.fixed[:0]
	skipped := 0

	err := p.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "id":
			id, err = p.stringValue()
		case "summary":
			summary, err = p.stringValue()
		case "published":
			issued, err = p.timeValue()
		case "modified":
			updated, err = p.timeValue()
		case "related":
			d.related, err = p.stringsValue(d.related[:0])
		case "aliases":
			d.aliases, err = p.stringsValue(d.aliases[:0])
		case "references":
			d.refs = d.refs[:0]
			err = p.arrayValue(func(i int) error {
				var r ref
				err := p.objectValue(func(key []byte) error {
					var err error
					switch string(key) {
					case "type":
						r.typ, err = p.stringValue()
					case "url":
						r.url, err = p.stringValue()
					default:
						return p.skip()
					}
					return inField(string(key), err)
				})
				d.refs = append(d.refs, r)
				return inField(fmt.Sprintf("[%d]", i), err)
			})
		case "affected":
			d.entries, d.fixed, skipped = d.entries[:0], d.fixed[:0], 0
			err = p.arrayValue(func(i int) error {
				ok, err := d.parseAffected()
				if !ok && err == nil {
					skipped++
				}
				return inField(fmt.Sprintf("[%d]", i), err)
			})
		default:
			return p.skip()
		}
		if err != nil {
			return inField(string(key), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(id) == 0 {
		return &fieldError{path: "id", err: errors.New("missing")}
	}
	d.skipped += skipped
	d.emit(id, summary, issued, updated)
	return nil
}

// parseAffected reads one affected[] element. It reports false (and no
// error) when the element names no fixed version.
func (d *Decoder) parseAffected() (bool, error) {
	p := &d.p
	e := entry{lo: len(d.fixed)}
	var eco []byte
	start := p.pos
	err := p.objectValue(func(key []byte) error {
		var err error
		switch string(key) {
		case "package":
			eco, e.name = nil, nil
			err = p.objectValue(func(key []byte) error {
				var err error
				switch string(key) {
				case "ecosystem":
					eco, err = p.stringValue()
				case "name":
					e.name, err = p.stringValue()
				default:
					return p.skip()
				}
				return inField(string(key), err)
			})
		case "ranges":
			d.fixed = d.fixed[:e.lo]
			err = p.arrayValue(func(i int) error {
				return inField(fmt.Sprintf("[%d]", i), d.parseRange())
			})
		default:
			return p.skip()
		}
		return inField(string(key), err)
	})
	if err != nil {
		return false, err
	}
	switch {
	case len(e.name) == 0:
		return false, &fieldError{off: start, path: "package.name", err: errors.New("missing")}
	case len(eco) == 0:
		return false, &fieldError{off: start, path: "package.ecosystem", err: errors.New("missing")}
	}
	e.hi = len(d.fixed)
	if e.hi == e.lo {
		return false, nil
	}
	e.eco = d.intern(eco)
	d.entries = append(d.entries, e)
	return true, nil
}

// parseRange reads one ranges[] element and appends the fixed versions of an
// ECOSYSTEM range to d.fixed. Other range types (GIT, SEMVER) name no RPM
// version and are passed over.
func (d *Decoder) parseRange() error {
	p := &d.p
	var typ []byte
	start := p.pos
	d.rangeFixed = d.rangeFixed[:0]
	err := p.objectValue(func(key []byte) error {
		var err error
		switch string(key) {
		case "type":
			typ, err = p.stringValue()
		case "events":
			d.rangeFixed = d.rangeFixed[:0]
			err = p.arrayValue(func(i int) error {
				slot := -1 // this event's entry in rangeFixed; a repeated key replaces it
				return inField(fmt.Sprintf("[%d]", i), p.objectValue(func(key []byte) error {
					if string(key) != "fixed" {
						return p.skip() // introduced, last_affected, limit
					}
					off := p.pos
					v, err := p.stringValue()
					switch {
					case err != nil:
						return inField("fixed", err)
					case slot >= 0 && v == nil:
						d.rangeFixed, slot = d.rangeFixed[:slot], -1
					case slot >= 0:
						d.rangeFixed[slot] = fixedEvent{value: v, off: off, event: i}
					case v != nil:
						slot = len(d.rangeFixed)
						d.rangeFixed = append(d.rangeFixed, fixedEvent{value: v, off: off, event: i})
					}
					return nil
				}))
			})
		default:
			return p.skip()
		}
		return inField(string(key), err)
	})
	if err != nil {
		return err
	}
	if len(typ) == 0 {
		return &fieldError{off: start, path: "type", err: errors.New("missing")}
	}
	if string(typ) != "ECOSYSTEM" {
		return nil
	}
	for _, f := range d.rangeFixed {
		evr, err := rpmver.ParseEVR(string(f.value))
		if err != nil {
			return &fieldError{off: f.off, path: fmt.Sprintf("events[%d].fixed", f.event),
				err: fmt.Errorf("bad version: %w", err)}
		}
		d.fixed = append(d.fixed, evr)
	}
	return nil
}

func (p *parser) timeValue() (time.Time, error) {
	off := p.pos
	b, err := p.stringValue()
	if err != nil || len(b) == 0 {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, string(b))
	if err != nil {
		return time.Time{}, &fieldError{off: off, err: fmt.Errorf("bad time %q: want RFC 3339", b)}
	}
	return t, nil
}

func (p *parser) stringsValue(dst [][]byte) ([][]byte, error) {
	err := p.arrayValue(func(i int) error {
		s, err := p.stringValue()
		if err != nil {
			return inField(fmt.Sprintf("[%d]", i), err)
		}
		dst = append(dst, s)
		return nil
	})
	return dst, err
}

// severityOf reads the severity prefix of an AlmaLinux summary.
func severityOf(summary []byte) advisory.Severity {
	prefix, _, ok := bytes.Cut(summary, []byte(": "))
	if !ok {
		return advisory.SeverityNone
	}
	s, err := advisory.ParseSeverity(string(prefix))
	if err != nil {
		return advisory.SeverityNone
	}
	return s
}

// emit queues one Advisory per ecosystem of the parsed object (or for
// Options.Ecosystem only) that has fixed packages.
func (d *Decoder) emit(id, summary []byte, issued, updated time.Time) {
	d.ecosystems = d.ecosystems[:0]
	if d.opts.Ecosystem != "" {
		d.ecosystems = append(d.ecosystems, d.opts.Ecosystem)
	} else {
		for _, e := range d.entries {
			if !slices.Contains(d.ecosystems, e.eco) {
				d.ecosystems = append(d.ecosystems, e.eco)
			}
		}
	}
	var base *advisory.Advisory
	for _, eco := range d.ecosystems {
		n := 0
		for _, e := range d.entries {
			if e.eco == eco {
				n += e.hi - e.lo
			}
		}
		if n == 0 {
			continue
		}
		pkgs := make([]advisory.Package, 0, n)
		clear(d.seen)
		for _, e := range d.entries {
			if e.eco != eco {
				continue
			}
			name := string(e.name)
			for _, evr := range d.fixed[e.lo:e.hi] {
				pkg := advisory.Package{Name: name, EVR: evr}
				if _, dup := d.seen[pkg]; dup {
					continue
				}
				d.seen[pkg] = struct{}{}
				pkgs = append(pkgs, pkg)
			}
		}
		a := new(advisory.Advisory)
		if base == nil {
			base = a
			a.ID = string(id)
			a.Type = advisory.TypeFromID(a.ID)
			a.Severity = severityOf(summary)
			a.Title = string(summary)
			a.Issued, a.Updated = issued, updated
			a.CVEs = d.cves()
			if len(d.refs) > 0 {
				a.References = make([]advisory.Reference, len(d.refs))
				for i, r := range d.refs {
					a.References[i] = advisory.Reference{Type: strings.ToLower(string(r.typ)), URL: string(r.url)}
				}
			}
		} else {
			*a = *base
			a.CVEs = slices.Clone(base.CVEs)
			a.References = slices.Clone(base.References)
		}
		a.Ecosystem = eco
		a.Packages = pkgs
		d.pending = append(d.pending, a)
	}
}

// cves returns the CVE ids among related and aliases, sorted and unique.
func (d *Decoder) cves() []string {
	var out []string
	for _, list := range [][][]byte{d.related, d.aliases} {
		for _, s := range list {
			if bytes.HasPrefix(s, []byte("CVE-")) {
				out = append(out, string(s))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ParseFile reads every advisory in path: one OSV file (a single object or
// JSON lines, plain or compressed), or a folder, whose files named *.json or
// *.jsonl (optionally with a compression suffix such as .gz) are read in
// lexical order, subfolders included. An advisory found twice for the same
// ecosystem (the AlmaLinux database stores a two-ecosystem advisory in both
// folders) is kept once, the most recently modified.
func ParseFile(path string, opts Options) ([]advisory.Advisory, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("osv: %w", err)
	}
	if !fi.IsDir() {
		return dedupe(parseOne(path, opts, nil))
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Type().IsRegular() && isOSVName(de.Name()) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("osv: read folder: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("osv: %s: no OSV files (*.json, *.jsonl) in folder", path)
	}
	var out []advisory.Advisory
	for _, f := range files {
		if out, err = parseOne(f, opts, out); err != nil {
			return nil, err
		}
	}
	return dedupe(out, nil)
}

func isOSVName(name string) bool {
	for _, z := range []string{".gz", ".xz", ".zst", ".bz2"} {
		name = strings.TrimSuffix(name, z)
	}
	return strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".jsonl")
}

// parseOne appends the advisories of one file to out. A file holding no
// object at all is an error: an empty download is not an empty database.
func parseOne(path string, opts Options, out []advisory.Advisory) ([]advisory.Advisory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("osv: %w", err)
	}
	defer f.Close()
	d := NewDecoder(f, opts)
	d.name = path
	for {
		a, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	if d.objects == 0 {
		return nil, &Error{File: path, Err: errors.New("no OSV object in file")}
	}
	return out, nil
}

func dedupe(list []advisory.Advisory, err error) ([]advisory.Advisory, error) {
	if err != nil {
		return nil, err
	}
	type key struct{ id, eco string }
	at := make(map[key]int, len(list))
	out := list[:0]
	for _, a := range list {
		k := key{a.ID, a.Ecosystem}
		if i, ok := at[k]; ok {
			if a.Updated.After(out[i].Updated) {
				out[i] = a
			}
			continue
		}
		at[k] = len(out)
		out = append(out, a)
	}
	return out, nil
}
