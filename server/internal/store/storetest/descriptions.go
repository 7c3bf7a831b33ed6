package storetest

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/osv"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// DescribedAdvisory is SharedAdvisory read as the server reads it, with
// descriptions (osv.Options.Descriptions): ALSA-2024:0265 for AlmaLinux:8
// and AlmaLinux:9, AlmaLinux:8 first, each with the record's details.
func DescribedAdvisory() ([]advisory.Advisory, error) {
	dir, err := FixturesDir()
	if err != nil {
		return nil, err
	}
	advs, err := osv.ParseFile(filepath.Join(dir, "almalinux-osv", "samples", "almalinux9_ALSA-2024_0265.json"), osv.Options{Descriptions: true})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(advs, func(a, b advisory.Advisory) int { return strings.Compare(a.Ecosystem, b.Ecosystem) })
	return advs, nil
}

// descriptionsOf returns each stored release's description of id.
func descriptionsOf(t *testing.T, s store.Store, id string) map[string]string {
	t.Helper()
	d, ok := s.(interface {
		AdvisoryVariants(ctx context.Context, id string) ([]store.Variant, error)
	})
	if !ok {
		t.Fatalf("%T has no AdvisoryVariants", s)
	}
	vs, err := d.AdvisoryVariants(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, v := range vs {
		out[v.Ecosystem] = v.Description
	}
	return out
}

// testAdvisoryDescriptions: each release's copy of an advisory keeps its
// own description (the real ALSA-2024:0265, one release's changed to tell
// them apart). The same data again changes nothing; a description changed
// alone is taken without counting the advisory as changed (no device's
// exposure moves); a revised copy brings its own, a stale one does not; one
// given over 16 KiB is kept bounded, escape codes as they came (the CLI
// escapes them); and the matching index (LoadAdvisories) holds none.
func testAdvisoryDescriptions(t *testing.T, b Backend) {
	ctx := t.Context()
	advs, err := DescribedAdvisory()
	if err != nil {
		t.Fatal(err)
	}
	if len(advs) != 2 || advs[1].Description == "" || !strings.Contains(advs[1].Description, "Security Fix(es):") {
		t.Fatalf("the sample decodes to %d advisories, the second described %.60q; want two, with the record's details", len(advs), advs[1].Description)
	}
	id := advs[0].ID
	el8, el9 := advs[0], advs[1]
	el8.Description = "AlmaLinux 8's copy.\n\n" + el8.Description
	s := open(t, b)
	put := func(step string, want int, advs ...advisory.Advisory) {
		t.Helper()
		n, err := s.PutAdvisories(ctx, advs, t0.Add(time.Hour), Match(advs))
		if err != nil || n != want {
			t.Fatalf("%s: PutAdvisories = %d, %v; want %d changed", step, n, err, want)
		}
	}
	check := func(step string, want8, want9 string) {
		t.Helper()
		got := descriptionsOf(t, s, id)
		if len(got) != 2 || got["AlmaLinux:8"] != want8 || got["AlmaLinux:9"] != want9 {
			t.Fatalf("%s: descriptions %q; want AlmaLinux:8 %.40q, AlmaLinux:9 %.40q", step, got, want8, want9)
		}
	}

	put("first import", 1, el8, el9)
	check("first import", el8.Description, el9.Description)
	put("the same again", 0, el8, el9)
	check("the same again", el8.Description, el9.Description)

	fixed := el9
	fixed.Description = strings.Replace(el9.Description, "Security Fix(es):", "Security Fixes:", 1)
	put("a description changed alone", 0, fixed)
	check("a description changed alone", el8.Description, fixed.Description)

	revised := el9
	revised.Updated = el9.Updated.Add(24 * time.Hour)
	revised.Description = "The revised build.\n\n" + el9.Description
	put("a revised copy", 1, revised)
	check("a revised copy", el8.Description, revised.Description)

	stale := el9
	stale.Updated = el9.Updated.Add(-24 * time.Hour)
	stale.Description = "A stale copy."
	put("a stale copy", 0, stale)
	check("a stale copy", el8.Description, revised.Description)

	huge := revised
	huge.Updated = revised.Updated.Add(time.Hour)
	huge.Description = "\x1b[2J\x1b]0;owned\x07" + strings.Repeat("x", 100<<10)
	put("an oversized description", 1, huge)
	got := descriptionsOf(t, s, id)["AlmaLinux:9"]
	if tail := fmt.Sprintf("\n[description truncated: %d bytes]", len(huge.Description)); len(got) > advisory.MaxDescription ||
		!strings.HasPrefix(got, "\x1b[2J\x1b]0;owned\x07xxx") || !strings.HasSuffix(got, tail) {
		t.Errorf("an oversized description stored as %d bytes, %.30q...%q; want at most %d, ending %q", len(got), got, got[max(0, len(got)-40):], advisory.MaxDescription, tail)
	}

	l, ok := s.(interface {
		LoadAdvisories(ctx context.Context) ([]store.Variant, error)
	})
	if !ok {
		t.Fatalf("%T has no LoadAdvisories", s)
	}
	vs, err := l.LoadAdvisories(ctx)
	if err != nil || len(vs) != 2 {
		t.Fatalf("LoadAdvisories = %d variants, %v; want 2", len(vs), err)
	}
	for _, v := range vs {
		if v.Description != "" {
			t.Errorf("LoadAdvisories: %s %s carries a %d-byte description into the matching index", v.ID, v.Ecosystem, len(v.Description))
		}
	}
}

// MigrateDescriptions checks migration 0014 on a database that exec
// writes to, migrated up to 0013: it writes the real ALSA-2024:0265 as a
// server before 0014 left it (a variant with its encoding and digest, no
// description), then reopen applies 0014. Importing the same data again,
// with descriptions, changes nothing (the digest is the same: the
// description is not in it) yet fills each release's description in.
func MigrateDescriptions(t *testing.T, exec func(q string, args ...any) error, reopen func() (store.Store, error)) {
	t.Helper()
	advs, err := DescribedAdvisory()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range advs {
		v, body, err := store.NewVariant(a)
		if err != nil {
			t.Fatal(err)
		}
		if err := exec(`INSERT INTO advisories (id, type, severity, issued, updated, title, reboot_suggested) VALUES (?, ?, ?, ?, ?, ?, 0)
			ON CONFLICT (id) DO NOTHING`, a.ID, string(a.Type), int(a.Severity), a.Issued.UnixMicro(), a.Updated.UnixMicro(), a.Title); err != nil {
			t.Fatal(err)
		}
		if err := exec(`INSERT INTO advisory_variants (advisory_id, ecosystem, updated, digest, body) VALUES (?, ?, ?, ?, ?)`,
			a.ID, a.Ecosystem, a.Updated.UnixMicro(), v.Digest[:], body); err != nil {
			t.Fatal(err)
		}
	}
	s, err := reopen()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := descriptionsOf(t, s, advs[0].ID); len(got) != 2 || got["AlmaLinux:8"] != "" || got["AlmaLinux:9"] != "" {
		t.Fatalf("after 0014: descriptions %q; want two releases with none yet", got)
	}
	n, err := s.PutAdvisories(t.Context(), advs, t0, Match(advs))
	if err != nil || n != 0 {
		t.Fatalf("the same data again, with descriptions: PutAdvisories = %d, %v; want 0 changed", n, err)
	}
	got := descriptionsOf(t, s, advs[0].ID)
	for _, a := range advs {
		if got[a.Ecosystem] != a.Description || a.Description == "" {
			t.Errorf("%s: description %.40q after the import; want %.40q", a.Ecosystem, got[a.Ecosystem], a.Description)
		}
	}
}

// BenchImportDescriptions measures what keeping descriptions costs an
// import: the real AlmaLinux 9 database (1,783 advisories) put into an
// empty store, then put again unchanged (which changes nothing and, with
// descriptions, compares each stored one), without descriptions and with
// them. It reports times and never fails on them.
func BenchImportDescriptions(b *testing.B, back Backend) {
	dir, err := FixturesDir()
	if err != nil {
		b.Fatal(err)
	}
	for _, descs := range []bool{false, true} {
		advs, err := osv.ParseFile(filepath.Join(dir, "almalinux-osv", "almalinux9.jsonl.gz"), osv.Options{Ecosystem: "AlmaLinux:9", Descriptions: descs})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("descriptions=%v", descs), func(b *testing.B) {
			var first, again time.Duration
			for b.Loop() {
				b.StopTimer()
				s := open(b, back)
				b.StartTimer()
				start := time.Now()
				if _, err := s.PutAdvisories(b.Context(), advs, t0, nil); err != nil {
					b.Fatal(err)
				}
				first += time.Since(start)
				start = time.Now()
				if n, err := s.PutAdvisories(b.Context(), advs, t0, nil); err != nil || n != 0 {
					b.Fatalf("again: %d changed, %v; want 0", n, err)
				}
				again += time.Since(start) // open closes s when the benchmark ends
			}
			b.ReportMetric(first.Seconds()/float64(b.N), "first-s")
			b.ReportMetric(again.Seconds()/float64(b.N), "again-s")
		})
	}
}
