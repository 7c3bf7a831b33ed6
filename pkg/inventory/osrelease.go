package inventory

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Release is a distribution release as os-release(5) describes it.
type Release struct {
	ID         string   // ID, lower-case ("almalinux")
	IDLike     []string // ID_LIKE split on spaces ("rhel", "centos", "fedora")
	VersionID  string   // VERSION_ID ("9.2")
	Name       string   // NAME ("AlmaLinux")
	PrettyName string   // PRETTY_NAME ("AlmaLinux 9.2 (Turquoise Kodkod)")
	PlatformID string   // PLATFORM_ID ("platform:el9")
	CPEName    string   // CPE_NAME ("cpe:/o:almalinux:almalinux:9::baseos")
}

// Errors of ParseOSRelease and Ecosystem.
var (
	ErrOSReleaseSyntax     = errors.New("inventory: os-release syntax error")
	ErrNoVersionID         = errors.New("inventory: os-release has no VERSION_ID")
	ErrUnknownDistribution = errors.New("inventory: unknown distribution")
)

// maxOSReleaseLine bounds one os-release line; real ones are under 200 bytes.
const maxOSReleaseLine = 64 << 10

// ParseOSRelease reads an os-release file: KEY=VALUE lines, blank lines and
// lines starting with '#'. Values follow the shell quoting that os-release(5)
// allows: unquoted words with backslash escapes, "double quotes" in which a
// backslash escapes $, `, ", \ and a newline, and 'single quotes' taken
// literally; adjacent parts join ("a"'b'c is abc). A line without '=', a bad
// key, an unterminated quote or unquoted whitespace inside a value is an
// error naming the line. Keys other than the Release fields are ignored.
func ParseOSRelease(r io.Reader) (Release, error) {
	var rel Release
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxOSReleaseLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, raw, ok := strings.Cut(line, "=")
		if !ok {
			return Release{}, fmt.Errorf("%w: line %d: no '=' in %q", ErrOSReleaseSyntax, n, clip(line))
		}
		if !validKey(key) {
			return Release{}, fmt.Errorf("%w: line %d: bad key %q", ErrOSReleaseSyntax, n, clip(key))
		}
		val, err := unquote(raw)
		if err != nil {
			return Release{}, fmt.Errorf("%w: line %d: %s: %v", ErrOSReleaseSyntax, n, key, err)
		}
		switch key {
		case "ID":
			rel.ID = strings.ToLower(val)
		case "ID_LIKE":
			rel.IDLike = strings.Fields(strings.ToLower(val))
		case "VERSION_ID":
			rel.VersionID = val
		case "NAME":
			rel.Name = val
		case "PRETTY_NAME":
			rel.PrettyName = val
		case "PLATFORM_ID":
			rel.PlatformID = val
		case "CPE_NAME":
			rel.CPEName = val
		}
	}
	if err := sc.Err(); err != nil {
		return Release{}, fmt.Errorf("read os-release: %w", err)
	}
	return rel, nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// unquote undoes shell quoting of one os-release value.
func unquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", errors.New("unterminated single quote")
			}
			b.WriteString(s[i+1 : i+1+j])
			i += 1 + j
		case '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return "", errors.New("unterminated double quote")
			}
		case '\\':
			if i+1 >= len(s) {
				return "", errors.New("backslash at end of value")
			}
			i++
			b.WriteByte(s[i])
		case ' ', '\t':
			// A trailing comment after whitespace is shell-legal; anything
			// else would be a second word, which os-release does not allow.
			rest := strings.TrimLeft(s[i:], " \t")
			if rest == "" || rest[0] == '#' {
				return b.String(), nil
			}
			return "", fmt.Errorf("unquoted space before %q", clip(rest))
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// ecosystems maps os-release IDs to OSV ecosystem names
// (https://ossf.github.io/osv-schema/, "Defined ecosystems").
var ecosystems = map[string]string{
	"almalinux": "AlmaLinux",
	"rocky":     "Rocky Linux",
	// OSV's Red Hat records name CPE-like ecosystems
	// ("Red Hat:enterprise_linux:9::baseos"); rpmfleet names the release
	// "Red Hat:9" and leaves mapping those records to the OSV reader.
	"rhel": "Red Hat",
}

// Ecosystem returns the OSV ecosystem of the release's major version:
// almalinux 9.2 is "AlmaLinux:9", rocky 9.6 "Rocky Linux:9", rhel 8.0
// "Red Hat:8". Other distributions, RHEL-like (ID_LIKE=rhel) or not, are
// ErrUnknownDistribution: CentOS, for one, has no OSV ecosystem, and a
// clone's advisories are not interchangeable with another's (different
// release tags and rebuild dates). A missing VERSION_ID is ErrNoVersionID.
func (r Release) Ecosystem() (string, error) {
	eco, ok := ecosystems[r.ID]
	if !ok {
		like := ""
		if len(r.IDLike) > 0 {
			like = fmt.Sprintf(" (ID_LIKE %q)", strings.Join(r.IDLike, " "))
		}
		return "", fmt.Errorf("%w: ID %q%s has no known OSV ecosystem", ErrUnknownDistribution, r.ID, like)
	}
	if r.VersionID == "" {
		return "", fmt.Errorf("%w (ID %q)", ErrNoVersionID, r.ID)
	}
	major, _, _ := strings.Cut(r.VersionID, ".")
	if major == "" || strings.Trim(major, "0123456789") != "" {
		return "", fmt.Errorf("inventory: VERSION_ID %q of %s does not start with a major version number", r.VersionID, r.ID)
	}
	return eco + ":" + major, nil
}
