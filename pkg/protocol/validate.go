package protocol

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on what a device says about itself and on what an enrolment token
// hands out. A device's name and info are shown to admins (rpmfleet
// devices), so they are kept short and free of anything a terminal would
// act on: control characters (ESC starts an ANSI sequence, a newline forges
// a table row), Unicode format characters (U+202E turns text right to left,
// zero-width ones hide text) and invalid UTF-8. The server refuses them at
// enrolment and in every report; the agent checks its name before sending
// it.
const (
	// MaxNameLen bounds a device name, in bytes.
	MaxNameLen = 64
	// MaxInfoLen bounds each DeviceInfo field, in bytes. A kernel release
	// ("5.14.0-362.8.1.el9_3.aarch64") or a version string is far shorter.
	MaxInfoLen = 128
	// MaxLabels bounds the labels of an enrolment token.
	MaxLabels = 32
	// MaxLabelKeyLen bounds a label key, in bytes; keys follow the name's
	// rule.
	MaxLabelKeyLen = 64
	// MaxLabelValueLen bounds a label value, in bytes.
	MaxLabelValueLen = 128
	// MaxPackageFieldLen bounds each field of a reported Package, in
	// bytes; rpm's longest real names and releases are under 100.
	MaxPackageFieldLen = 256
)

// ErrInvalid is what every refusal of this file wraps; a *FieldError says
// which field.
var ErrInvalid = errors.New("protocol: invalid value")

// FieldError is a refused value: the JSON field ("name", "device.kernel",
// "labels") and what was wrong, in words that quote the value escaped.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Is makes errors.Is(err, ErrInvalid) true for every FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// ValidateName checks a device name: 1 to MaxNameLen bytes of ASCII
// letters, digits, '-', '_' and '.', starting with a letter or a digit, as
// a host name or a label would be. ASCII only, so two names that look alike
// are alike ("pi-а" with a Cyrillic а is refused).
func ValidateName(name string) error {
	return validateLabel("name", name, MaxNameLen)
}

// validateLabel applies the name rule to a value of field.
func validateLabel(field, s string, max int) error {
	if s == "" {
		return invalid(field, "empty")
	}
	if len(s) > max {
		return invalid(field, "%d bytes, at most %d allowed", len(s), max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0:
		default:
			return invalid(field, "%s: byte %d (%s) is not allowed; use letters, digits, '-', '_' and '.', starting with a letter or digit",
				quote(s), i, quote(string(s[i:i+1])))
		}
	}
	return nil
}

// ValidateText checks free text a device or an admin sends (an os-release
// field, a kernel release, a label value): at most max bytes of valid
// UTF-8 without control characters, Unicode format characters or line and
// paragraph separators. field names it in the error.
func ValidateText(field, s string, max int) error {
	if len(s) > max {
		return invalid(field, "%d bytes, at most %d allowed", len(s), max)
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return invalid(field, "%s: invalid UTF-8 at byte %d", quote(s), i)
			}
		}
		if !printable(r) {
			return invalid(field, "%s: character %U at byte %d is a control or format character", quote(s), r, i)
		}
	}
	return nil
}

// printable reports whether r may be shown as it is: not a control
// character, a format character (Cf: bidirectional overrides, zero-width
// characters), a line or paragraph separator, or a private-use or
// unassigned code point. A plain space is printable; a tab is not.
func printable(r rune) bool {
	return r == ' ' || unicode.IsGraphic(r) && !unicode.Is(unicode.Zl, r) && !unicode.Is(unicode.Zp, r)
}

// Validate checks every field of the info against MaxInfoLen and
// ValidateText; prefix is the JSON path of the info ("device").
func (d DeviceInfo) Validate(prefix string) error {
	for _, f := range []struct{ name, value string }{
		{"os_id", d.OSID}, {"os_version_id", d.OSVersionID}, {"arch", d.Arch},
		{"kernel", d.Kernel}, {"hostname", d.Hostname}, {"agent_version", d.AgentVersion},
	} {
		if err := ValidateText(prefix+"."+f.name, f.value, MaxInfoLen); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks every field of a reported package against
// MaxPackageFieldLen and ValidateText; field is the package's JSON path
// ("inventory.packages[3]"). Package names and versions come from the
// device's rpm database, which a hostile device writes as it likes, and
// the admin CLI prints them.
func (p Package) Validate(field string) error {
	for _, f := range []struct{ name, value string }{
		{"name", p.Name}, {"epoch", p.Epoch}, {"version", p.Version}, {"release", p.Release},
		{"arch", p.Arch}, {"modularity_label", p.ModularityLabel},
	} {
		if err := ValidateText(field+"."+f.name, f.value, MaxPackageFieldLen); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks what a report says about the device and its packages
// (DeviceInfo.Validate, Package.Validate), naming the field at fault. The
// rest (ids, kinds, digests) is the server's store to check.
func (r *Report) Validate() error {
	if err := r.Device.Validate("device"); err != nil {
		return err
	}
	check := func(field string, pkgs []Package) error {
		for i, p := range pkgs {
			if err := p.Validate(fmt.Sprintf("%s[%d]", field, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := check("inventory.packages", r.Inventory.Packages); err != nil {
		return err
	}
	if err := check("inventory.added", r.Inventory.Added); err != nil {
		return err
	}
	if err := check("inventory.removed", r.Inventory.Removed); err != nil {
		return err
	}
	for i, c := range r.Cycles {
		if err := check(fmt.Sprintf("cycles[%d].before", i), c.Before); err != nil {
			return err
		}
		if err := check(fmt.Sprintf("cycles[%d].after", i), c.After); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks an enrolment request's name (when given; the server
// falls back to the host name, which must then pass the same rule) and its
// device info. The token is not checked here: only the server knows it.
func (r EnrollRequest) Validate() error {
	if r.Name != "" {
		if err := ValidateName(r.Name); err != nil {
			return err
		}
	}
	return r.Device.Validate("device")
}

// ValidateLabels checks an enrolment token's labels: at most MaxLabels,
// keys by the name rule up to MaxLabelKeyLen bytes, values text up to
// MaxLabelValueLen bytes. Labels are copied to every device enrolled with
// the token and printed by the admin CLI.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return invalid("labels", "%d labels, at most %d allowed", len(labels), MaxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if err := validateLabel("labels", k, MaxLabelKeyLen); err != nil {
			return err
		}
		if err := ValidateText("labels."+k, labels[k], MaxLabelValueLen); err != nil {
			return err
		}
	}
	return nil
}

// Escape returns s as it may be shown on a terminal: printable text as it
// is, a backslash doubled, and everything else as an escape: each byte of
// invalid UTF-8 and each control character below U+0080 as \xNN, other
// characters as \uNNNN or \UNNNNNNNN. So "\x1b[2J" shows as \x1b[2J
// instead of clearing the screen, U+202E as \u202e instead of turning the
// line around, and an escape in the output always means the server sent
// something that needed one.
func Escape(s string) string {
	clean := true
	for _, r := range s {
		if r == '\\' || r == utf8.RuneError || !printable(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case printable(r):
			b.WriteString(s[i : i+size])
		case r < 0x80:
			fmt.Fprintf(&b, "\\x%02x", r)
		case r <= 0xffff:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			fmt.Fprintf(&b, "\\U%08x", r)
		}
		i += size
	}
	return b.String()
}

// quoteLen is how much of a refused value an error quotes.
const quoteLen = 48

// quote returns the start of s escaped and in double quotes, for an error
// message: a refused 64 KiB name is not repeated whole.
func quote(s string) string {
	if len(s) > quoteLen {
		cut := quoteLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf(`"%s"... (%d bytes)`, Escape(s[:cut]), len(s))
	}
	return `"` + Escape(s) + `"`
}
