// Package rpmver parses and compares RPM versions exactly as rpm does.
//
// Compare follows rpm's rpmvercmp (lib/rpmvercmp.c) segment by segment:
// separators are skipped, a tilde sorts before anything (1.0~rc1 < 1.0), a
// caret sorts after the base version but before the next one
// (1.0 < 1.0^git1 < 1.0.1), numeric segments compare as numbers (leading
// zeros dropped) and beat alphabetic ones. EVRs compare epoch, then version,
// then release, where a missing epoch is 0 and a release is compared only
// when both sides have one, as rpm's rpmverCmp does.
package rpmver

import (
	"errors"
	"fmt"
	"strings"
)

// EVR is an epoch, version and release.
type EVR struct {
	// Epoch is "" when the source gives none; it compares as "0".
	Epoch   string
	Version string
	// Release is "" when the source gives none; an EVR without a release
	// compares equal to any release of the same epoch and version.
	Release string
}

// ErrEmptyVersion is returned for an EVR with no version.
var ErrEmptyVersion = errors.New("rpmver: empty version")

// ParseEVR splits "[epoch:]version[-release]" the way rpm's rpmverParse does:
// the epoch is the run of leading digits before a ':', the release is what
// follows the last '-'.
func ParseEVR(s string) (EVR, error) {
	var e EVR
	rest := s
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
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
	} else {
		e.Version = rest
	}
	if e.Version == "" {
		return EVR{}, fmt.Errorf("%w in %q", ErrEmptyVersion, s)
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

// String writes the EVR as "epoch:version-release", with epoch 0 written
// out when absent, as rpmfleet's reports and JSON always do. A missing
// release is left out.
func (e EVR) String() string {
	epoch := e.Epoch
	if epoch == "" {
		epoch = "0"
	}
	if e.Release == "" {
		return epoch + ":" + e.Version
	}
	return epoch + ":" + e.Version + "-" + e.Release
}

// Compare returns -1, 0 or +1 as a is older than, equal to or newer than b.
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
	if a.Release != "" && b.Release != "" {
		return Vercmp(a.Release, b.Release)
	}
	return 0
}
