package repo

import (
	"bytes"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// ErrMetalinkMismatch is returned (wrapped) when a mirror's repomd.xml is
// not one the metalink vouches for: a tampered, stale or truncated copy.
var ErrMetalinkMismatch = errors.New("repo: repomd.xml does not match the metalink")

// Metalink is what a metalink document (version 3.0, as MirrorManager
// serves it at mirrors.fedoraproject.org/metalink?repo=...) says about a
// repository's repodata/repomd.xml: its size and digests, and the mirrors
// that serve it. It is the trust anchor for repomd.xml when a .repo file
// names a metalink: a mirror's repomd.xml is used only if it matches.
type Metalink struct {
	// Versions are the copies of repomd.xml the metalink accepts: the
	// current one first, then MirrorManager's <mm0:alternates> (the
	// recent ones mirrors that lag behind may still serve). Each has at
	// least one hash of an accepted type.
	Versions []MetalinkVersion
	// URLs are the <resources> URLs, highest preference first (document
	// order among equals), every protocol included.
	URLs []MetalinkURL
}

// MetalinkVersion is one repomd.xml a metalink accepts.
type MetalinkVersion struct {
	// Timestamp is the repomd.xml's <mm0:timestamp>; 0 when not given.
	Timestamp int64
	// Size is in bytes; 0 when not given.
	Size int64
	// Hashes are the digests of accepted types (ChecksumType); md5 and
	// unknown types are left out.
	Hashes []Checksum
}

// MetalinkURL is one <url> of a metalink's <resources>.
type MetalinkURL struct {
	URL        string
	Protocol   string
	Preference int
}

type xmlMetalinkHash struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

type xmlMetalinkVersion struct {
	Timestamp string            `xml:"timestamp"`
	Size      string            `xml:"size"`
	Hashes    []xmlMetalinkHash `xml:"verification>hash"`
}

type xmlMetalinkFile struct {
	Name string `xml:"name,attr"`
	xmlMetalinkVersion
	Alternates []xmlMetalinkVersion `xml:"alternates>alternate"`
	URLs       []struct {
		Protocol   string `xml:"protocol,attr"`
		Preference string `xml:"preference,attr"`
		URL        string `xml:",chardata"`
	} `xml:"resources>url"`
}

// ParseMetalink reads a metalink document and returns its entry for
// repomd.xml. Input larger than 1 MiB, a root other than <metalink>, no
// <file name="repomd.xml">, a malformed size or digest, or no digest of an
// accepted type (ChecksumType: a metalink with md5 alone is refused) is an
// error wrapping ErrMirrorList that says which.
func ParseMetalink(r io.Reader) (*Metalink, error) {
	lr := &io.LimitedReader{R: r, N: maxMirrorListSize + 1}
	dec := xml.NewDecoder(lr)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: metalink: %s", ErrMirrorList, fmt.Sprintf(format, args...))
	}
	xmlErr := func(err error) error {
		if lr.N <= 0 {
			return fail("larger than %d bytes", maxMirrorListSize)
		}
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			return fail("line %d: %s", se.Line, se.Msg)
		}
		line, _ := dec.InputPos()
		return fail("line %d: %v", line, err)
	}
	var file *xmlMetalinkFile
	depth := 0
	root := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, xmlErr(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case !root:
				if t.Name.Local != "metalink" {
					line, _ := dec.InputPos()
					return nil, fail("line %d: root element is <%s>, want <metalink>", line, t.Name.Local)
				}
				root = true
			case depth == 3 && t.Name.Local == "file" && file == nil && attr(t, "name") == "repomd.xml":
				var f xmlMetalinkFile
				if err := dec.DecodeElement(&f, &t); err != nil {
					return nil, xmlErr(err)
				}
				depth--
				file = &f
			case depth == 2 && t.Name.Local == "files":
			default:
				if err := dec.Skip(); err != nil {
					return nil, xmlErr(err)
				}
				depth--
			}
		case xml.EndElement:
			depth--
		}
	}
	if !root {
		return nil, fail("no root element")
	}
	if file == nil {
		return nil, fail(`no <file name="repomd.xml">`)
	}
	m := &Metalink{}
	var refused []string
	for i, xv := range append([]xmlMetalinkVersion{file.xmlMetalinkVersion}, file.Alternates...) {
		what := "repomd.xml"
		if i > 0 {
			what = fmt.Sprintf("alternate %d", i)
		}
		v := MetalinkVersion{}
		if s := strings.TrimSpace(xv.Size); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 || n > maxRepomdSize {
				return nil, fail("%s: <size> %q is not a size up to %d", what, s, maxRepomdSize)
			}
			v.Size = n
		}
		if s := strings.TrimSpace(xv.Timestamp); s != "" {
			ts, err := strconv.ParseInt(s, 10, 64)
			if err != nil || ts < 0 {
				return nil, fail("%s: <timestamp> %q is not a unix time", what, s)
			}
			v.Timestamp = ts
		}
		for _, h := range xv.Hashes {
			if _, err := ChecksumType(h.Type); err != nil {
				refused = append(refused, strings.TrimSpace(h.Type))
				continue
			}
			c, err := NewChecksum(h.Type, h.Value)
			if err != nil {
				return nil, fail("%s: <hash>: %v", what, err)
			}
			v.Hashes = append(v.Hashes, c)
		}
		if len(v.Hashes) > 0 {
			m.Versions = append(m.Versions, v)
		}
	}
	if len(m.Versions) == 0 {
		if len(refused) == 0 {
			return nil, fail("no hash of repomd.xml")
		}
		return nil, fail("no usable hash of repomd.xml (only %s, refused)", strings.Join(refused, ", "))
	}
	for _, u := range file.URLs {
		p, err := strconv.Atoi(strings.TrimSpace(u.Preference))
		if err != nil || p < 0 || p > 100 {
			p = 0 // as librepo: a bad preference only loses its rank
		}
		m.URLs = append(m.URLs, MetalinkURL{URL: strings.TrimSpace(u.URL), Protocol: strings.TrimSpace(u.Protocol), Preference: p})
	}
	sort.SliceStable(m.URLs, func(i, j int) bool { return m.URLs[i].Preference > m.URLs[j].Preference })
	return m, nil
}

// Bases returns the repository base URLs of the metalink's http and https
// mirrors, by preference: each URL that ends in repodata/repomd.xml, with
// that stripped. Other protocols (ftp, rsync) are left out.
func (m *Metalink) Bases() []string {
	var out []string
	for _, u := range m.URLs {
		pu, err := url.Parse(u.URL)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.RawQuery != "" || pu.Fragment != "" {
			continue
		}
		base, ok := strings.CutSuffix(u.URL, "repodata/repomd.xml")
		if !ok || !strings.HasSuffix(base, "/") {
			continue
		}
		out = append(out, base)
	}
	return out
}

// Verify checks a repomd.xml's exact bytes against the metalink: it must
// match one version, its size (when given) and every hash of it. The
// error wraps ErrMetalinkMismatch and says what the file has.
func (m *Metalink) Verify(raw []byte) error {
	for _, v := range m.Versions {
		if v.matches(raw) {
			return nil
		}
	}
	h, _ := newHash(m.Versions[0].Hashes[0].Type)
	h.Write(raw)
	want := make([]string, 0, len(m.Versions))
	for _, v := range m.Versions {
		want = append(want, v.Hashes[0].String())
	}
	return fmt.Errorf("%w: the file has %d bytes and %s:%s; the metalink lists %s", ErrMetalinkMismatch,
		len(raw), m.Versions[0].Hashes[0].Type, hex.EncodeToString(h.Sum(nil)), strings.Join(want, " or "))
}

func (v *MetalinkVersion) matches(raw []byte) bool {
	if v.Size > 0 && int64(len(raw)) != v.Size {
		return false
	}
	for _, c := range v.Hashes {
		h, err := newHash(c.Type)
		if err != nil {
			return false
		}
		h.Write(raw)
		want, err := hex.DecodeString(c.Value)
		if err != nil || !bytes.Equal(h.Sum(nil), want) {
			return false
		}
	}
	return true
}
