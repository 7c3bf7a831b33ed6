// Package rpmtest makes real RPM files and device roots with the real rpm
// tools, for tests, benchmarks and the demo.
//
// Build writes stub packages (exact name, epoch, version, release, arch,
// modularity label, optional files, requires and provides) with rpmbuild,
// many per rpmbuild run, and keeps them in an on-disk cache keyed by their
// content, so a suite that needs hundreds of stubs pays for rpmbuild once.
// ReadManifest reads the real RHEL image manifests under shared/fixtures,
// and NewDevRoot turns such a list into a device root whose rpm database was
// written by the real rpm, the same way an installer would have written it.
//
// Nothing here is meant for production: the packages carry no real
// content and are not signed.
package rpmtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// FixturesDir returns the shared fixture folder: shared/fixtures beside the
// module root, found by walking up from the working directory to go.mod.
// This holds in the development checkout and in CI, which clones the
// repository next to a copy of shared/.
func FixturesDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("rpmtest: fixtures: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("rpmtest: fixtures: no go.mod above the working directory")
		}
		dir = parent
	}
	fixtures := filepath.Join(filepath.Dir(dir), "shared", "fixtures")
	if _, err := os.Stat(fixtures); err != nil {
		return "", fmt.Errorf("rpmtest: fixtures: shared/ must sit beside the module root: %w", err)
	}
	return fixtures, nil
}
