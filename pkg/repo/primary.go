package repo

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/compressed"
	"github.com/rpmfleet/rpmfleet/pkg/internal/xmlstream"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// Package is one package as primary.xml lists it: enough to find, download
// and check it.
type Package struct {
	Name string
	Arch string
	rpmver.EVR
	// Checksum is the digest of the package file (its pkgid).
	Checksum Checksum
	// Location is the package file's href, relative to the repository base
	// (or to LocationBase when set).
	Location     string
	LocationBase string
	// Size is the package file's size in bytes; InstalledSize what its
	// files take once installed. 0 when not given.
	Size          int64
	InstalledSize int64
	// SourceRPM is the source package's file name, "" for a source package.
	SourceRPM string
	// InstallOnly says the package provides installonlypkg(...) or
	// multiversion(kernel), which dnf's installonlypkgs name: it is
	// installed beside its older versions, not over them.
	InstallOnly bool
}

// installOnlyProvide reports whether a provide is one dnf's default
// installonlypkgs name.
func installOnlyProvide(name string) bool {
	return strings.HasPrefix(name, "installonlypkg(") || name == "multiversion(kernel)"
}

// NEVRA returns "name-epoch:version-release.arch", epoch always written
// (rpmver.NEVRA.String).
func (p *Package) NEVRA() string {
	return rpmver.NEVRA{Name: p.Name, EVR: p.EVR, Arch: p.Arch}.String()
}

// ErrNotPrimary is returned (wrapped) when the input's root element is not
// <metadata>.
var ErrNotPrimary = errors.New("repo: not a primary.xml")

// PrimaryDecoder reads packages from a primary.xml stream one at a time,
// never holding more than one package: a distribution's primary.xml is
// tens of MB. The input may be compressed (gzip, xz, zstd or bzip2, found
// by magic bytes). The root's packages="N" count is not trusted.
type PrimaryDecoder struct {
	src     io.Reader
	zr      io.ReadCloser
	xs      *xmlstream.Reader
	started bool
	done    bool
	err     error
}

// NewPrimaryDecoder returns a decoder reading from r. Close releases the
// decompressor; r itself is not closed.
func NewPrimaryDecoder(r io.Reader) *PrimaryDecoder {
	return &PrimaryDecoder{src: r}
}

// Close releases the decompressor.
func (d *PrimaryDecoder) Close() error {
	if d.zr != nil {
		return d.zr.Close()
	}
	return nil
}

// Next returns the next package, or io.EOF after the last one.
func (d *PrimaryDecoder) Next() (*Package, error) {
	if d.err != nil {
		return nil, d.err
	}
	p, err := d.next()
	if err != nil {
		d.err = err
	}
	return p, err
}

func (d *PrimaryDecoder) next() (*Package, error) {
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
			return nil, d.eofError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local == "package" {
				return d.pkg(t)
			}
			if err := d.skip(); err != nil {
				return nil, err
			}
		case xml.EndElement:
			// </metadata>; read on to the end so a compressed stream's
			// trailer is checked.
			for {
				tok, err := d.token()
				if err == io.EOF {
					d.done = true
					return nil, io.EOF
				}
				if err != nil {
					return nil, err
				}
				if se, ok := tok.(xml.StartElement); ok {
					return nil, d.errorf("element <%s> after </metadata>", se.Name.Local)
				}
			}
		}
	}
}

func (d *PrimaryDecoder) start() error {
	d.started = true
	zr, _, err := compressed.NewReader(d.src)
	if err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	d.zr = zr
	d.xs = xmlstream.New(zr, "primary")
	for {
		tok, err := d.token()
		if err == io.EOF {
			return fmt.Errorf("%w: no root element", ErrNotPrimary)
		}
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "metadata" {
				return fmt.Errorf("%w: line %d: root element is <%s>, want <metadata>", ErrNotPrimary, d.line(), se.Name.Local)
			}
			return nil
		}
	}
}

// The decoder reads tokens through xmlstream; these name what it uses.
func (d *PrimaryDecoder) token() (xml.Token, error) { return d.xs.Token() }
func (d *PrimaryDecoder) skip() error               { return d.xs.Skip() }
func (d *PrimaryDecoder) readText() (string, error) { return d.xs.Text() }
func (d *PrimaryDecoder) eofError(err error) error  { return d.xs.EOFError(err) }
func (d *PrimaryDecoder) line() int                 { return d.xs.Line() }
func (d *PrimaryDecoder) errorf(format string, args ...any) error {
	return d.xs.Errorf(format, args...)
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return strings.TrimSpace(a.Value)
		}
	}
	return ""
}

func baseAttr(se xml.StartElement) string {
	for _, a := range se.Attr {
		if a.Name.Local == "base" && (a.Name.Space == "xml" || a.Name.Space == "http://www.w3.org/XML/1998/namespace") {
			return strings.TrimSpace(a.Value)
		}
	}
	return ""
}

func (d *PrimaryDecoder) pkg(se xml.StartElement) (*Package, error) {
	startLine := d.line()
	p := &Package{}
	for {
		tok, err := d.token()
		if err != nil {
			return nil, d.eofError(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return p, d.check(p, startLine)
		case xml.StartElement:
			if err := d.child(p, t); err != nil {
				return nil, err
			}
		}
	}
}

func (d *PrimaryDecoder) child(p *Package, se xml.StartElement) error {
	var err error
	switch se.Name.Local {
	case "name":
		p.Name, err = d.readText()
	case "arch":
		p.Arch, err = d.readText()
	case "version":
		p.EVR = rpmver.EVR{Epoch: attr(se, "epoch"), Version: attr(se, "ver"), Release: attr(se, "rel")}
		err = d.skip()
	case "checksum":
		typ := strings.ToLower(attr(se, "type"))
		var v string
		if v, err = d.readText(); err != nil {
			return err
		}
		if p.Checksum, err = parseChecksum(&xmlChecksum{Type: typ, Value: v}); err != nil {
			return d.errorf("package %q: <checksum>: %v", p.Name, err)
		}
	case "size":
		for _, f := range []struct {
			name string
			to   *int64
		}{{"package", &p.Size}, {"installed", &p.InstalledSize}} {
			if s := attr(se, f.name); s != "" {
				if *f.to, err = strconv.ParseInt(s, 10, 64); err != nil || *f.to < 0 {
					return d.errorf("package %q: <size %s=%q> is not a size", p.Name, f.name, s)
				}
			}
		}
		err = d.skip()
	case "location":
		p.Location = attr(se, "href")
		p.LocationBase = baseAttr(se)
		err = d.skip()
	case "format":
		err = d.format(p)
	default:
		err = d.skip()
	}
	return err
}

// format reads <rpm:sourcerpm> and whether <rpm:provides> names an
// install-only provide out of <format>, and skips the rest (requires,
// files), which is most of primary.xml.
func (d *PrimaryDecoder) format(p *Package) error {
	for {
		tok, err := d.token()
		if err != nil {
			return d.eofError(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			switch t.Name.Local {
			case "sourcerpm":
				p.SourceRPM, err = d.readText()
			case "provides":
				err = d.provides(p)
			default:
				err = d.skip()
			}
			if err != nil {
				return err
			}
		}
	}
}

// provides reads <rpm:provides>' entries for an install-only provide.
func (d *PrimaryDecoder) provides(p *Package) error {
	for {
		tok, err := d.token()
		if err != nil {
			return d.eofError(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if t.Name.Local == "entry" && installOnlyProvide(attr(t, "name")) {
				p.InstallOnly = true
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	}
}

func (d *PrimaryDecoder) check(p *Package, line int) error {
	missing := ""
	switch {
	case p.Name == "":
		return fmt.Errorf("primary: line %d: package without <name>", line)
	case p.Arch == "":
		missing = "<arch>"
	case p.Version == "":
		missing = "<version ver>"
	case p.Checksum.Value == "":
		missing = "<checksum>"
	case p.Location == "":
		missing = "<location href>"
	}
	if missing != "" {
		return fmt.Errorf("primary: line %d: package %q: missing %s", line, p.Name, missing)
	}
	if p.Epoch != "" {
		if _, err := strconv.ParseUint(p.Epoch, 10, 32); err != nil {
			return fmt.Errorf("primary: line %d: package %q: epoch %q is not a number", line, p.Name, p.Epoch)
		}
	}
	return nil
}
