// Package osv reads advisories in the OSV JSON format (https://ossf.github.io/osv-schema/)
// as the AlmaLinux OSV database publishes them, into advisory.Advisory values.
//
// Input is untrusted: it comes from a download or an upload. The reader
// never panics on it, holds one object in memory at a time, and answers
// every malformed, truncated or unknown input with an *Error naming the
// file, the line and the field, never with a silently short list. What one
// object may cost is bounded: its size (MaxObjectSize), each string the
// reader keeps (MaxFieldSize), the elements of each list it keeps
// (MaxItems), its nesting depth; the details prose (unless
// Options.Descriptions keeps it) and every other field it does not keep are
// checked and passed over without a copy. A compressed
// input decompresses to at most compressed.DefaultMaxSize.
//
// Accepted inputs, told apart by content and never by file name: one OSV
// object, a stream of objects one per line (JSON lines) or otherwise
// concatenated, each plain or compressed in any format package compressed
// detects; ParseFile also takes a folder of such files.
//
// How OSV maps onto the model, following the AlmaLinux database's habits:
//   - one OSV file may name packages of several ecosystems (ALSA-2024:0265
//     has AlmaLinux:8 and AlmaLinux:9 entries), so an object becomes one
//     Advisory per ecosystem, with Advisory.Ecosystem set; Options.Ecosystem
//     keeps one ecosystem only;
//   - each affected entry's fixed events of ECOSYSTEM ranges become
//     Packages, read with rpmver.ParseEVR ("1:3.0.7-16.el9_2"), with no Arch
//     and no Module; the same name may appear once per module stream build,
//     and only exact duplicates are dropped; "introduced" is ignored; an
//     entry with no fixed event names no fix and is skipped (Decoder.Skipped
//     counts them);
//   - the severity is the prefix of summary ("Important: openssl security
//     update"), SeverityNone without one; the whole summary is the Title, as
//     dnf shows it; the type comes from the id (advisory.TypeFromID);
//   - CVEs are the CVE ids of related and aliases, sorted and deduplicated;
//     references keep their OSV type, lower-cased ("advisory", "report");
//   - published and modified are Issued and Updated;
//   - details is the Description, with Options.Descriptions only.
package osv

import (
	"errors"
	"fmt"
	"strings"
)

// Limits on one OSV object. The largest object in the AlmaLinux databases
// is 94 KB, the longest string kept a 138-byte summary, the longest list
// kept 516 affected packages: each limit is 85 to 500 times that.
const (
	// MaxObjectSize bounds one object, as written.
	MaxObjectSize = 8 << 20
	// MaxFieldSize bounds each string the reader keeps (id, summary,
	// CVE ids, reference types and URLs, package names and ecosystems,
	// fixed versions, dates), as written.
	MaxFieldSize = 64 << 10
	// MaxItems bounds each list the reader keeps (related, aliases,
	// references, affected) and the fixed versions of one object.
	MaxItems = 1 << 16
)

// ErrNotJSON is returned (inside an *Error) for input that is not JSON, or
// JSON whose top-level values are not objects.
var ErrNotJSON = errors.New("osv: unknown format, not OSV JSON")

// ErrTooLarge is returned (inside an *Error) for an object over MaxObjectSize.
var ErrTooLarge = errors.New("osv: object too large")

// Options select what a Decoder emits.
type Options struct {
	// Ecosystem, when set ("AlmaLinux:9"), keeps only the packages of that
	// ecosystem; advisories left with none are dropped. When empty, each
	// (id, ecosystem) pair becomes its own Advisory.
	Ecosystem string
	// Descriptions keeps each object's details in Advisory.Description,
	// bounded by advisory.BoundDescription (16 KiB, a longer one cut with a
	// closing line saying how long it was). Without it details is checked
	// and passed over without a copy, as the agent wants: it is most of
	// every object, and a device never shows it.
	Descriptions bool
}

// Error is a problem in OSV input, placed as precisely as it is known.
type Error struct {
	File   string // the file, when known
	Line   int    // 1-based line, 0 when unknown
	Column int    // 1-based byte column, for malformed JSON; else 0
	Field  string // the JSON path of a bad value ("affected[2].package.name")
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("osv: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(strings.TrimPrefix(e.Err.Error(), "osv: "))
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
