// Package updateinfo reads and writes updateinfo.xml, the errata metadata that
// yum/dnf repositories ship next to primary.xml, as advisory.Advisory values.
//
// Reading is streaming: a Decoder walks the XML token by token and holds one
// <update> at a time, so memory stays flat whatever the size of the file (a
// whole distribution's errata run to tens of megabytes). The input may be
// plain or compressed with gzip, xz, zstd or bzip2; the format is found by
// its magic bytes, never by a file name.
//
// The mapping follows what dnf (through libsolv) reads, with the formats seen
// in real repositories:
//
//   - update/@type is the advisory type; when it is missing the type is
//     derived from the id (advisory.TypeFromID).
//   - <issued date> and <updated date> may be "2021-07-22 18:25:24",
//     "2023-02-17 20:41", "2007-01-16 09:44:03.50", ISO 8601
//     "2025-06-11T19:52:52Z", unix seconds "1287746075", or missing; all are
//     read as UTC.
//   - <reference type="cve"> ids become the CVE list (sorted, deduplicated);
//     every reference is kept in References.
//   - <reboot_suggested> counts when its text is True, true or 1, at update
//     level or on any package. An empty <reboot_suggested/> does not count:
//     libsolv ignores it, and Fedora's EPEL 4 metadata writes it on nearly
//     every update, including ones that only add a Perl module.
//   - <collection><module name stream .../> marks every package of that
//     collection with its module stream.
//
// Errors name the line of the input and what was wrong, for example
// `updateinfo: line 42: package "foo": missing version`. A truncated or
// corrupt compressed stream is an error, never a silently short list.
//
// The input is untrusted (an upload, a mirror, a URL), and memory stays
// bounded whatever it holds: at most 2 GiB is decompressed (package
// compressed), and no text, tag or nesting is held past its limit, even
// while it is skipped: 1 MiB for a <description>, 64 KiB for any other
// element's text and for a tag, 64 levels of nesting, and 16 MiB for what
// one <update> keeps (MaxUpdateSize). An input over a limit is refused with
// ErrTooLong and the line, as in `updateinfo: line 12: <description>
// longer than 1 MiB`.
//
// The <description> is kept only when Decoder.KeepDescriptions asks for it
// (the server shows it; the agent never does), and then at most
// advisory.MaxDescription (16 KiB) of it: a longer one, up to the 1 MiB
// limit, is cut with a closing line saying how long it was, never refused,
// since real ones (18 KB in EPEL 4) pass 16 KiB.
package updateinfo

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
	"github.com/rpmfleet/rpmfleet/pkg/internal/xmlstream"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// ErrNotUpdateinfo is returned (wrapped) when the input's root element is not
// <updates>.
var ErrNotUpdateinfo = errors.New("updateinfo: not an updateinfo.xml")

// MaxUpdateSize bounds what the decoder keeps of one <update>: its
// strings and, for each package, reference and CVE, the size of its record.
// A kernel advisory, among the largest, keeps a few hundred KB.
const MaxUpdateSize = 16 << 20

// ErrTooLong is returned (wrapped) when an element's text, a tag or the
// nesting of elements passes its limit (see the package doc).
var ErrTooLong = xmlstream.ErrTooLong

// Decoder reads advisories from an updateinfo.xml stream one at a time.
type Decoder struct {
	src     io.Reader
	zr      io.ReadCloser
	xs      *xmlstream.Reader
	started bool
	done    bool
	err     error // sticky: once failed, Next keeps failing
	kept    int   // bytes the current <update> keeps, held to MaxUpdateSize
	descs   bool  // keep <description> (KeepDescriptions)
}

// NewDecoder returns a decoder reading from r, which may be compressed. It
// does not read until the first call to Next. Close releases the
// decompressor; r itself is not closed.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{src: r}
}

// KeepDescriptions makes the decoder keep each update's <description> in
// Advisory.Description, bounded by advisory.BoundDescription; call it
// before the first Next. Without it a <description> is checked against its
// limit and passed over without being kept, which is what a device that
// only matches advisories wants: the description is most of an update's
// text.
func (d *Decoder) KeepDescriptions() { d.descs = true }

// Close releases the decompressor. It does not close the reader given to
// NewDecoder.
func (d *Decoder) Close() error {
	if d.zr != nil {
		return d.zr.Close()
	}
	return nil
}

// Next returns the next advisory, or io.EOF after the last one.
func (d *Decoder) Next() (*advisory.Advisory, error) {
	if d.err != nil {
		return nil, d.err
	}
	a, err := d.next()
	if err != nil {
		d.err = err
	}
	return a, err
}

func (d *Decoder) next() (*advisory.Advisory, error) {
	if d.done {
		return nil, io.EOF
	}
	if !d.started {
		if err := d.start(); err != nil {
			return nil, err
		}
	}
	for {
		tok, err := d.token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, d.errorf("unexpected end of input: missing </updates>")
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local == "update" {
				return d.update(t)
			}
			if err := d.skip(); err != nil {
				return nil, err
			}
		case xml.EndElement:
			// The only end element seen here is </updates>: token() has
			// checked that it matches.
			if err := d.finish(); err != nil {
				return nil, err
			}
			d.done = true
			return nil, io.EOF
		}
	}
}

// finish reads what follows </updates> to the end of the stream, so that a
// compressed stream's trailer (its checksum and length) is checked: a file
// cut in its last bytes is an error too.
func (d *Decoder) finish() error {
	for {
		tok, err := d.token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return d.errorf("element <%s> after </updates>", se.Name.Local)
		}
	}
}

// start opens the decompressor and reads up to the root element.
func (d *Decoder) start() error {
	d.started = true
	zr, _, err := compressed.NewReader(d.src)
	if err != nil {
		return fmt.Errorf("updateinfo: %w", err)
	}
	d.zr = zr
	d.xs = xmlstream.New(zr, "updateinfo")
	for {
		tok, err := d.token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: no root element", ErrNotUpdateinfo)
			}
			return err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "updates" {
				return fmt.Errorf("%w: line %d: root element is <%s>, want <updates>", ErrNotUpdateinfo, d.line(), se.Name.Local)
			}
			return nil
		}
	}
}

// The decoder reads tokens through xmlstream; these name what it uses.
func (d *Decoder) token() (xml.Token, error)               { return d.xs.Token() }
func (d *Decoder) skip() error                             { return d.xs.Skip() }
func (d *Decoder) readText() (string, error)               { return d.xs.Text() }
func (d *Decoder) eofError(err error) error                { return d.xs.EOFError(err) }
func (d *Decoder) line() int                               { return d.xs.Line() }
func (d *Decoder) errorf(format string, args ...any) error { return d.xs.Errorf(format, args...) }

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// update reads one <update> element whose start tag was just read.
func (d *Decoder) update(se xml.StartElement) (*advisory.Advisory, error) {
	startLine := d.line()
	a := &advisory.Advisory{Type: advisory.Type(strings.TrimSpace(attr(se, "type")))}
	d.kept = 0
	for {
		tok, err := d.token()
		if err != nil {
			return nil, d.eofError(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if a.ID == "" {
				return nil, fmt.Errorf("updateinfo: line %d: update without <id>", startLine)
			}
			if a.Type == "" {
				a.Type = advisory.TypeFromID(a.ID)
			}
			slices.Sort(a.CVEs)
			a.CVEs = slices.Compact(a.CVEs)
			return a, nil
		case xml.StartElement:
			if err := d.updateChild(a, t); err != nil {
				return nil, err
			}
		}
	}
}

func (d *Decoder) updateChild(a *advisory.Advisory, se xml.StartElement) error {
	var err error
	switch se.Name.Local {
	case "id":
		a.ID, err = d.readText()
	case "title":
		a.Title, err = d.readText()
	case "description":
		if !d.descs {
			return d.skip()
		}
		var s string
		if s, err = d.readText(); err != nil {
			return err
		}
		a.Description = advisory.BoundDescription(s)
		err = d.keep(a, len(a.Description))
	case "severity":
		var s string
		if s, err = d.readText(); err != nil {
			return err
		}
		if a.Severity, err = advisory.ParseSeverity(s); err != nil {
			return d.errorf("update %q: %v", a.ID, err)
		}
	case "issued", "updated":
		t, perr := parseDate(attr(se, "date"))
		if perr != nil {
			return d.errorf("update %q: <%s> %v", a.ID, se.Name.Local, perr)
		}
		if se.Name.Local == "issued" {
			a.Issued = t
		} else {
			a.Updated = t
		}
		err = d.skip()
	case "reboot_suggested":
		var s string
		if s, err = d.readText(); err == nil && truthy(s) {
			a.RebootSuggested = true
		}
	case "references":
		err = d.references(a)
	case "pkglist":
		err = d.pkglist(a)
	default:
		err = d.skip()
	}
	return err
}

// truthy reports whether a <reboot_suggested> text says yes, as libsolv
// reads it (first letter T or t, or 1).
func truthy(s string) bool {
	return s != "" && (s[0] == 'T' || s[0] == 't' || s[0] == '1')
}

func (d *Decoder) references(a *advisory.Advisory) error {
	for {
		tok, err := d.token()
		if err != nil {
			return d.eofError(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if t.Name.Local != "reference" {
				if err := d.skip(); err != nil {
					return err
				}
				continue
			}
			ref := advisory.Reference{
				Type:  attr(t, "type"),
				ID:    strings.TrimSpace(attr(t, "id")),
				URL:   attr(t, "href"),
				Title: attr(t, "title"),
			}
			// Fedora Core 6 puts the title in the element's text.
			text, err := d.readText()
			if err != nil {
				return err
			}
			if ref.Title == "" {
				ref.Title = text
			}
			a.References = append(a.References, ref)
			n := refSize + len(ref.Type) + len(ref.ID) + len(ref.URL) + len(ref.Title)
			if strings.EqualFold(ref.Type, "cve") && ref.ID != "" {
				a.CVEs = append(a.CVEs, ref.ID)
				n += stringSize
			}
			if err := d.keep(a, n); err != nil {
				return err
			}
		}
	}
}

func (d *Decoder) pkglist(a *advisory.Advisory) error {
	for {
		tok, err := d.token()
		if err != nil {
			return d.eofError(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if t.Name.Local == "collection" {
				err = d.collection(a)
			} else {
				err = d.skip()
			}
			if err != nil {
				return err
			}
		}
	}
}

// collection reads a <collection>. Its <module> may come before or after its
// packages; either way every package of the collection gets it.
func (d *Decoder) collection(a *advisory.Advisory) error {
	first := len(a.Packages)
	var mod *advisory.Module
	for {
		tok, err := d.token()
		if err != nil {
			return d.eofError(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if mod != nil {
				for i := first; i < len(a.Packages); i++ {
					a.Packages[i].Module = mod
				}
			}
			return nil
		case xml.StartElement:
			switch t.Name.Local {
			case "package":
				err = d.pkg(a, t)
			case "module":
				m := advisory.Module{Name: strings.TrimSpace(attr(t, "name")), Stream: strings.TrimSpace(attr(t, "stream"))}
				if m.Name == "" || m.Stream == "" {
					return d.errorf("update %q: <module> without name or stream", a.ID)
				}
				if mod != nil && *mod != m {
					return d.errorf("update %q: collection names two modules, %s and %s", a.ID, mod, m)
				}
				mod = &m
				err = d.skip()
			default:
				err = d.skip()
			}
			if err != nil {
				return err
			}
		}
	}
}

func (d *Decoder) pkg(a *advisory.Advisory, se xml.StartElement) error {
	p := advisory.Package{
		Name: strings.TrimSpace(attr(se, "name")),
		Arch: strings.TrimSpace(attr(se, "arch")),
		EVR: rpmver.EVR{
			Epoch:   strings.TrimSpace(attr(se, "epoch")),
			Version: strings.TrimSpace(attr(se, "version")),
			Release: strings.TrimSpace(attr(se, "release")),
		},
	}
	switch {
	case p.Name == "":
		return d.errorf("update %q: package without name", a.ID)
	case p.Version == "":
		return d.errorf("update %q: package %q: missing version", a.ID, p.Name)
	case p.Epoch != "" && !isDigits(p.Epoch):
		return d.errorf("update %q: package %q: epoch %q is not a number", a.ID, p.Name, p.Epoch)
	}
	for {
		tok, err := d.token()
		if err != nil {
			return d.eofError(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			a.Packages = append(a.Packages, p)
			return d.keep(a, packageSize+len(p.Name)+len(p.Arch)+len(p.Epoch)+len(p.Version)+len(p.Release)+len(p.Filename)+len(p.SHA256))
		case xml.StartElement:
			switch t.Name.Local {
			case "filename":
				p.Filename, err = d.readText()
			case "sum":
				var sum string
				sum, err = d.readText()
				if err == nil && strings.EqualFold(attr(t, "type"), "sha256") {
					if !isHex(sum, 64) {
						return d.errorf("update %q: package %q: sha256 sum %q is not 64 hex digits", a.ID, p.Name, sum)
					}
					p.SHA256 = strings.ToLower(sum)
				}
			case "reboot_suggested":
				var s string
				if s, err = d.readText(); err == nil && truthy(s) {
					a.RebootSuggested = true
				}
			default:
				err = d.skip()
			}
			if err != nil {
				return err
			}
		}
	}
}

// The sizes of the records an update keeps, on a 64-bit machine.
const (
	stringSize  = 16
	refSize     = 4 * stringSize
	packageSize = 7*stringSize + 8 // six strings and the module pointer, rounded up
)

// keep counts n more bytes kept for the update a, and refuses an update
// that keeps more than MaxUpdateSize. Packages and references are counted
// as they are added; the id and title are single texts, bounded by their
// element's limit.
func (d *Decoder) keep(a *advisory.Advisory, n int) error {
	d.kept += n
	if d.kept > MaxUpdateSize {
		return d.xs.LimitErrorf("update %q keeps more than %d MiB of packages and references", a.ID, MaxUpdateSize>>20)
	}
	return nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// dateLayouts are the date forms seen in real updateinfo.xml files. A
// fractional second after the seconds ("09:44:03.50", Fedora Core 6) is
// accepted by time.Parse without being in the layout.
var dateLayouts = []string{
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02",
}

// parseDate reads an issued or updated date as UTC. "" is the zero time.
func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if isDigits(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > 1<<40 {
			return time.Time{}, fmt.Errorf("date %q: unix time out of range", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q: unrecognized format", s)
}

// ReadAll reads every advisory from r.
func ReadAll(r io.Reader) ([]*advisory.Advisory, error) {
	d := NewDecoder(r)
	defer d.Close()
	var out []*advisory.Advisory
	for {
		a, err := d.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
}

// ParseFile reads every advisory from the updateinfo.xml file at path.
// Errors name the file.
func ParseFile(path string) ([]*advisory.Advisory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	advs, err := ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return advs, nil
}
