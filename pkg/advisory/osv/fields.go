package osv

// Reading one object's fields (id, summary, dates, related, aliases,
// references, affected and their ranges) into the Decoder's scratch space.

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// parse reads the object in d.p and queues its advisories. It has no effect
// (but on scratch space) unless it succeeds.
func (d *Decoder) parse() error {
	p := &d.p
	var id, summary, details []byte
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
		case "details":
			if !d.opts.Descriptions {
				return p.skip()
			}
			// Unbounded but by MaxObjectSize: BoundDescription cuts it.
			switch p.next() {
			case '"':
				details, err = p.str()
			case 'n':
				err = p.literal("null")
			case 0:
				err = p.unexpected("string")
			default:
				err = p.typeErr("string")
			}
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
				if i == MaxItems {
					return tooMany(p.pos)
				}
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
				if i == MaxItems {
					return tooMany(p.pos)
				}
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
	if err := d.build(id, summary, details, issued, updated); err != nil {
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
					case v != nil && len(d.fixed)+len(d.rangeFixed) >= MaxItems:
						return &fieldError{off: off, err: fmt.Errorf("more than %d fixed versions in the object", MaxItems)}
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
		if i == MaxItems {
			return tooMany(p.pos)
		}
		s, err := p.stringValue()
		if err != nil {
			return inIndex(i, err)
		}
		dst = append(dst, s)
		return nil
	})
	return dst, err
}

// tooMany reports a kept list longer than MaxItems, at the element past
// the limit.
func tooMany(off int) error {
	return &fieldError{off: off, err: fmt.Errorf("more than %d elements", MaxItems)}
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
