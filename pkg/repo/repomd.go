package repo

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Repomd is a repository's repodata/repomd.xml: the index of its metadata
// files.
type Repomd struct {
	// Revision is free-form: "8.4", or a unix time.
	Revision string
	Data     []Data
	// raw and sig are the bytes Metadata read and checked (sig nil when
	// unsigned), for Keep; nil for a parsed copy.
	raw, sig []byte
}

// Data is one metadata file listed in repomd.xml.
type Data struct {
	// Type is the metadata type: "primary", "filelists", "other",
	// "updateinfo", "modules", "group", "primary_db", ...
	Type string
	// Location is the href of the file, relative to the repository base
	// ("repodata/<checksum>-primary.xml.gz").
	Location string
	// LocationBase is the location's xml:base, when it has one.
	LocationBase string
	// Checksum is the digest of the file as stored (compressed).
	Checksum Checksum
	// OpenChecksum is the digest of the decompressed content; zero when
	// repomd.xml does not give it.
	OpenChecksum Checksum
	// Size and OpenSize are in bytes, 0 when not given.
	Size, OpenSize int64
	// Timestamp is zero when not given.
	Timestamp       time.Time
	DatabaseVersion int
}

// Checksum is a digest as repository metadata writes it.
type Checksum struct {
	// Type is the algorithm: "sha256", "sha512", "sha1" (written "sha" by
	// old createrepo), ... always lower case here.
	Type string
	// Value is the digest in lower-case hex.
	Value string
}

// String returns "type:value".
func (c Checksum) String() string { return c.Type + ":" + c.Value }

// Get returns the data of the given type.
func (m *Repomd) Get(typ string) (Data, bool) {
	for _, d := range m.Data {
		if d.Type == typ {
			return d, true
		}
	}
	return Data{}, false
}

// ErrNotRepomd is returned (wrapped) when the input's root element is not
// <repomd>.
var ErrNotRepomd = errors.New("repo: not a repomd.xml")

// maxRepomdSize bounds what ParseRepomd reads: real ones are a few KB.
const maxRepomdSize = 8 << 20

type xmlChecksum struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

type xmlData struct {
	Type     string `xml:"type,attr"`
	Location struct {
		Href string `xml:"href,attr"`
		Base string `xml:"http://www.w3.org/XML/1998/namespace base,attr"`
	} `xml:"location"`
	Checksum        *xmlChecksum `xml:"checksum"`
	OpenChecksum    *xmlChecksum `xml:"open-checksum"`
	Size            string       `xml:"size"`
	OpenSize        string       `xml:"open-size"`
	Timestamp       string       `xml:"timestamp"`
	DatabaseVersion string       `xml:"database_version"`
}

// ParseRepomd reads a repomd.xml. Errors name the line and what was wrong:
// every <data> needs a type, a location and a checksum of a known type.
func ParseRepomd(r io.Reader) (*Repomd, error) {
	lr := &io.LimitedReader{R: r, N: maxRepomdSize + 1}
	x := xml.NewDecoder(lr)
	line := func() int { l, _ := x.InputPos(); return l }
	// xmlErr says what went wrong reading the XML, with its line.
	xmlErr := func(err error) error {
		if lr.N <= 0 {
			return fmt.Errorf("repo: repomd.xml larger than %d bytes", maxRepomdSize)
		}
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("repo: repomd.xml: line %d: %s", se.Line, se.Msg)
		}
		return fmt.Errorf("repo: repomd.xml: line %d: %w", line(), err)
	}
	m := &Repomd{}
	root := false
	for {
		tok, err := x.Token()
		if err == io.EOF {
			if !root {
				return nil, fmt.Errorf("%w: no root element", ErrNotRepomd)
			}
			return m, nil
		}
		if err != nil {
			return nil, xmlErr(err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if !root {
			if se.Name.Local != "repomd" {
				return nil, fmt.Errorf("%w: line %d: root element is <%s>, want <repomd>", ErrNotRepomd, line(), se.Name.Local)
			}
			root = true
			continue
		}
		start := line()
		switch se.Name.Local {
		case "revision":
			if err := x.DecodeElement(&m.Revision, &se); err != nil {
				return nil, xmlErr(err)
			}
			m.Revision = strings.TrimSpace(m.Revision)
		case "data":
			var xd xmlData
			if err := x.DecodeElement(&xd, &se); err != nil {
				return nil, xmlErr(err)
			}
			d, err := xd.data()
			if err != nil {
				return nil, fmt.Errorf("repo: repomd.xml: line %d: %w", start, err)
			}
			if _, dup := m.Get(d.Type); dup {
				return nil, fmt.Errorf("repo: repomd.xml: line %d: data %q listed twice", start, d.Type)
			}
			m.Data = append(m.Data, d)
		default:
			if err := x.Skip(); err != nil {
				return nil, xmlErr(err)
			}
		}
	}
}

func (xd *xmlData) data() (Data, error) {
	d := Data{
		Type:         strings.TrimSpace(xd.Type),
		Location:     strings.TrimSpace(xd.Location.Href),
		LocationBase: strings.TrimSpace(xd.Location.Base),
	}
	if d.Type == "" {
		return d, errors.New("<data> without type")
	}
	if d.Location == "" {
		return d, fmt.Errorf("data %q: missing <location href>", d.Type)
	}
	if xd.Checksum == nil {
		return d, fmt.Errorf("data %q: missing <checksum>", d.Type)
	}
	var err error
	if d.Checksum, err = parseChecksum(xd.Checksum); err != nil {
		return d, fmt.Errorf("data %q: <checksum>: %w", d.Type, err)
	}
	if xd.OpenChecksum != nil {
		if d.OpenChecksum, err = parseChecksum(xd.OpenChecksum); err != nil {
			return d, fmt.Errorf("data %q: <open-checksum>: %w", d.Type, err)
		}
	}
	for _, f := range []struct {
		name string
		s    string
		to   *int64
	}{{"size", xd.Size, &d.Size}, {"open-size", xd.OpenSize, &d.OpenSize}} {
		if s := strings.TrimSpace(f.s); s != "" {
			if *f.to, err = strconv.ParseInt(s, 10, 64); err != nil || *f.to < 0 {
				return d, fmt.Errorf("data %q: <%s> %q is not a size", d.Type, f.name, s)
			}
		}
	}
	if s := strings.TrimSpace(xd.Timestamp); s != "" {
		// Old createrepo wrote fractional seconds.
		ts, err := strconv.ParseFloat(s, 64)
		if err != nil || ts < 0 || ts > 1<<40 || math.IsNaN(ts) {
			return d, fmt.Errorf("data %q: <timestamp> %q is not a unix time", d.Type, s)
		}
		sec, frac := math.Modf(ts)
		d.Timestamp = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	}
	if s := strings.TrimSpace(xd.DatabaseVersion); s != "" {
		if d.DatabaseVersion, err = strconv.Atoi(s); err != nil {
			return d, fmt.Errorf("data %q: <database_version> %q is not a number", d.Type, s)
		}
	}
	return d, nil
}
