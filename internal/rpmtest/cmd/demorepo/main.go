// Command demorepo makes what make demo needs to show an update applied end
// to end: a throwaway Ed25519 signing key, a signed repository holding one
// real AlmaLinux advisory (as updateinfo.xml) and stub packages of the
// versions it names plus the versions the device has, and a device root
// with the old versions installed by the real rpm.
//
//	go run ./internal/rpmtest/cmd/demorepo -osv almalinux9.jsonl.gz -advisory ALSA-2023:3722 \
//	    -device-release os-release -out DIR
//
// DIR gets RPM-GPG-KEY-demo, repo/ and device/. The packages are stubs that
// carry each package's exact name, epoch, version, release and arch, and one
// small file, so rpm really replaces something.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/osv"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

func main() {
	src := flag.String("osv", "", "OSV file holding the advisory")
	eco := flag.String("ecosystem", "AlmaLinux:9", "the advisory's ecosystem")
	id := flag.String("advisory", "ALSA-2023:3722", "advisory to publish")
	osRelease := flag.String("device-release", "", "os-release file for the device root")
	arch := flag.String("arch", "aarch64", "the device's arch")
	out := flag.String("out", "", "folder to make")
	flag.Parse()
	if *src == "" || *osRelease == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*src, *eco, *id, *osRelease, *arch, *out); err != nil {
		fmt.Fprintln(os.Stderr, "demorepo:", err)
		os.Exit(1)
	}
}

// installed is what the demo device has of each package the advisory
// fixes: the versions of the RHEL 9.0 image.
var installed = map[string]string{
	"openssl":      "1:3.0.1-23.el9_0",
	"openssl-libs": "1:3.0.1-23.el9_0",
}

func run(src, eco, id, osRelease, arch, out string) error {
	advs, err := osv.ParseFile(src, osv.Options{Ecosystem: eco})
	if err != nil {
		return err
	}
	var a *advisory.Advisory
	for i := range advs {
		if advs[i].ID == id {
			a = &advs[i]
		}
	}
	if a == nil {
		return fmt.Errorf("%s: no advisory %s for %s", src, id, eco)
	}
	rel, err := os.ReadFile(osRelease)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}

	// Old and new versions of every package the device has and the
	// advisory fixes.
	var olds, news []rpmtest.Package
	for _, p := range a.Packages {
		evr, ok := installed[p.Name]
		if !ok {
			continue
		}
		old := stub(p.Name, evr, arch)
		nw := stub(p.Name, p.EVR.String(), arch)
		olds, news = append(olds, old), append(news, nw)
	}
	if len(olds) == 0 {
		return fmt.Errorf("%s fixes none of the demo device's packages", id)
	}
	pkgDir := filepath.Join(out, "build")
	oldFiles, err := rpmtest.Build(pkgDir, olds...)
	if err != nil {
		return err
	}
	newFiles, err := rpmtest.Build(pkgDir, news...)
	if err != nil {
		return err
	}
	key, cleanup, err := rpmtest.GenerateKey(rpmtest.KeyEd25519, "rpmfleet-demo")
	defer cleanup()
	if err != nil {
		return err
	}
	all := append(append([]string{}, oldFiles...), newFiles...)
	if err := rpmtest.Sign(key, all...); err != nil {
		return err
	}
	pub, err := os.ReadFile(key.PublicKeyFile)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "RPM-GPG-KEY-demo"), pub, 0o644); err != nil {
		return err
	}
	a.Ecosystem = ""
	xml, err := rpmtest.UpdateinfoXML([]advisory.Advisory{*a}, []string{arch})
	if err != nil {
		return err
	}
	if err := rpmtest.NewRepo(filepath.Join(out, "repo"), all, xml); err != nil {
		return err
	}
	if err := rpmtest.NewDevRoot(filepath.Join(out, "device"), rel, olds); err != nil {
		return err
	}
	fmt.Printf("%s: device with %d packages to update, repository signed by %s\n", out, len(olds), key.Fingerprint)
	return nil
}

func stub(name, evr, arch string) rpmtest.Package {
	e := rpmver.MustParseEVR(evr)
	return rpmtest.Package{
		Name: name, Epoch: e.Epoch, Version: e.Version, Release: e.Release, Arch: arch,
		Summary: "rpmfleet demo stub of " + name,
		Files:   map[string]string{"/usr/share/rpmfleet-demo/" + name + ".txt": name + " " + evr + "\n"},
	}
}
