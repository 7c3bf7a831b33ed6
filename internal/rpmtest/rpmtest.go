// Package rpmtest makes real RPM files and device roots with the real rpm
// tools, for tests, benchmarks and the demo.
//
// Build writes stub packages (exact name, epoch, version, release, arch,
// modularity label, optional files, requires and provides) with rpmbuild,
// many per rpmbuild run, and keeps them in an on-disk cache keyed by their
// content, so a suite that needs hundreds of stubs pays for rpmbuild once.
// ReadManifest reads the real RHEL image manifests under testdata/,
// and NewDevRoot turns such a list into a device root whose rpm database was
// written by the real rpm, the same way an installer would have written it.
//
// Nothing here is meant for production: the packages carry no real
// content and are not signed.
package rpmtest

import "github.com/rpmfleet/rpmfleet/internal/fixtures"

// FixturesDir returns the fixture folder, testdata/ at the module root
// (package fixtures).
func FixturesDir() (string, error) { return fixtures.Dir() }
