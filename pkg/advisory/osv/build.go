package osv

// Building advisories from one parsed object: one per ecosystem, its
// fixed packages without exact duplicates.

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"slices"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// fixedErr reports a bad fixed version with its full path.
func fixedErr(e *entry, f *fixedEvent, err error) error {
	return &fieldError{
		off:  f.off,
		path: fmt.Sprintf("affected[%d].ranges[%d].events[%d].fixed", e.index, f.rng, f.event),
		err:  fmt.Errorf("bad version: %w", err),
	}
}

// build turns the parsed object into one Advisory per wanted ecosystem that
// has fixed packages, and queues them; on error it queues nothing.
//
// Every string of those advisories is cut from one string (the arena): a
// few allocations per advisory instead of one per name, version and URL.
func (d *Decoder) build(id, summary, details []byte, issued, updated time.Time) error {
	d.ecosystems = d.ecosystems[:0]
	if d.opts.Ecosystem != "" {
		d.ecosystems = append(d.ecosystems, d.opts.Ecosystem)
	} else {
		for _, e := range d.entries {
			if !slices.Contains(d.ecosystems, e.eco) {
				d.ecosystems = append(d.ecosystems, e.eco)
			}
		}
	}
	kept := 0
	for i := range d.entries {
		e := &d.entries[i]
		if slices.Contains(d.ecosystems, e.eco) {
			kept += e.hi - e.lo
			continue
		}
		// A bad version is an error whatever the filter.
		for k := range d.fixed[e.lo:e.hi] {
			f := &d.fixed[e.lo+k]
			if _, err := rpmver.ParseEVR(string(f.value)); err != nil {
				return fixedErr(e, f, err)
			}
		}
	}
	if kept == 0 {
		return nil
	}

	a := d.arena[:0]
	a = append(a, id...)
	a = append(a, summary...)
	for i := range d.refs {
		r := &d.refs[i]
		n := len(a)
		a = appendLower(a, r.typ)
		r.typLen = len(a) - n
		a = append(a, r.url...)
	}
	cves := d.cveViews[:0]
	for _, list := range [2][][]byte{d.related, d.aliases} {
		for _, c := range list {
			if bytes.HasPrefix(c, []byte("CVE-")) {
				cves = append(cves, c)
			}
		}
	}
	slices.SortFunc(cves, bytes.Compare)
	cves = slices.CompactFunc(cves, bytes.Equal)
	d.cveViews = cves
	for _, c := range cves {
		a = append(a, c...)
	}
	for i := range d.entries {
		e := &d.entries[i]
		if !slices.Contains(d.ecosystems, e.eco) {
			continue
		}
		e.at = len(a)
		a = append(a, e.name...)
		for _, f := range d.fixed[e.lo:e.hi] {
			a = append(a, f.value...)
		}
	}
	d.arena = a
	s := string(a)
	pos := 0
	take := func(n int) string {
		v := s[pos : pos+n]
		pos += n
		return v
	}

	var base advisory.Advisory
	base.ID = take(len(id))
	base.Title = take(len(summary))
	base.Type = advisory.TypeFromID(base.ID)
	base.Severity = severityOf(base.Title)
	base.Issued, base.Updated = issued, updated
	if len(details) > 0 {
		// Not cut from the arena: it is most of the object, and only the
		// server asks for it (Options.Descriptions).
		base.Description = advisory.BoundDescription(string(details))
	}
	if len(d.refs) > 0 {
		base.References = make([]advisory.Reference, len(d.refs))
		for i, r := range d.refs {
			base.References[i] = advisory.Reference{Type: take(r.typLen), URL: take(len(r.url))}
		}
	}
	if len(cves) > 0 {
		base.CVEs = make([]string, len(cves))
		for i, c := range cves {
			base.CVEs[i] = take(len(c))
		}
	}

	all := make([]advisory.Package, 0, kept)
	first := len(d.pending)
	for _, eco := range d.ecosystems {
		lo := len(all)
		for i := range d.entries {
			e := &d.entries[i]
			if e.eco != eco {
				continue
			}
			at := e.at
			name := s[at : at+len(e.name)]
			at += len(e.name)
			for k := range d.fixed[e.lo:e.hi] {
				f := &d.fixed[e.lo+k]
				evr, err := rpmver.ParseEVR(s[at : at+len(f.value)])
				at += len(f.value)
				if err != nil {
					clear(d.pending[first:])
					d.pending = d.pending[:first]
					return fixedErr(e, f, err)
				}
				all = append(all, advisory.Package{Name: name, EVR: evr})
			}
		}
		all = all[:lo+len(d.dropDuplicatePackages(all[lo:]))]
		if len(all) == lo {
			continue
		}
		adv := new(advisory.Advisory)
		*adv = base
		if len(d.pending) > first {
			adv.CVEs = slices.Clone(base.CVEs)
			adv.References = slices.Clone(base.References)
		}
		adv.Ecosystem = eco
		adv.Packages = all[lo:len(all):len(all)]
		d.pending = append(d.pending, adv)
	}
	return nil
}

// dropDuplicatePackages drops exact duplicates from pkgs in place, keeping the first of
// each in order, with a small open-addressing hash table reused across
// advisories (a kernel advisory names hundreds of packages; a map per
// advisory would cost more than the parsing).
func (d *Decoder) dropDuplicatePackages(pkgs []advisory.Package) []advisory.Package {
	if len(pkgs) < 2 {
		return pkgs
	}
	size := 1
	for size < 2*len(pkgs) {
		size <<= 1
	}
	table := slices.Grow(d.table[:0], size)[:size]
	clear(table)
	d.table = table
	out := pkgs[:0]
	for _, p := range pkgs {
		i := maphash.Comparable(d.seed, p) & uint64(size-1)
		for {
			at := table[i]
			if at == 0 {
				table[i] = int32(len(out)) + 1
				out = append(out, p)
				break
			}
			if out[at-1] == p {
				break // a duplicate
			}
			i = (i + 1) & uint64(size-1)
		}
	}
	return out
}
