// Package advisory is rpmfleet's one normalized model of a distribution
// advisory (an erratum such as ALSA-2023:3722), whatever format it arrived in.
//
// The parsers live in sub-packages: updateinfo reads the updateinfo.xml that
// yum/dnf repositories ship, osv reads OSV JSON such as the AlmaLinux OSV
// database. Both produce Advisory values; everything downstream (matching on
// the device, applicability on the server, plans) speaks only this model.
package advisory

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// Type is the kind of an advisory, as updateinfo.xml's update/@type names it.
type Type string

// Advisory types. Sources may carry others (Fedora's "newpackage"); they are
// kept as they are written.
const (
	Security    Type = "security"
	Bugfix      Type = "bugfix"
	Enhancement Type = "enhancement"
)

// TypeFromID derives the type from a Red Hat-style advisory id when the source
// does not say it: xxSA is security, xxBA bugfix, xxEA enhancement
// (ALSA-2023:3722, RLBA-2021:2580, RHEA-...). It returns "" when the id does
// not follow that convention.
func TypeFromID(id string) Type {
	prefix, _, ok := strings.Cut(id, "-")
	if !ok || len(prefix) < 2 {
		return ""
	}
	switch prefix[len(prefix)-2:] {
	case "SA":
		return Security
	case "BA":
		return Bugfix
	case "EA":
		return Enhancement
	}
	return ""
}

// Severity is an advisory's severity on the Red Hat scale. The zero value is
// SeverityNone (not rated), and severities order from least to most severe,
// so "at least Important" is s >= Important.
type Severity int

// Severities, least severe first.
const (
	SeverityNone Severity = iota
	Low
	Moderate
	Important
	Critical
)

var severityNames = [...]string{"None", "Low", "Moderate", "Important", "Critical"}

// String returns the severity as the distributions write it ("Important").
func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("Severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity reads a severity name, case-insensitively. "", "None" and
// "Unknown" are SeverityNone. Amazon's "Medium" is Moderate.
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none", "unknown":
		return SeverityNone, nil
	case "low":
		return Low, nil
	case "moderate", "medium":
		return Moderate, nil
	case "important", "high":
		return Important, nil
	case "critical":
		return Critical, nil
	}
	return SeverityNone, fmt.Errorf("advisory: unknown severity %q", s)
}

// MarshalText writes the severity's name, so JSON carries "Important".
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Advisory is one erratum: what it fixes and which package versions fix it.
type Advisory struct {
	// ID as the distribution writes it: "ALSA-2023:3722", "ALSA-2026:A009".
	ID string
	// Ecosystem the fixed packages belong to, in OSV form ("AlmaLinux:9").
	// Empty when the source does not say, as for a repository's
	// updateinfo.xml, which speaks for that repository's own release.
	Ecosystem string
	Type      Type
	Severity  Severity
	// Issued and Updated are zero when the source does not give them.
	Issued  time.Time
	Updated time.Time
	Title   string
	// Description is the advisory's prose (updateinfo's <description>,
	// OSV's details), at most MaxDescription bytes (see BoundDescription).
	// The decoders fill it only when asked to (the server does; the
	// agent's check does not pay for text it never shows), so it is empty
	// otherwise. It is left out of the JSON encoding when empty.
	Description string `json:",omitempty"`
	// CVEs fixed, sorted and without duplicates ("CVE-2023-2650").
	CVEs       []string
	References []Reference
	// RebootSuggested is set when the advisory says a reboot is needed.
	RebootSuggested bool
	// Packages are the fixed packages. One name may appear several times,
	// once per arch or per module stream.
	Packages []Package
}

// MaxDescription bounds what is kept of an advisory's description. The
// longest in the real data the project has is an EPEL 4 update's, 18 KB;
// AlmaLinux's run to 1 to 8 KB.
const MaxDescription = 16 << 10

// BoundDescription returns the description s as it is kept: leading and
// trailing white space trimmed, Windows line ends made "\n", invalid UTF-8
// and NUL bytes made U+FFFD (a database's text column refuses both), and,
// when it
// is longer than MaxDescription bytes, cut at the last whole UTF-8
// character that fits in MaxDescription less the length of a closing
// line, "[description truncated: N bytes]" naming the size it had, so the
// result never passes MaxDescription and a reader sees that text is
// missing. It does not escape anything: what shows it escapes it.
func BoundDescription(s string) string {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "\r") {
		s = strings.ReplaceAll(s, "\r\n", "\n")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.Contains(s, "\x00") {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) <= MaxDescription {
		return s
	}
	tail := fmt.Sprintf("\n[description truncated: %d bytes]", len(s))
	cut := MaxDescription - len(tail)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimRightFunc(s[:cut], unicode.IsSpace) + tail
}

// Reference is a link the advisory cites.
type Reference struct {
	Type  string // "cve", "bugzilla", "self", "advisory", ...
	ID    string // "CVE-2023-2650", a bug number; may be empty
	URL   string
	Title string
}

// Package is one fixed package: installing this version (or a newer one of
// the same stream) cures the advisory for that package.
type Package struct {
	Name string
	rpmver.EVR
	// Arch is empty when the source does not give one (OSV).
	Arch string
	// Module is set for a package built in a module stream, when the source
	// says which (updateinfo's <collection><module>).
	Module *Module
	// Filename is the package's file name or repository-relative location
	// when the source gives it (updateinfo's <filename>).
	Filename string
	// SHA256 is the package file's digest in hex when the source gives it.
	SHA256 string
}

// Module names a module stream.
type Module struct {
	Name   string
	Stream string
}

// String returns "name:stream".
func (m Module) String() string { return m.Name + ":" + m.Stream }

// IsSecurity reports whether the advisory is a security advisory.
func (a *Advisory) IsSecurity() bool { return a.Type == Security }

// HasCVE reports whether the advisory fixes the given CVE.
func (a *Advisory) HasCVE(cve string) bool {
	for _, c := range a.CVEs {
		if strings.EqualFold(c, cve) {
			return true
		}
	}
	return false
}
