// Package selfexec runs the running test binary again, as the child of a
// test that must kill or limit a real process.
//
// make test-emulated runs arm64 and armv7 test binaries under qemu-user on a
// machine without binfmt_misc (a container), where the kernel cannot exec
// them: a child started the plain way fails with ENOEXEC. Command then runs
// the binary through the same qemu-user.
package selfexec

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

var (
	once     sync.Once
	self     string
	emulator string
	probeErr error
)

// emulators are the qemu-user programs make deps installs, by GOARCH.
var emulators = map[string]string{"arm64": "qemu-aarch64-static", "arm": "qemu-arm-static"}

// Command returns a command that runs this binary with args, through
// qemu-user when the kernel cannot run it.
func Command(args ...string) (*exec.Cmd, error) {
	once.Do(probe)
	if probeErr != nil {
		return nil, probeErr
	}
	if emulator != "" {
		return exec.Command(emulator, append([]string{self}, args...)...), nil
	}
	return exec.Command(self, args...), nil
}

// probe finds this binary and tries to run it once (listing no tests).
func probe() {
	self, probeErr = os.Executable()
	if probeErr != nil {
		return
	}
	err := exec.Command(self, "-test.list=^$").Run()
	if !errors.Is(err, syscall.ENOEXEC) {
		return // it runs, or fails for a reason the real child will show
	}
	name := emulators[runtime.GOARCH]
	path, lerr := exec.LookPath(name)
	if name == "" || lerr != nil {
		probeErr = fmt.Errorf("selfexec: cannot run the %s test binary %s (%v), and no qemu-user for it (%q): run make deps", runtime.GOARCH, self, err, name)
		return
	}
	emulator = path
}
