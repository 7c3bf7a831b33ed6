package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/osv"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// LegacyAdvisory returns what the SQL stores kept of a in the advisories
// row before migration 0006 (content_hash and body), for the migration
// tests to write a database as an older server left it.
func LegacyAdvisory(a advisory.Advisory) (hash, body []byte) {
	body, err := json.Marshal(a)
	if err != nil {
		panic(err) // an advisory.Advisory always encodes
	}
	sum := sha256.Sum256(body)
	return sum[:], body
}

// SharedAdvisory returns ALSA-2024:0265 (java-1.8.0-openjdk) as the AlmaLinux
// OSV database gives it: one record with entries for AlmaLinux:8 and
// AlmaLinux:9, written into both releases' files, which the decoder turns
// into two advisories of one id, the AlmaLinux:8 one first
// (testdata/almalinux-osv/samples).
func SharedAdvisory() ([]advisory.Advisory, error) {
	dir, err := FixturesDir()
	if err != nil {
		return nil, err
	}
	advs, err := osv.ParseFile(filepath.Join(dir, "almalinux-osv", "samples", "almalinux9_ALSA-2024_0265.json"), osv.Options{})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(advs, func(a, b advisory.Advisory) int { return strings.Compare(a.Ecosystem, b.Ecosystem) })
	return advs, nil
}

// matchReleases is Match with the one rule it lacks that variants need: a
// package set of an AlmaLinux release is matched only against advisories
// of that release's ecosystem (or none), as the server's matcher does.
func matchReleases(advs []advisory.Advisory) store.MatchFunc {
	return func(rel string, pkgs []protocol.Package) ([]store.Finding, error) {
		id, major, _ := strings.Cut(rel, ":")
		var mine []advisory.Advisory
		for _, a := range advs {
			if a.Ecosystem == "" || (id == "almalinux" && a.Ecosystem == "AlmaLinux:"+major) {
				mine = append(mine, a)
			}
		}
		return Match(mine)(rel, pkgs)
	}
}

// variantStore is a store and the variants it should hold, kept by the
// variant rule (store.Variants.With) as the fleet service keeps them.
type variantStore struct {
	t    *testing.T
	s    store.Store
	advs map[string]store.Variants
}

// put puts advs and checks how many ids the store says changed. It gives
// the store a MatchFunc over every variant the ids hold after the put, as
// the fleet service does.
func (v *variantStore) put(step string, want int, advs ...advisory.Advisory) {
	v.t.Helper()
	for _, a := range advs {
		nv, _, err := store.NewVariant(a)
		if err != nil {
			v.t.Fatal(err)
		}
		v.advs[a.ID], _ = v.advs[a.ID].With(nv)
	}
	var all []advisory.Advisory
	for _, id := range slices.Sorted(maps.Keys(v.advs)) {
		for _, x := range v.advs[id] {
			all = append(all, x.Advisory)
		}
	}
	n, err := v.s.PutAdvisories(v.t.Context(), advs, t0.Add(time.Hour), matchReleases(all))
	if err != nil || n != want {
		v.t.Fatalf("%s: PutAdvisories = %d, %v; want %d changed", step, n, err, want)
	}
}

// testAdvisoryVariants: an advisory id covering AlmaLinux 8 and 9 (the real
// ALSA-2024:0265) is kept per ecosystem. Devices of both releases, enrolled
// before the advisory arrives, are each matched against their own
// release's entries; importing the other release's copy, or a copy of one
// release alone, takes nothing from the other; unchanged data changes
// nothing; a revised variant replaces only its own release's; a stale copy
// never wins back; and a store that got the same variants in another order
// holds the same.
func testAdvisoryVariants(t *testing.T, b Backend) {
	shared, err := SharedAdvisory()
	if err != nil {
		t.Fatal(err)
	}
	if len(shared) != 2 || shared[0].Ecosystem != "AlmaLinux:8" || shared[1].Ecosystem != "AlmaLinux:9" || shared[0].ID != shared[1].ID {
		t.Fatalf("the sample decodes to %d advisories, want ALSA-2024:0265 for AlmaLinux:8 and AlmaLinux:9", len(shared))
	}
	id := shared[0].ID
	el8, el9 := shared[0], shared[1]

	// AlmaLinux's next build for 9: a later update, a newer fix, one CVE
	// more, and the package's location as a repository would give it.
	revised := el9
	revised.Updated = el9.Updated.Add(24 * time.Hour)
	revised.CVEs = append(slices.Clone(el9.CVEs), "CVE-2099-0265")
	revised.Packages = slices.Clone(el9.Packages)
	for i := range revised.Packages {
		p := &revised.Packages[i]
		p.EVR = rpmver.MustParseEVR("1:1.8.0.402.b06-3.el9")
		if p.Name == "java-1.8.0-openjdk-headless" {
			p.Arch, p.Filename, p.SHA256 = "aarch64", "Packages/java-1.8.0-openjdk-headless-1.8.0.402.b06-3.el9.aarch64.rpm", strings.Repeat("ab", 32)
		}
	}

	java := func(evr string) []protocol.Package {
		e := rpmver.MustParseEVR(evr)
		return []protocol.Package{
			{Name: "java-1.8.0-openjdk-headless", Epoch: e.Epoch, Version: e.Version, Release: e.Release, Arch: "aarch64"},
			{Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "aarch64"},
		}
	}
	devices := []struct {
		name, version string
		pkgs          []protocol.Package
		installed     string
	}{
		{"el8", "8.10", java("1:1.8.0.392.b08-4.el8"), "1:1.8.0.392.b08-4.el8"},
		{"el9", "9.3", java("1:1.8.0.392.b08-2.el9"), "1:1.8.0.392.b08-2.el9"},
	}
	// open makes a store with both devices reported before any advisory:
	// the advisories reach them through the import, not through a match
	// of a new package set.
	open := func() *variantStore {
		f := newFleet(t, b)
		for _, d := range devices {
			r := full("r1", d.pkgs)
			r.Device.OSVersionID = d.version
			f.report(f.enroll(d.name).ID, r)
		}
		return &variantStore{t: t, s: f.s, advs: map[string]store.Variants{}}
	}
	// exposure is what the CVE answer says of each device.
	exposure := func(s store.Store, cve string) map[string]protocol.CVEExposure {
		t.Helper()
		resp, err := s.CVE(t.Context(), cve)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]protocol.CVEExposure{}
		for _, e := range resp.Exposed {
			if e.Advisory == id && e.Package == "java-1.8.0-openjdk-headless" {
				m[e.Device] = e
			}
		}
		return m
	}
	wantFixed := func(step string, s store.Store, fixed8, fixed9 string) {
		t.Helper()
		got := exposure(s, "CVE-2024-20918")
		want := map[string]protocol.CVEExposure{
			"el8": {Device: "el8", Advisory: id, Package: "java-1.8.0-openjdk-headless", Installed: devices[0].installed, Fixed: fixed8},
			"el9": {Device: "el9", Advisory: id, Package: "java-1.8.0-openjdk-headless", Installed: devices[1].installed, Fixed: fixed9},
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s: CVE-2024-20918 exposes %v\nwant %v", step, got, want)
		}
	}

	s := open()
	s.put("the AlmaLinux 8 file's copy", 1, el8, el9)
	wantFixed("the AlmaLinux 8 file's copy", s.s, "1:1.8.0.402.b06-2.el8", "1:1.8.0.402.b06-2.el9")
	s.put("the AlmaLinux 9 file's copy, the same record", 0, el8, el9)
	s.put("the AlmaLinux 8 file's copy again", 0, el8, el9)
	s.put("the AlmaLinux 9 entries alone", 0, el9)
	wantFixed("the AlmaLinux 9 entries alone", s.s, "1:1.8.0.402.b06-2.el8", "1:1.8.0.402.b06-2.el9")

	s.put("a revised AlmaLinux 9 variant", 1, revised)
	wantFixed("a revised AlmaLinux 9 variant", s.s, "1:1.8.0.402.b06-2.el8", "1:1.8.0.402.b06-3.el9")
	s.put("the stale copy imported again", 0, el8, el9)
	wantFixed("the stale copy imported again", s.s, "1:1.8.0.402.b06-2.el8", "1:1.8.0.402.b06-3.el9")

	// The row speaks for both: the union of the CVEs, so the new CVE's
	// question is answered from the id's index.
	a, err := s.s.Advisory(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(slices.Clone(el8.CVEs), "CVE-2099-0265"); !slices.Equal(a.CVEs, sortedUpper(want)) || a.Affected != 2 || a.Title != el9.Title {
		t.Errorf("Advisory(%s) = %+v\nwant CVEs %v, 2 affected, title %q", id, a, sortedUpper(want), el9.Title)
	}
	if got := exposure(s.s, "CVE-2099-0265"); len(got) != 2 {
		t.Errorf("CVE-2099-0265 exposes %v, want both devices through %s", got, id)
	}
	// Each device's plan takes the package's location from the variant
	// that has it, for the build it names.
	headless := slices.IndexFunc(revised.Packages, func(p advisory.Package) bool { return p.Name == "java-1.8.0-openjdk-headless" })
	for _, d := range []struct{ name, want string }{{"el8", ""}, {"el9", revised.Packages[headless].Filename}} {
		plan := mustPlan(t, s.s, "dev-"+d.name)
		if len(plan) != 1 || plan[0].ID != id || len(plan[0].Packages) != 1 || plan[0].Packages[0].Location != d.want {
			t.Errorf("plan of %s = %+v, want %s with java-1.8.0-openjdk-headless at %q", d.name, plan, id, d.want)
		}
	}

	// Another store gets the same variants in another order, the stale
	// copy last: it holds the same.
	r := open()
	r.put("the revised variant first", 1, revised)
	r.put("then the AlmaLinux 8 file's copy", 1, el8, el9)
	r.put("then the AlmaLinux 9 file's copy", 0, el9, el8)
	wantFixed("in another order", r.s, "1:1.8.0.402.b06-2.el8", "1:1.8.0.402.b06-3.el9")
	for _, cve := range []string{"CVE-2024-20918", "CVE-2099-0265"} {
		x, err1 := s.s.CVE(t.Context(), cve)
		y, err2 := r.s.CVE(t.Context(), cve)
		if err1 != nil || err2 != nil || !equalCVE(x, y) {
			t.Errorf("%s in two orders: %+v, %v\nand %+v, %v", cve, x, err1, y, err2)
		}
	}
	type loader interface {
		LoadAdvisories(ctx context.Context) ([]store.Variant, error)
	}
	if l, ok := s.s.(loader); ok {
		x, err1 := l.LoadAdvisories(t.Context())
		y, err2 := r.s.(loader).LoadAdvisories(t.Context())
		digests := func(vs []store.Variant) map[string][32]byte {
			m := map[string][32]byte{}
			for _, v := range vs {
				if v.ID == id {
					m[v.Ecosystem] = v.Digest
				}
			}
			return m
		}
		want := map[string][32]byte{"AlmaLinux:8": s.advs[id][0].Digest, "AlmaLinux:9": s.advs[id][1].Digest}
		if err1 != nil || err2 != nil || !maps.Equal(digests(x), want) || !maps.Equal(digests(y), want) {
			t.Errorf("LoadAdvisories in two orders: %v, %v and %v, %v; want the AlmaLinux 8 copy and the revised AlmaLinux 9 variant", digests(x), err1, digests(y), err2)
		}
	}

	// An advisory without an id is no id's variant: the whole put is
	// refused, naming it, and stores nothing.
	other := el8
	other.ID = "ALSA-2099:0265"
	if n, err := s.s.PutAdvisories(t.Context(), []advisory.Advisory{other, {Ecosystem: "AlmaLinux:8"}}, t0, matchReleases(shared)); err == nil ||
		!strings.Contains(err.Error(), "advisory 2 of 2: empty id") || n != 0 {
		t.Errorf("PutAdvisories with an empty id = %d, %v; want it refused naming advisory 2 of 2", n, err)
	}
	if _, err := s.s.Advisory(t.Context(), other.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Advisory(%s) after the refused put: %v, want store.ErrNotFound", other.ID, err)
	}

	// Two different variants updated at the same moment: the greater
	// digest wins, whichever came first.
	twin := el9
	twin.Title += " (rebuilt)"
	first, second := open(), open()
	first.put("one of two twins", 1, el9)
	first.put("the other twin", 1-b2n(first.advs[id][0].Stamp().Supersedes(mustStamp(t, twin))), twin)
	second.put("the other twin first", 1, twin)
	second.put("then the first", 1-b2n(second.advs[id][0].Stamp().Supersedes(mustStamp(t, el9))), el9)
	x, err1 := first.s.Advisory(t.Context(), id)
	y, err2 := second.s.Advisory(t.Context(), id)
	if err1 != nil || err2 != nil || x.Title != y.Title {
		t.Errorf("twins in two orders: titles %q (%v) and %q (%v), want the same", x.Title, err1, y.Title, err2)
	}
}

func mustStamp(t *testing.T, a advisory.Advisory) store.Stamp {
	t.Helper()
	v, _, err := store.NewVariant(a)
	if err != nil {
		t.Fatal(err)
	}
	return v.Stamp()
}

func b2n(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sortedUpper(cves []string) []string {
	out := make([]string, len(cves))
	for i, c := range cves {
		out[i] = strings.ToUpper(c)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// MigrateVariants is the story of migration 0006 (advisory variants), for
// each dialect's migration test. exec runs a statement in a database
// migrated up to 0005; open then opens it with every migration applied.
// The database holds ALSA-2024:0265 as the row an older server kept when
// the AlmaLinux 9 file was imported last: its AlmaLinux:9 advisory, its
// content hash and its CVEs. After 0006 that row is the id's AlmaLinux:9
// variant with the same digest, so importing the same data again changes
// nothing (no status is recomputed on upgrade), and importing the
// AlmaLinux 8 file adds the variant the old row had lost, which an
// AlmaLinux 8 device is then matched against.
func MigrateVariants(t *testing.T, exec func(q string, args ...any) error, open func() (store.Store, error)) {
	shared, err := SharedAdvisory()
	if err != nil {
		t.Fatal(err)
	}
	el8, el9 := shared[0], shared[1]
	hash, body := LegacyAdvisory(el9)
	err = exec(`INSERT INTO advisories (id, ecosystem, type, severity, issued, updated, title, reboot_suggested, content_hash, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		el9.ID, el9.Ecosystem, string(el9.Type), int(el9.Severity), el9.Issued.UnixMicro(), el9.Updated.UnixMicro(), el9.Title, 0, hash, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, cve := range el9.CVEs {
		if err := exec(`INSERT INTO advisory_cves (cve, advisory_id) VALUES (?, ?)`, cve, el9.ID); err != nil {
			t.Fatal(err)
		}
	}

	s, err := open()
	if err != nil {
		t.Fatalf("open with 0006 to apply: %v", err)
	}
	defer s.Close()
	l, ok := s.(interface {
		LoadAdvisories(ctx context.Context) ([]store.Variant, error)
	})
	if !ok {
		t.Fatalf("%T has no LoadAdvisories", s)
	}
	vs, err := l.LoadAdvisories(t.Context())
	if err != nil || len(vs) != 1 || vs[0].Ecosystem != "AlmaLinux:9" || string(vs[0].Digest[:]) != string(hash) || vs[0].Title != el9.Title ||
		len(vs[0].Packages) != len(el9.Packages) {
		t.Fatalf("LoadAdvisories after 0006 = %d variants, %v; want the old row as the AlmaLinux:9 variant, digest and content kept", len(vs), err)
	}
	a, err := s.Advisory(t.Context(), el9.ID)
	if err != nil || a.Title != el9.Title || a.Severity != el9.Severity.String() || !slices.Equal(a.CVEs, sortedUpper(el9.CVEs)) {
		t.Errorf("Advisory(%s) after 0006 = %+v, %v; want its title, severity and CVEs kept", el9.ID, a, err)
	}
	if n, err := s.PutAdvisories(t.Context(), []advisory.Advisory{el9}, t0, matchReleases(shared)); err != nil || n != 0 {
		t.Errorf("the AlmaLinux 9 copy imported again after 0006: %d changed, %v; want 0", n, err)
	}
	if n, err := s.PutAdvisories(t.Context(), shared, t0, matchReleases(shared)); err != nil || n != 1 {
		t.Errorf("the AlmaLinux 8 file's copy after 0006: %d changed, %v; want 1, the AlmaLinux:8 variant added", n, err)
	}
	if vs, err := l.LoadAdvisories(t.Context()); err != nil || len(vs) != 2 {
		t.Errorf("LoadAdvisories after the AlmaLinux 8 copy = %d variants, %v; want 2", len(vs), err)
	}

	if err := s.CreateEnrollToken(t.Context(), store.EnrollToken{ID: "e", Hash: store.HashSecret("e"), Expires: t0.Add(time.Hour), UsesLeft: 1, Created: t0}); err != nil {
		t.Fatal(err)
	}
	d, err := s.Enroll(t.Context(), store.HashSecret("e"), store.NewDevice{ID: "d8", Name: "el8", CredentialHash: store.HashSecret("c8"), Enrolled: t0})
	if err != nil {
		t.Fatal(err)
	}
	pkgs := []protocol.Package{{Name: "java-1.8.0-openjdk-headless", Epoch: "1", Version: "1.8.0.392.b08", Release: "4.el8", Arch: "aarch64"}}
	r := full("r1", pkgs)
	r.Device.OSVersionID = "8.10"
	if _, err := s.Report(t.Context(), d.ID, r, t0, matchReleases(shared)); err != nil {
		t.Fatal(err)
	}
	resp, err := s.CVE(t.Context(), el8.CVEs[0])
	want := protocol.CVEExposure{Device: "el8", Advisory: el8.ID, Package: "java-1.8.0-openjdk-headless",
		Installed: "1:1.8.0.392.b08-4.el8", Fixed: "1:1.8.0.402.b06-2.el8"}
	if err != nil || !slices.Contains(resp.Exposed, want) {
		t.Errorf("CVE %s after 0006 and the AlmaLinux 8 copy = %+v, %v; want %+v", el8.CVEs[0], resp, err, want)
	}
}
