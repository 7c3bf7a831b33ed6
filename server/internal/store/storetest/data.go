package storetest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Advisories returns four real AlmaLinux 9 advisories, as the AlmaLinux
// OSV database (testdata/almalinux-osv/almalinux9.jsonl.gz)
// gives them, cut to the packages the tests use. The UBI 9.0 image of
// UBIInventory is affected by all four.
func Advisories() []advisory.Advisory {
	day := func(s string) time.Time { t, _ := time.Parse("2006-01-02", s); return t }
	pkgs := func(evr string, names ...string) []advisory.Package {
		var ps []advisory.Package
		for _, n := range names {
			ps = append(ps, advisory.Package{Name: n, EVR: rpmver.MustParseEVR(evr)})
		}
		return ps
	}
	return []advisory.Advisory{
		{ID: "ALSA-2023:3722", Ecosystem: "AlmaLinux:9", Type: advisory.Security, Severity: advisory.Moderate,
			Issued: day("2023-06-21"), Title: "Moderate: openssl security and bug fix update",
			CVEs:     []string{"CVE-2023-0464", "CVE-2023-0465", "CVE-2023-0466", "CVE-2023-1255", "CVE-2023-2650"},
			Packages: pkgs("1:3.0.7-16.el9_2", "openssl", "openssl-devel", "openssl-libs", "openssl-perl")},
		{ID: "ALSA-2023:5453", Ecosystem: "AlmaLinux:9", Type: advisory.Security, Severity: advisory.Important,
			Issued: day("2023-10-05"), Title: "Important: glibc security update", RebootSuggested: true,
			CVEs:     []string{"CVE-2023-4527", "CVE-2023-4806", "CVE-2023-4911"},
			Packages: pkgs("2.34-60.el9_2.7", "glibc", "glibc-common", "glibc-minimal-langpack")},
		{ID: "ALSA-2022:7314", Ecosystem: "AlmaLinux:9", Type: advisory.Security, Severity: advisory.Moderate,
			Issued: day("2022-11-01"), Title: "Moderate: zlib security update",
			CVEs:     []string{"CVE-2022-37434"},
			Packages: pkgs("1.2.11-32.el9_0", "zlib", "zlib-devel")},
		{ID: "ALSA-2023:0338", Ecosystem: "AlmaLinux:9", Type: advisory.Security, Severity: advisory.Moderate,
			Issued: day("2023-01-23"), Title: "Moderate: libxml2 security update",
			CVEs:     []string{"CVE-2022-40303", "CVE-2022-40304"},
			Packages: pkgs("2.9.13-3.el9_1", "libxml2", "python3-libxml2")},
	}
}

// UBIInventory returns the 179 packages installed in Red Hat's ubi9/ubi
// aarch64 image of 2022-05-03 (the module's
// testdata/installed-inventory/claircore-ubi9/ubi9_ubi-aarch64-rpm-manifest.tsv).
// The catalog gives no binary epoch, so the source package's epoch stands
// in for it.
func UBIInventory() ([]protocol.Package, error) {
	fx, err := fixtures.Dir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(fx, "installed-inventory", "claircore-ubi9", "ubi9_ubi-aarch64-rpm-manifest.tsv")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ps []protocol.Package
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, "name\t") || line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			return nil, fmt.Errorf("%s:%d: %d fields, want 7", path, n, len(f))
		}
		epoch := "0"
		// srpm_nevra is name-epoch:version-release.src; the epoch is the
		// digits between the last '-' before ':' and the ':'.
		if i := strings.IndexByte(f[5], ':'); i > 0 {
			j := strings.LastIndexByte(f[5][:i], '-')
			epoch = f[5][j+1 : i]
		}
		ps = append(ps, protocol.Package{Name: f[0], Epoch: epoch, Version: f[1], Release: f[2], Arch: f[3]})
	}
	return ps, sc.Err()
}

// Match returns a MatchFunc over advs with the plain rule the conformance
// suite needs: an installed package named in an advisory (and of its arch,
// when the advisory gives one) is affected when older than the fix, on any
// release. The
// server's real matching, with module streams and arch rules, is
// pkg/applicability's; the store only stores what it is given.
func Match(advs []advisory.Advisory) store.MatchFunc {
	type fix struct {
		id string
		p  advisory.Package
	}
	byName := map[string][]fix{}
	for _, a := range advs {
		for _, p := range a.Packages {
			byName[p.Name] = append(byName[p.Name], fix{a.ID, p})
		}
	}
	return func(_ string, pkgs []protocol.Package) ([]store.Finding, error) {
		var fs []store.Finding
		for _, p := range pkgs {
			inst := rpmver.EVR{Epoch: p.Epoch, Version: p.Version, Release: p.Release}
			for _, f := range byName[p.Name] {
				if f.p.Arch != "" && f.p.Arch != p.Arch && p.Arch != "noarch" {
					continue
				}
				fs = append(fs, store.Finding{Advisory: f.id, Package: p.Name, Arch: p.Arch,
					Installed: inst.String(), Fixed: f.p.EVR.String(), Affected: rpmver.Compare(inst, f.p.EVR) < 0})
			}
		}
		return fs, nil
	}
}
