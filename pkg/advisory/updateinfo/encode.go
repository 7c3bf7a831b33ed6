package updateinfo

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// The XML shapes Encode writes, in the order dnf's own tools write them.
type xmlUpdate struct {
	XMLName  xml.Name       `xml:"update"`
	From     string         `xml:"from,attr"`
	Status   string         `xml:"status,attr"`
	Type     string         `xml:"type,attr"`
	Version  string         `xml:"version,attr"`
	ID       string         `xml:"id"`
	Title    string         `xml:"title"`
	Issued   *xmlDate       `xml:"issued"`
	Updated  *xmlDate       `xml:"updated"`
	Severity string         `xml:"severity,omitempty"`
	Reboot   string         `xml:"reboot_suggested,omitempty"`
	Refs     []xmlReference `xml:"references>reference"`
	// Description is required by some consumers (yum's updateinfo parser)
	// even when empty.
	Description string          `xml:"description"`
	Collections []xmlCollection `xml:"pkglist>collection"`
}

type xmlDate struct {
	Date string `xml:"date,attr"`
}

type xmlReference struct {
	Href  string `xml:"href,attr"`
	ID    string `xml:"id,attr,omitempty"`
	Type  string `xml:"type,attr"`
	Title string `xml:"title,attr,omitempty"`
}

type xmlCollection struct {
	Short    string       `xml:"short,attr"`
	Name     string       `xml:"name"`
	Module   *xmlModule   `xml:"module"`
	Packages []xmlPackage `xml:"package"`
}

type xmlModule struct {
	Name    string `xml:"name,attr"`
	Stream  string `xml:"stream,attr"`
	Version string `xml:"version,attr"`
	Context string `xml:"context,attr"`
	Arch    string `xml:"arch,attr"`
}

type xmlPackage struct {
	Name     string  `xml:"name,attr"`
	Epoch    string  `xml:"epoch,attr,omitempty"`
	Version  string  `xml:"version,attr"`
	Release  string  `xml:"release,attr,omitempty"`
	Arch     string  `xml:"arch,attr,omitempty"`
	Filename string  `xml:"filename,omitempty"`
	Sum      *xmlSum `xml:"sum"`
	Reboot   string  `xml:"reboot_suggested,omitempty"`
}

type xmlSum struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

// Encode writes advisories as an updateinfo.xml that dnf 4 reads (and that
// Decoder reads back to the same advisories). Packages are grouped in one
// <collection> per module stream, with a <module> element when Module is
// set, plus one collection for packages outside any module. Dates are
// written "2006-01-02 15:04:05" in UTC, with fractional seconds only when
// present. Reboot suggested is written on every package, where libsolv looks
// for it, and on the update itself.
//
// To write advisories as they come, without holding them all, use a Writer.
func Encode(w io.Writer, advs []*advisory.Advisory) error {
	ew := NewWriter(w)
	for _, a := range advs {
		if err := ew.Write(a); err != nil {
			return err
		}
	}
	return ew.Close()
}

// Writer writes an updateinfo.xml one advisory at a time.
type Writer struct {
	bw      *bufio.Writer
	enc     *xml.Encoder
	started bool
	err     error
}

// NewWriter returns a Writer writing to w. Close writes the end of the
// document; it does not close w.
func NewWriter(w io.Writer) *Writer {
	bw := bufio.NewWriter(w)
	enc := xml.NewEncoder(bw)
	enc.Indent("  ", "  ")
	return &Writer{bw: bw, enc: enc}
}

func (w *Writer) header() {
	if !w.started {
		w.started = true
		_, w.err = w.bw.WriteString(xml.Header + "<updates>")
	}
}

// Write writes one advisory.
func (w *Writer) Write(a *advisory.Advisory) error {
	w.header()
	if w.err != nil {
		return w.err
	}
	if a.ID == "" {
		return fmt.Errorf("updateinfo: encode: advisory without id")
	}
	u := xmlUpdate{
		From:    "rpmfleet",
		Status:  "final",
		Type:    string(a.Type),
		Version: "2",
		ID:      a.ID,
		Title:   a.Title,
		Issued:  date(a.Issued),
		Updated: date(a.Updated),
		// Empty unless the advisory was read with its description.
		Description: a.Description,
	}
	if a.Severity != advisory.SeverityNone {
		u.Severity = a.Severity.String()
	}
	reboot := ""
	if a.RebootSuggested {
		reboot = "True"
		u.Reboot = reboot
	}
	cited := map[string]bool{}
	for _, r := range a.References {
		u.Refs = append(u.Refs, xmlReference{Href: r.URL, ID: r.ID, Type: r.Type, Title: r.Title})
		if r.Type == "cve" {
			cited[r.ID] = true
		}
	}
	// updateinfo.xml carries CVEs only as references: one the model lists
	// without a reference (as OSV gives them) gets one, or it would be lost.
	for _, c := range a.CVEs {
		if !cited[c] {
			u.Refs = append(u.Refs, xmlReference{Href: "https://www.cve.org/CVERecord?id=" + c, ID: c, Type: "cve", Title: c})
			cited[c] = true
		}
	}
	// One collection per module stream, in order of first appearance.
	index := map[string]int{}
	for _, p := range a.Packages {
		key := ""
		if p.Module != nil {
			key = p.Module.String()
		}
		i, ok := index[key]
		if !ok {
			i = len(u.Collections)
			index[key] = i
			c := xmlCollection{Short: "rpmfleet", Name: "rpmfleet"}
			if p.Module != nil {
				c.Short = "rpmfleet__" + p.Module.Name
				c.Name = c.Short
				// dnf needs all five attributes; the version and context
				// of the build are not in the model, so neutral values
				// stand in.
				c.Module = &xmlModule{Name: p.Module.Name, Stream: p.Module.Stream, Version: "0", Context: "00000000", Arch: moduleArch(a, p.Module)}
			}
			u.Collections = append(u.Collections, c)
		}
		xp := xmlPackage{Name: p.Name, Epoch: p.Epoch, Version: p.Version, Release: p.Release, Arch: p.Arch, Filename: p.Filename, Reboot: reboot}
		if p.SHA256 != "" {
			xp.Sum = &xmlSum{Type: "sha256", Value: p.SHA256}
		}
		u.Collections[i].Packages = append(u.Collections[i].Packages, xp)
	}
	if err := w.enc.Encode(u); err != nil {
		w.err = fmt.Errorf("updateinfo: encode %s: %w", a.ID, err)
	}
	return w.err
}

// moduleArch is the arch of the module's first non-noarch package, as
// module builds are per arch, or "noarch".
func moduleArch(a *advisory.Advisory, m *advisory.Module) string {
	for _, p := range a.Packages {
		if p.Module != nil && *p.Module == *m && p.Arch != "" && p.Arch != "noarch" && p.Arch != "src" {
			return p.Arch
		}
	}
	return "noarch"
}

// Close writes the end of the document and flushes it.
func (w *Writer) Close() error {
	w.header()
	if w.err != nil {
		return w.err
	}
	if err := w.enc.Flush(); err != nil {
		return fmt.Errorf("updateinfo: encode: %w", err)
	}
	if _, err := w.bw.WriteString("\n</updates>\n"); err != nil {
		return fmt.Errorf("updateinfo: encode: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("updateinfo: encode: %w", err)
	}
	return nil
}

func date(t time.Time) *xmlDate {
	if t.IsZero() {
		return nil
	}
	return &xmlDate{Date: t.UTC().Format("2006-01-02 15:04:05.999999999")}
}
