package rpmtest

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// HostArch is the arch this machine's rpm installs without --ignorearch
// (rpm --eval %{_arch}). A test binary cross-built for arm64 and run under
// qemu-user-static (make test-emulated) still drives the host's rpm, so the
// packages it builds for the real rpm to install are of this arch, not of
// runtime.GOARCH.
var HostArch = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("rpm", "--eval", "%{_arch}").Output()
	if err != nil {
		return "", fmt.Errorf("rpmtest: rpm --eval %%{_arch}: %w", err)
	}
	arch := strings.TrimSpace(string(out))
	if arch == "" || strings.ContainsAny(arch, "%{} \t") {
		return "", fmt.Errorf("rpmtest: rpm --eval %%{_arch} printed %q, not an arch", out)
	}
	return arch, nil
})
