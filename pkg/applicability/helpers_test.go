package applicability

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/osv"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// sharedFixtures returns the fixture folder, testdata/ at the module root.
func sharedFixtures(tb testing.TB) string {
	tb.Helper()
	return fixtures.Path(tb, ".")
}

// loadOSV reads one file of the real AlmaLinux OSV database with the
// project's OSV parser, keeping one ecosystem.
func loadOSV(tb testing.TB, file, ecosystem string) []advisory.Advisory {
	tb.Helper()
	advs, err := osv.ParseFile(filepath.Join(sharedFixtures(tb), "almalinux-osv", file), osv.Options{Ecosystem: ecosystem})
	if err != nil {
		tb.Fatal(err)
	}
	return advs
}

// loadManifest reads a Red Hat container catalog rpm manifest (name, version,
// release, arch, nvra, srpm_nevra, ...) into installed packages. The catalog
// gives no binary epoch; the source package's epoch, which the binary
// packages of one spec share, is taken from srpm_nevra.
func loadManifest(tb testing.TB, path string) []inventory.Package {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var pkgs []inventory.Package
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "name\t") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 6 {
			tb.Fatalf("%s:%d: %d fields, want at least 6", path, i+1, len(f))
		}
		// srpm_nevra is name-epoch:version-release.src; the name may hold
		// dashes, the epoch is the digits between the last one and the colon.
		j := strings.IndexByte(f[5], ':')
		k := strings.LastIndexByte(f[5][:max(j, 0)], '-')
		if j < 0 || k < 0 {
			tb.Fatalf("%s:%d: srpm_nevra %q has no epoch", path, i+1, f[5])
		}
		epoch := f[5][k+1 : j]
		pkgs = append(pkgs, inventory.Package{
			Name: f[0],
			EVR:  rpmver.EVR{Epoch: epoch, Version: f[1], Release: f[2]},
			Arch: f[3],
		})
	}
	return pkgs
}

// render writes findings one line per exposed package, the way a reviewer
// reads them: "ALSA-2023:3722 openssl-libs.aarch64 1:3.0.1-23.el9_0 < 1:3.0.7-16.el9_2".
func render(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		for _, p := range f.Packages {
			out = append(out, fmt.Sprintf("%s %s.%s %s < %s", f.Advisory.ID, p.Installed.Name, p.Installed.Arch, p.Installed.EVR, p.Fixed.EVR))
		}
	}
	return out
}

// ids returns the advisory ids of the findings, in order.
func ids(fs []Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Advisory.ID
	}
	return out
}
