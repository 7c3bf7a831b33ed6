package rpmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Image is what a device root is made of: its /etc/os-release and its
// installed packages (NewDevRoot).
type Image struct {
	OSRelease []byte
	Packages  []Package
}

// AlmaLinux8OpenJDK is an AlmaLinux 8.10 aarch64 device that runs Java: Red
// Hat's real UBI 8.0 aarch64 image (testdata/installed-inventory, 176
// packages) as almalinux-deploy leaves a converted one, with redhat-release
// replaced by almalinux-release 8.10 and AlmaLinux 8.10's os-release, and
// OpenJDK 17 as AlmaLinux 8.5 shipped it, java-17-openjdk-headless
// 1:17.0.1.0.12-2.el8_5, with the packages it requires. Its OpenJDK is
// named by the advisories the AlmaLinux OSV database writes for AlmaLinux 8
// and 9 in one record (ALSA-2024:4568 and others).
func AlmaLinux8OpenJDK() (Image, error) {
	return image("ubi8_ubi-aarch64-rpm-manifest.tsv", "almalinux-8.10.os-release",
		Package{Name: "almalinux-release", Version: "8.10", Release: "1.el8", Arch: "aarch64"},
		Package{Name: "java-17-openjdk-headless", Epoch: "1", Version: "17.0.1.0.12", Release: "2.el8_5", Arch: "aarch64"},
		Package{Name: "tzdata-java", Version: "2021e", Release: "1.el8", Arch: "noarch"},
		Package{Name: "copy-jdk-configs", Version: "4.0", Release: "2.el8", Arch: "noarch"},
		Package{Name: "lksctp-tools", Version: "1.0.18", Release: "3.el8", Arch: "aarch64"},
	)
}

// AlmaLinux9OpenJDK is an AlmaLinux 9.6 aarch64 device that runs Java: Red
// Hat's real UBI 9.0 aarch64 image (179 packages) with redhat-release
// replaced by almalinux-release 9.6 and AlmaLinux 9.6's os-release, and
// OpenJDK 17 as AlmaLinux 9.3 shipped it, java-17-openjdk-headless
// 1:17.0.9.0.9-2.el9, with the packages it requires.
func AlmaLinux9OpenJDK() (Image, error) {
	return image("ubi9_ubi-aarch64-rpm-manifest.tsv", "almalinux-9.6.os-release",
		Package{Name: "almalinux-release", Version: "9.6", Release: "1.el9", Arch: "aarch64"},
		Package{Name: "java-17-openjdk-headless", Epoch: "1", Version: "17.0.9.0.9", Release: "2.el9", Arch: "aarch64"},
		Package{Name: "tzdata-java", Version: "2023c", Release: "1.el9", Arch: "noarch"},
		Package{Name: "copy-jdk-configs", Version: "4.0", Release: "3.el9", Arch: "noarch"},
		Package{Name: "lksctp-tools", Version: "1.0.19", Release: "2.el9", Arch: "aarch64"},
	)
}

// image reads a manifest of testdata/installed-inventory/claircore-ubi9
// and an os-release of testdata/os-release, drops redhat-release and adds
// extra.
func image(manifest, osRelease string, extra ...Package) (Image, error) {
	dir, err := FixturesDir()
	if err != nil {
		return Image{}, err
	}
	pkgs, err := ReadManifest(filepath.Join(dir, "installed-inventory", "claircore-ubi9", manifest))
	if err != nil {
		return Image{}, err
	}
	n := len(pkgs)
	pkgs = slices.DeleteFunc(pkgs, func(p Package) bool { return p.Name == "redhat-release" })
	if len(pkgs) != n-1 {
		return Image{}, fmt.Errorf("rpmtest: %s: %d redhat-release packages, want 1", manifest, n-len(pkgs))
	}
	for _, e := range extra {
		if slices.ContainsFunc(pkgs, func(p Package) bool { return p.Name == e.Name }) {
			return Image{}, fmt.Errorf("rpmtest: %s already holds %s", manifest, e.Name)
		}
	}
	osr, err := os.ReadFile(filepath.Join(dir, "os-release", osRelease))
	if err != nil {
		return Image{}, fmt.Errorf("rpmtest: %w", err)
	}
	return Image{OSRelease: osr, Packages: append(pkgs, extra...)}, nil
}
