package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// Variants. One advisory id may cover several releases: the AlmaLinux OSV
// database writes ALSA-2024:4568 once, with entries for AlmaLinux:8 and
// AlmaLinux:9, into both releases' files, and pkg/advisory/osv gives one
// advisory.Advisory per ecosystem. The server keeps each of them, a
// variant per (id, ecosystem), so importing one release's file never takes
// away another release's entries, and a device is matched against the
// variant of its own release.
//
// Which variant of an (id, ecosystem) is kept does not depend on the order
// of imports: the one updated last wins, and of two updated at the same
// microsecond (what the stores keep of a time), the one whose encoding has
// the greater SHA-256. The same content is the same variant, so importing
// unchanged data changes nothing. The SQL stores and the fleet service's
// in-memory index both decide by Stamp.Supersedes, and nothing else.
//
// The statuses, findings, CVE index and overrides stay keyed by the id
// alone: an advisory is one line in a device's list whichever release's
// entries it was matched on. The id's own row (type, severity, title,
// dates, CVEs) is Variants.Summary, taken from all its variants.

// Variant is one advisory of an id for one ecosystem ("" when the source
// names none, as a repository's updateinfo.xml), with the SHA-256 of its
// JSON encoding, which is what the stores keep of it.
type Variant struct {
	advisory.Advisory
	Digest [sha256.Size]byte
}

// NewVariant encodes a and returns it as a Variant, with its encoding.
// The description is left out of both, and so of the digest: it changes
// no device's exposure, and the fleet service's index holds every variant
// in memory for matching, which has no use for kilobytes of prose each.
// The SQL stores keep it beside the variant (migration 0014), taken from
// the advisory given to PutAdvisories.
func NewVariant(a advisory.Advisory) (Variant, []byte, error) {
	a.Description = ""
	body, err := json.Marshal(a)
	if err != nil {
		return Variant{}, nil, fmt.Errorf("advisory %s: %w", a.ID, err)
	}
	return Variant{Advisory: a, Digest: sha256.Sum256(body)}, body, nil
}

// Stamp is what decides between two variants of one (id, ecosystem).
type Stamp struct {
	Updated time.Time
	Digest  [sha256.Size]byte
}

// Stamp returns the variant's stamp.
func (v *Variant) Stamp() Stamp { return Stamp{Updated: v.Updated, Digest: v.Digest} }

// Supersedes reports whether a variant stamped s replaces one stamped old
// of the same id and ecosystem: it was updated later, or at the same
// microsecond with a greater digest. A variant never supersedes itself
// (same digest), so the rule is a strict total order and keeping the
// greatest of any set of variants gives the same one whatever the order
// they came in.
func (s Stamp) Supersedes(old Stamp) bool {
	if s.Digest == old.Digest {
		return false
	}
	if c := s.Updated.Truncate(time.Microsecond).Compare(old.Updated.Truncate(time.Microsecond)); c != 0 {
		return c > 0
	}
	return bytes.Compare(s.Digest[:], old.Digest[:]) > 0
}

// Variants are the variants of one advisory id, one per ecosystem, sorted
// by ecosystem. A Variants is never changed in place: With returns a new
// one, so a copy can be read while another is built.
type Variants []Variant

// With returns vs with v taken in, and whether that changed anything: v is
// added when vs holds no variant of its ecosystem and replaces the one it
// supersedes; otherwise vs is returned as it is. v must have vs's id.
func (vs Variants) With(v Variant) (Variants, bool) {
	i, found := slices.BinarySearchFunc(vs, v.Ecosystem, func(x Variant, eco string) int { return strings.Compare(x.Ecosystem, eco) })
	if found {
		if !v.Stamp().Supersedes(vs[i].Stamp()) {
			return vs, false
		}
		out := slices.Clone(vs)
		out[i] = v
		return out, true
	}
	return slices.Insert(slices.Clip(vs), i, v), true
}

// Summary returns the advisory as the id's row shows it, speaking for
// every release it covers: the id, type, title, issue and update dates and
// references of the variant updated last (ties broken as Supersedes does),
// the most severe severity of any variant and a reboot suggested when any
// variant suggests one (a row must not understate what one release's
// devices face), and the union of their CVEs, sorted. It has no ecosystem
// and no packages: those are the variants'. Summary of no variants is the
// zero Advisory.
func (vs Variants) Summary() advisory.Advisory {
	if len(vs) == 0 {
		return advisory.Advisory{}
	}
	lead := &vs[0]
	for i := range vs[1:] {
		if v := &vs[i+1]; v.Stamp().Supersedes(lead.Stamp()) {
			lead = v
		}
	}
	a := advisory.Advisory{ID: lead.ID, Type: lead.Type, Issued: lead.Issued, Updated: lead.Updated,
		Title: lead.Title, References: lead.References}
	for i := range vs {
		v := &vs[i]
		a.Severity = max(a.Severity, v.Severity)
		a.RebootSuggested = a.RebootSuggested || v.RebootSuggested
		a.CVEs = append(a.CVEs, v.CVEs...)
	}
	slices.Sort(a.CVEs)
	a.CVEs = slices.Compact(a.CVEs)
	return a
}
