package integration

import (
	"path/filepath"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestConvertedRHELDeviceIsMatchedAsAlmaLinux: a device whose rpm database
// is Red Hat's UBI 9 aarch64 image (the real manifest, redhat-release
// included) but whose os-release says AlmaLinux 9.2, as after a conversion
// with almalinux-deploy, reports to a server holding only the AlmaLinux 9
// OSV database. It must show as exposed to CVE-2023-2650 through
// ALSA-2023:3722: the server matches a package set against its devices'
// os-release. It used to read the release from the set's redhat-release,
// match it against Red Hat advisories only, and list nothing, silently.
func TestConvertedRHELDeviceIsMatchedAsAlmaLinux(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "data"))
	admin := []string{"RPMFLEET_SERVER=" + srv.url, "RPMFLEET_TOKEN=" + srv.admin}
	must(t, admin, "rpmfleet", "import", filepath.Join(fixtures(t), "almalinux-osv", "almalinux9.jsonl.gz"))

	pkgs, err := rpmtest.ReadManifest(filepath.Join(fixtures(t), "installed-inventory", "claircore-ubi9", "ubi9_ubi-aarch64-rpm-manifest.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var ssl rpmtest.Package
	hasRelease := false
	for _, p := range pkgs {
		switch p.Name {
		case "openssl-libs":
			ssl = p
		case "redhat-release":
			hasRelease = true
		}
	}
	if ssl.Name == "" || !hasRelease {
		t.Fatalf("the UBI 9 manifest lacks openssl-libs or redhat-release")
	}
	root := devRoot(t, pkgs...) // with AlmaLinux 9.2's os-release

	var tok protocol.EnrollTokenCreateResponse
	if code, raw := call(t, "POST", srv.url+protocol.PathEnrollTokens, srv.admin, protocol.EnrollTokenCreateRequest{}, &tok); code != 200 {
		t.Fatalf("create enrolment token: %d %s", code, raw)
	}
	state := t.TempDir()
	must(t, nil, "rpmfleet-agent", "enroll", "--server", srv.url, "--token", tok.Token, "--name", "converted-pi", "--state-dir", state, "--root", root)
	must(t, nil, "rpmfleet-agent", "report", "--once", "--root", root, "--state-dir", state)

	got := cve(t, admin, "CVE-2023-2650")
	epoch := ssl.Epoch
	if epoch == "" {
		epoch = "0"
	}
	want := protocol.CVEExposure{Device: "converted-pi", Advisory: "ALSA-2023:3722", Package: "openssl-libs",
		Installed: epoch + ":" + ssl.Version + "-" + ssl.Release, Fixed: "1:3.0.7-16.el9_2"}
	if !containsExposure(got.Exposed, want) {
		t.Errorf("cve CVE-2023-2650 = %+v\nwant it to list %+v", got, want)
	}
}
