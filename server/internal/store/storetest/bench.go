package storetest

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/osv"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// FixturesDir returns the fixture folder, testdata/ at the module root
// (package fixtures).
func FixturesDir() (string, error) { return fixtures.Dir() }

// Bench measures a simulated fleet of b.N devices (run it with
// -benchtime=10000x for 10,000) against the whole AlmaLinux 9 OSV
// database: the advisory import, every device's first full report, one
// delta report per device (a patch cycle upgrading a few packages), one
// report per device with nothing changed (the periodic report), the CVE
// query (for CVE-2023-2650, which most devices are exposed to, whole and in
// pages of 100 devices, and for the CVE exposing the fewest), the advisory list, and a new advisory reaching
// every affected device, after the store analyzed its tables as a running
// server's would have been (Analyze, when the store has it). Devices run one
// of 40 images made from the real UBI 9 aarch64 inventory by applying a
// random share of the real fixes; one device in ten also lacks one random
// package, so it has a set of its own. Four goroutines send reports, as
// concurrent HTTP handlers would.
func Bench(b *testing.B, back Backend) {
	fixtures, err := FixturesDir()
	if err != nil {
		b.Fatal(err)
	}
	advs, err := osv.ParseFile(filepath.Join(fixtures, "almalinux-osv", "almalinux9.jsonl.gz"), osv.Options{Ecosystem: "AlmaLinux:9"})
	if err != nil {
		b.Fatal(err)
	}
	ubi, err := UBIInventory()
	if err != nil {
		b.Fatal(err)
	}
	match := Match(advs)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	fixes := fixesByName(advs)
	images := make([][]protocol.Package, 40)
	for i := range images {
		images[i] = perturb(ubi, fixes, rng, 0.3)
	}

	n := b.N
	s := open(b, back)
	start := time.Now()
	if _, err := s.PutAdvisories(ctx, advs, t0, match); err != nil {
		b.Fatal(err)
	}
	importTime := time.Since(start)

	devices := make([]string, n)
	sets := make([][]protocol.Package, n)
	if err := s.CreateEnrollToken(ctx, store.EnrollToken{ID: "bench", Hash: store.HashSecret("bench"), Expires: t0.Add(time.Hour), UsesLeft: n, Created: t0}); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		d, err := s.Enroll(ctx, store.HashSecret("bench"), store.NewDevice{ID: fmt.Sprint("d", i), Name: fmt.Sprintf("pi-%05d", i),
			CredentialHash: store.HashSecret(fmt.Sprint("c", i)), Enrolled: t0})
		if err != nil {
			b.Fatal(err)
		}
		devices[i] = d.ID
		sets[i] = images[i%len(images)]
		if i%10 == 9 {
			k := rng.IntN(len(sets[i]))
			sets[i] = slices.Delete(slices.Clone(sets[i]), k, k+1)
		}
	}
	b.ResetTimer()
	fullTime := parallel(b, n, func(i int) error {
		_, err := s.Report(ctx, devices[i], full("first", sets[i]), t0, match)
		return err
	})

	// A patch cycle: devices of an image upgrade the same few packages.
	deltas := make([]*protocol.Report, n)
	cycles := make(map[int][3][]protocol.Package)
	for i := range n {
		img := i % len(images)
		c, ok := cycles[img]
		if !ok {
			after := perturb(images[img], fixes, rng, 0.02)
			added, removed := diff(images[img], after)
			c = [3][]protocol.Package{after, added, removed}
			cycles[img] = c
		}
		after, added, removed := c[0], c[1], c[2]
		if i%10 == 9 { // the device with a package missing
			after, added, removed = applyTo(sets[i], added, removed)
		}
		deltas[i] = delta("second", after, added, removed)
	}
	stopProfile := startProfile(b, *deltaProfile)
	deltaTime := parallel(b, n, func(i int) error {
		resp, err := s.Report(ctx, devices[i], deltas[i], t0, match)
		if err == nil && resp.NeedFullInventory {
			err = fmt.Errorf("device %d: delta refused", i)
		}
		return err
	})
	stopProfile()
	// Then every device reports again with nothing changed, as an agent
	// does on its timer between patch cycles: the most common report.
	quietTime := parallel(b, n, func(i int) error {
		after := deltas[i].Inventory.Digest
		r := full("third", nil)
		r.Inventory = protocol.Inventory{Kind: protocol.InventoryDelta, Digest: after}
		resp, err := s.Report(ctx, devices[i], r, t0, match)
		if err == nil && resp.NeedFullInventory {
			err = fmt.Errorf("device %d: empty delta refused", i)
		}
		return err
	})
	b.StopTimer()
	if a, ok := s.(interface{ Analyze(context.Context) error }); ok {
		if err := a.Analyze(ctx); err != nil {
			b.Fatal(err)
		}
	}

	cveLatency := func(cve string) (p50, p99 time.Duration, listed int) {
		var lat []time.Duration
		for range 100 {
			start := time.Now()
			resp, err := s.CVE(ctx, cve)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			listed = len(resp.Exposed) + len(resp.Patched)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return lat[len(lat)/2], lat[len(lat)*99/100], listed
	}
	cveP50, cveP99, listed := cveLatency("CVE-2023-2650")
	// The same answer in pages of 100 devices, walked to the end.
	var pageLat []time.Duration
	for after, pages := "", 0; pages < n; pages++ {
		start := time.Now()
		page, err := s.CVEPage(ctx, "CVE-2023-2650", after, 100)
		if err != nil {
			b.Fatal(err)
		}
		pageLat = append(pageLat, time.Since(start))
		if after = page.Next; after == "" {
			break
		}
	}
	slices.Sort(pageLat)
	pageP99 := pageLat[len(pageLat)*99/100]
	if listed == 0 {
		b.Errorf("CVE-2023-2650 lists no device")
	}
	// The narrowest exposure in the fleet: the advisory affecting the
	// fewest devices.
	start = time.Now()
	list, err := s.Advisories(ctx, advisory.SeverityNone)
	if err != nil {
		b.Fatal(err)
	}
	listTime := time.Since(start)
	narrow := ""
	fewest := n + 1
	for _, a := range list {
		if a.Affected > 0 && a.Affected < fewest && len(a.CVEs) > 0 {
			narrow, fewest = a.CVEs[0], a.Affected
		}
	}
	var narrowP99 time.Duration
	if narrow != "" {
		_, narrowP99, _ = cveLatency(narrow)
	}

	// A new advisory for a package every device has.
	adv := advisory.Advisory{ID: "ALSA-2099:0001", Ecosystem: "AlmaLinux:9", Type: advisory.Security, Severity: advisory.Critical,
		Issued: t0, Title: "Critical: bash security update", CVEs: []string{"CVE-2099-0001"},
		Packages: []advisory.Package{{Name: "bash", EVR: rpmver.MustParseEVR("5.1.8-99.el9")}}}
	start = time.Now()
	if _, err := s.PutAdvisories(ctx, []advisory.Advisory{adv}, t0, Match([]advisory.Advisory{adv})); err != nil {
		b.Fatal(err)
	}
	newAdvTime := time.Since(start)
	resp, err := s.CVE(ctx, "CVE-2099-0001")
	if err != nil || len(resp.Exposed) < n*9/10 {
		b.Errorf("new advisory reached %d of %d devices, %v", len(resp.Exposed), n, err)
	}

	b.ReportMetric(float64(len(advs))/importTime.Seconds(), "advisories-imported/s")
	b.ReportMetric(float64(n)/fullTime.Seconds(), "full-reports/s")
	b.ReportMetric(float64(n)/deltaTime.Seconds(), "delta-reports/s")
	b.ReportMetric(float64(n)/quietTime.Seconds(), "unchanged-reports/s")
	b.ReportMetric(float64(cveP50.Microseconds())/1000, "cve-p50-ms")
	b.ReportMetric(float64(cveP99.Microseconds())/1000, "cve-p99-ms")
	b.ReportMetric(float64(pageP99.Microseconds())/1000, "cve-page100-p99-ms")
	b.ReportMetric(float64(listed), "cve-entries")
	b.ReportMetric(float64(narrowP99.Microseconds())/1000, "narrow-cve-p99-ms")
	b.ReportMetric(float64(fewest), "narrow-cve-devices")
	b.ReportMetric(float64(listTime.Microseconds())/1000, "advisories-list-ms")
	b.ReportMetric(newAdvTime.Seconds(), "new-advisory-s")
	if c, ok := s.(interface {
		PackageSets(ctx context.Context) (int, error)
	}); ok {
		sets, _ := c.PackageSets(ctx)
		b.ReportMetric(float64(sets), "package-sets")
	}
	if c, ok := s.(interface {
		StatusSets(ctx context.Context) (int, error)
		FindingSets(ctx context.Context) (int, error)
	}); ok {
		sets, _ := c.StatusSets(ctx)
		b.ReportMetric(float64(sets), "status-sets")
		sets, _ = c.FindingSets(ctx)
		b.ReportMetric(float64(sets), "finding-sets")
	}
	b.ReportMetric(0, "ns/op")
}

// reporters is how many goroutines send reports in Bench.
var reporters = flag.Int("reporters", 4, "goroutines sending reports in the store benchmark (storetest.Bench)")

// deltaProfile names a file for a CPU profile of the delta reports alone
// (-cpuprofile covers the whole benchmark, set-up and queries included).
var deltaProfile = flag.String("delta-cpuprofile", "", "write a CPU profile of the store benchmark's delta reports to `file`")

// startProfile starts a CPU profile into path, when path is not empty,
// and returns what stops it.
func startProfile(b *testing.B, path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// parallel runs fn(0..n-1) on -reporters goroutines and returns the time
// taken.
func parallel(b *testing.B, n int, fn func(i int) error) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex // guards first
	var first error
	next := make(chan int)
	for range *reporters {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	return time.Since(start)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func fixesByName(advs []advisory.Advisory) map[string][]rpmver.EVR {
	m := map[string][]rpmver.EVR{}
	for _, a := range advs {
		for _, p := range a.Packages {
			m[p.Name] = append(m[p.Name], p.EVR)
		}
	}
	return m
}

// perturb upgrades each package to a random one of its real fixed
// versions newer than it, with probability p.
func perturb(pkgs []protocol.Package, fixes map[string][]rpmver.EVR, rng *rand.Rand, p float64) []protocol.Package {
	out := slices.Clone(pkgs)
	for i, pk := range out {
		if rng.Float64() >= p {
			continue
		}
		cur := rpmver.EVR{Epoch: pk.Epoch, Version: pk.Version, Release: pk.Release}
		var newer []rpmver.EVR
		for _, e := range fixes[pk.Name] {
			if rpmver.Compare(e, cur) > 0 {
				newer = append(newer, e)
			}
		}
		if len(newer) == 0 {
			continue
		}
		e := newer[rng.IntN(len(newer))]
		out[i].Epoch, out[i].Version, out[i].Release = e.Epoch, e.Version, e.Release
		if out[i].Epoch == "" {
			out[i].Epoch = pk.Epoch
		}
	}
	return out
}

func diff(before, after []protocol.Package) (added, removed []protocol.Package) {
	for i := range before {
		if before[i] != after[i] {
			removed = append(removed, before[i])
			added = append(added, after[i])
		}
	}
	return added, removed
}

// applyTo applies a delta made for an image to a device's own set,
// dropping the changes to packages the device lacks.
func applyTo(set, added, removed []protocol.Package) (after, add, rem []protocol.Package) {
	have := map[protocol.Package]bool{}
	for _, p := range set {
		have[p] = true
	}
	for i, r := range removed {
		if have[r] {
			rem = append(rem, r)
			add = append(add, added[i])
		}
	}
	gone := map[protocol.Package]bool{}
	for _, r := range rem {
		gone[r] = true
	}
	for _, p := range set {
		if !gone[p] {
			after = append(after, p)
		}
	}
	return append(after, add...), add, rem
}
