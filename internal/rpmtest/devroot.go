package rpmtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// DBPath is where NewDevRoot's rpm database lives inside the root, as on
// Enterprise Linux. Debian's rpm defaults to ~/.rpmdb, so pass
// --dbpath /var/lib/rpm (or use the root/.rpmdb link NewDevRoot makes).
const DBPath = "/var/lib/rpm"

// NewDevRoot makes root a device root: it writes osRelease to
// ROOT/etc/os-release (unless nil), builds stubs for pkgs, and installs
// them all in one call of the real rpm,
//
//	rpm --root ROOT --dbpath /var/lib/rpm -i --justdb --nodeps --ignorearch --noscripts --nosignature ...
//
// so the database (sqlite, as on EL9) is written by rpm itself. It also
// links ROOT/root/.rpmdb to ../var/lib/rpm, where Debian's rpm and dnf look
// by default. Packages already in root's database make rpm fail.
func NewDevRoot(root string, osRelease []byte, pkgs []Package) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("rpmtest: device root: %w", err)
	}
	if osRelease != nil {
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			return fmt.Errorf("rpmtest: device root: %w", err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc", "os-release"), osRelease, 0o644); err != nil {
			return fmt.Errorf("rpmtest: device root: %w", err)
		}
	}
	for _, dir := range []string{DBPath, "/root"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			return fmt.Errorf("rpmtest: device root: %w", err)
		}
	}
	link := filepath.Join(root, "root", ".rpmdb")
	if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink("../var/lib/rpm", link); err != nil {
			return fmt.Errorf("rpmtest: device root: %w", err)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	tmp, err := os.MkdirTemp("", "rpmtest-devroot-")
	if err != nil {
		return fmt.Errorf("rpmtest: %w", err)
	}
	defer os.RemoveAll(tmp)
	rpms, err := Build(tmp, pkgs...)
	if err != nil {
		return err
	}
	args := append([]string{
		"--root", root, "--dbpath", DBPath, "--define", "_db_backend sqlite",
		"-i", "--justdb", "--nodeps", "--ignorearch", "--noscripts", "--nosignature",
	}, rpms...)
	cmd := exec.Command("rpm", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("rpmtest: rpm -i --justdb of %d stubs into %s: %w: %s", len(rpms), root, err, lastLines(out.String(), 15))
	}
	return nil
}
