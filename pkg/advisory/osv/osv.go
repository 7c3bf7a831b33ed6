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
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

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
	fixed            []fixedEvent
	rangeFixed       []fixedEvent
	cveViews         [][]byte
	arena            []byte
	table            []int32 // dedupe's hash table: index+1 into the packages, 0 empty
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

// parse reads the object in d.p and queues its advisories. It has no effect
// (but on scratch space) unless it succeeds.
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
					return inKey(key, err)
				})
				d.refs = append(d.refs, r)
				return inIndex(i, err)
			})
		case "affected":
			d.entries, d.fixed, skipped = d.entries[:0], d.fixed[:0], 0
			err = p.arrayValue(func(i int) error {
				ok, err := d.parseAffected(i)
				if !ok && err == nil {
					skipped++
				}
				return inIndex(i, err)
			})
		default:
			return p.skip()
		}
		return inKey(key, err)
	})
	if err != nil {
		return err
	}
	if len(id) == 0 {
		return &fieldError{path: "id", err: errors.New("missing")}
	}
	if err := d.build(id, summary, issued, updated); err != nil {
		return err
	}
	d.skipped += skipped
	return nil
}

// parseAffected reads affected[i]. It reports false (and no error) when the
// element names no fixed version.
func (d *Decoder) parseAffected(i int) (bool, error) {
	p := &d.p
	e := entry{index: i, lo: len(d.fixed)}
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
				return inKey(key, err)
			})
		case "ranges":
			d.fixed = d.fixed[:e.lo]
			err = p.arrayValue(func(j int) error {
				return inIndex(j, d.parseRange(j))
			})
		default:
			return p.skip()
		}
		return inKey(key, err)
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

// parseRange reads ranges[j] and appends the fixed versions of an ECOSYSTEM
// range to d.fixed. Other range types (GIT, SEMVER) name no RPM version and
// are passed over.
func (d *Decoder) parseRange(j int) error {
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
			err = p.arrayValue(func(k int) error {
				slot := -1 // this event's entry in rangeFixed; a repeated key replaces it
				return inIndex(k, p.objectValue(func(key []byte) error {
					if string(key) != "fixed" {
						return p.skip() // introduced, last_affected, limit
					}
					off := p.pos
					v, err := p.stringValue()
					f := fixedEvent{value: v, off: off, rng: j, event: k}
					switch {
					case err != nil:
						return inField("fixed", err)
					case slot >= 0 && v == nil:
						d.rangeFixed, slot = d.rangeFixed[:slot], -1
					case slot >= 0:
						d.rangeFixed[slot] = f
					case v != nil:
						slot = len(d.rangeFixed)
						d.rangeFixed = append(d.rangeFixed, f)
					}
					return nil
				}))
			})
		default:
			return p.skip()
		}
		return inKey(key, err)
	})
	if err != nil {
		return err
	}
	if len(typ) == 0 {
		return &fieldError{off: start, path: "type", err: errors.New("missing")}
	}
	if string(typ) == "ECOSYSTEM" {
		d.fixed = append(d.fixed, d.rangeFixed...)
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
			return inIndex(i, err)
		}
		dst = append(dst, s)
		return nil
	})
	return dst, err
}

// severityOf reads the severity prefix of an AlmaLinux summary.
func severityOf(summary string) advisory.Severity {
	prefix, _, ok := strings.Cut(summary, ": ")
	if !ok {
		return advisory.SeverityNone
	}
	s, err := advisory.ParseSeverity(prefix)
	if err != nil {
		return advisory.SeverityNone
	}
	return s
}

// fixedErr reports a bad fixed version with its full path.
func fixedErr(e *entry, f *fixedEvent, err error) error {
	return &fieldError{
		off:  f.off,
		path: fmt.Sprintf("affected[%d].ranges[%d].events[%d].fixed", e.index, f.rng, f.event),
		err:  fmt.Errorf("bad version: %w", err),
	}
}

// build turns the parsed object into one Advisory per wanted ecosystem that
// has fixed packages, and queues them; on error it queues nothing.
//
// Every string of those advisories is cut from one string (the arena): a
// few allocations per advisory instead of one per name, version and URL.
func (d *Decoder) build(id, summary []byte, issued, updated time.Time) error {
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
	kept := 0
	for i := range d.entries {
		e := &d.entries[i]
		if slices.Contains(d.ecosystems, e.eco) {
			kept += e.hi - e.lo
			continue
		}
		// A bad version is an error whatever the filter.
		for k := range d.fixed[e.lo:e.hi] {
			f := &d.fixed[e.lo+k]
			if _, err := rpmver.ParseEVR(string(f.value)); err != nil {
				return fixedErr(e, f, err)
			}
		}
	}
	if kept == 0 {
		return nil
	}

	a := d.arena[:0]
	a = append(a, id...)
	a = append(a, summary...)
	for i := range d.refs {
		r := &d.refs[i]
		n := len(a)
		a = appendLower(a, r.typ)
		r.typLen = len(a) - n
		a = append(a, r.url...)
	}
	cves := d.cveViews[:0]
	for _, list := range [2][][]byte{d.related, d.aliases} {
		for _, c := range list {
			if bytes.HasPrefix(c, []byte("CVE-")) {
				cves = append(cves, c)
			}
		}
	}
	slices.SortFunc(cves, bytes.Compare)
	cves = slices.CompactFunc(cves, bytes.Equal)
	d.cveViews = cves
	for _, c := range cves {
		a = append(a, c...)
	}
	for i := range d.entries {
		e := &d.entries[i]
		if !slices.Contains(d.ecosystems, e.eco) {
			continue
		}
		e.at = len(a)
		a = append(a, e.name...)
		for _, f := range d.fixed[e.lo:e.hi] {
			a = append(a, f.value...)
		}
	}
	d.arena = a
	s := string(a)
	pos := 0
	take := func(n int) string {
		v := s[pos : pos+n]
		pos += n
		return v
	}

	var base advisory.Advisory
	base.ID = take(len(id))
	base.Title = take(len(summary))
	base.Type = advisory.TypeFromID(base.ID)
	base.Severity = severityOf(base.Title)
	base.Issued, base.Updated = issued, updated
	if len(d.refs) > 0 {
		base.References = make([]advisory.Reference, len(d.refs))
		for i, r := range d.refs {
			base.References[i] = advisory.Reference{Type: take(r.typLen), URL: take(len(r.url))}
		}
	}
	if len(cves) > 0 {
		base.CVEs = make([]string, len(cves))
		for i, c := range cves {
			base.CVEs[i] = take(len(c))
		}
	}

	all := make([]advisory.Package, 0, kept)
	first := len(d.pending)
	for _, eco := range d.ecosystems {
		lo := len(all)
		for i := range d.entries {
			e := &d.entries[i]
			if e.eco != eco {
				continue
			}
			at := e.at
			name := s[at : at+len(e.name)]
			at += len(e.name)
			for k := range d.fixed[e.lo:e.hi] {
				f := &d.fixed[e.lo+k]
				evr, err := rpmver.ParseEVR(s[at : at+len(f.value)])
				at += len(f.value)
				if err != nil {
					clear(d.pending[first:])
					d.pending = d.pending[:first]
					return fixedErr(e, f, err)
				}
				all = append(all, advisory.Package{Name: name, EVR: evr})
			}
		}
		all = all[:lo+len(d.dedupe(all[lo:]))]
		if len(all) == lo {
			continue
		}
		adv := new(advisory.Advisory)
		*adv = base
		if len(d.pending) > first {
			adv.CVEs = slices.Clone(base.CVEs)
			adv.References = slices.Clone(base.References)
		}
		adv.Ecosystem = eco
		adv.Packages = all[lo:len(all):len(all)]
		d.pending = append(d.pending, adv)
	}
	return nil
}

// dedupe drops exact duplicates from pkgs in place, keeping the first of
// each in order, with a small open-addressing hash table reused across
// advisories (a kernel advisory names hundreds of packages; a map per
// advisory would cost more than the parsing).
func (d *Decoder) dedupe(pkgs []advisory.Package) []advisory.Package {
	if len(pkgs) < 2 {
		return pkgs
	}
	size := 1
	for size < 2*len(pkgs) {
		size <<= 1
	}
	table := slices.Grow(d.table[:0], size)[:size]
	clear(table)
	d.table = table
	out := pkgs[:0]
	for _, p := range pkgs {
		i := maphash.Comparable(d.seed, p) & uint64(size-1)
		for {
			at := table[i]
			if at == 0 {
				table[i] = int32(len(out)) + 1
				out = append(out, p)
				break
			}
			if out[at-1] == p {
				break // a duplicate
			}
			i = (i + 1) & uint64(size-1)
		}
	}
	return out
}

// appendLower appends b lower-cased, as strings.ToLower would.
func appendLower(dst, b []byte) []byte {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return append(dst, bytes.ToLower(b)...)
		}
	}
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
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
	defer d.Close()
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
