// Package rpmver parses and compares RPM versions exactly as rpm 4.18 does.
//
// rpmfleet decides from these comparisons whether a device is exposed to an
// advisory and whether an update would be a downgrade, so a verdict that
// differs from rpm's would either hide a vulnerable package or install an
// older one. The package therefore mirrors rpm's own code rather than a
// description of it, and its tests hold it to the real rpm binary.
//
// Vercmp is rpm's rpmvercmp (rpmio/rpmvercmp.c) on one version or release
// string: separators (every byte that is not an ASCII letter or digit, '~'
// or '^', including every non-ASCII byte) are skipped; a tilde sorts before
// anything, even the end of the string (1.0~rc1 < 1.0); a caret sorts after
// the end of the string but before anything else (1.0 < 1.0^git1 < 1.0.1);
// numeric segments compare as numbers of any length (leading zeros dropped)
// and beat alphabetic ones; alphabetic segments compare byte by byte.
//
// Compare is rpm's rpmverCmp (rpmio/rpmver.c), the comparison behind
// rpm.vercmp in rpm's Lua: the epochs (a missing one is "0"), then the
// versions, then the releases, where a missing release sorts before any
// present one, even an empty one ("1.0" < "1.0-" < "1.0-0"). This is not the
// looser rule rpm applies to dependency ranges, where "foo >= 1.0" matches
// every release of 1.0. Between two full EVRs, as between an installed
// package and an advisory's fix, the two rules agree.
//
// ParseEVR splits "[epoch:]version[-release]" as rpm's rpmverParse does.
// ParseNEVRA splits package names and rpm file names. A NEVRA is written in
// four forms, each by one method: String (the epoch always written, as
// reports and plans carry it), Short (the epoch only when not 0, as dnf
// prints it and the agent's journal and pins name packages), NVRA (never
// an epoch, as rpm -qa prints it) and Filename (NVRA with ".rpm"). Key is
// a NEVRA as a comparable map key.
package rpmver

import (
	"errors"
	"fmt"
	"strings"
)

// EVR is an epoch, version and release.
//
// The zero Release means "no release", as in a dependency "foo >= 1.0".
// rpm also knows a release that is present but empty ("1.0-"), which sorts
// after no release at all; ParseEVR records that case in a field of its own,
// so an EVR built as a literal with Release "" has no release.
type EVR struct {
	// Epoch is "" when the source gives none; it compares as "0".
	Epoch   string
	Version string
	// Release is "" when the source gives none.
	Release string

	// emptyRelease is set by ParseEVR for "version-": a release that is
	// present and empty. It is never set with a non-empty Release.
	emptyRelease bool
}

// ErrEmptyVersion is returned by ParseEVR for an empty string, which rpm
// refuses as a version ("invalid version").
var ErrEmptyVersion = errors.New("rpmver: empty version")

// ErrNUL is returned for a version string holding a NUL byte. rpm, which
// works on C strings, would silently cut the string there; rpmver refuses
// it instead, since no real version carries one.
var ErrNUL = errors.New("rpmver: NUL byte in version")

// ParseEVR splits "[epoch:]version[-release]" the way rpm's rpmverParse
// does: the epoch is the run of leading ASCII digits before a ':' (an empty
// one, as in ":1.0", is "0"); the release is what follows the last '-', and
// may be empty; the version is what is between them, and may be empty too
// when the string is not ("1:" and "-1" are valid to rpm). Only an empty
// string, or one holding a NUL byte, is an error.
func ParseEVR(s string) (EVR, error) {
	if s == "" {
		return EVR{}, fmt.Errorf("parse EVR %q: %w", s, ErrEmptyVersion)
	}
	if k := strings.IndexByte(s, 0); k >= 0 {
		return EVR{}, fmt.Errorf("parse EVR %q: offset %d: %w", s, k, ErrNUL)
	}
	var e EVR
	rest := s
	i := 0
	for i < len(rest) && isDigit(rest[i]) {
		i++
	}
	if i < len(rest) && rest[i] == ':' {
		e.Epoch = rest[:i]
		if e.Epoch == "" {
			e.Epoch = "0"
		}
		rest = rest[i+1:]
	}
	if j := strings.LastIndexByte(rest, '-'); j >= 0 {
		e.Version, e.Release = rest[:j], rest[j+1:]
		e.emptyRelease = e.Release == ""
	} else {
		e.Version = rest
	}
	return e, nil
}

// MustParseEVR is ParseEVR for literals known to be valid; it panics otherwise.
func MustParseEVR(s string) EVR {
	e, err := ParseEVR(s)
	if err != nil {
		panic(err)
	}
	return e
}

// HasRelease reports whether e has a release, possibly an empty one.
func (e EVR) HasRelease() bool { return e.Release != "" || e.emptyRelease }

// String writes the EVR as "epoch:version-release", with epoch 0 written
// out when absent, as rpmfleet's reports and JSON always do. A missing
// release is left out with its '-'. ParseEVR reads the result back to an
// EVR that compares equal.
func (e EVR) String() string {
	epoch := e.Epoch
	if epoch == "" {
		epoch = "0"
	}
	if !e.HasRelease() {
		return epoch + ":" + e.Version
	}
	return epoch + ":" + e.Version + "-" + e.Release
}

// Short writes the EVR as dnf and rpmfleet's update journal do:
// "[epoch:]version-release", the epoch left out when it is absent or 0
// ("3.0.7-16.el9_2", "1:3.0.7-16.el9_2"), a missing release left out with
// its '-'. ParseEVR reads the result back to an EVR that compares equal.
func (e EVR) Short() string {
	s := e.Version
	if e.Epoch != "" && e.Epoch != "0" {
		s = e.Epoch + ":" + s
	}
	if e.HasRelease() {
		s += "-" + e.Release
	}
	return s
}

// Compare returns -1, 0 or +1 as a is older than, equal to or newer than b,
// as rpm's rpmverCmp (and so rpm.vercmp) does: epoch, then version, then
// release, a missing epoch being "0" and a missing release sorting before
// any present one.
func Compare(a, b EVR) int {
	ea, eb := a.Epoch, b.Epoch
	if ea == "" {
		ea = "0"
	}
	if eb == "" {
		eb = "0"
	}
	if c := Vercmp(ea, eb); c != 0 {
		return c
	}
	if c := Vercmp(a.Version, b.Version); c != 0 {
		return c
	}
	ra, rb := a.HasRelease(), b.HasRelease()
	switch {
	case ra && rb:
		return Vercmp(a.Release, b.Release)
	case ra:
		return 1
	case rb:
		return -1
	}
	return 0
}
