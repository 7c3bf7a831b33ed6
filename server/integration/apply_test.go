package integration

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestApplyThenReport is the story closed by the agent itself: the device
// is exposed, rpmfleet-agent apply tries the fix from a signed repository
// and rolls it back (health check fails), the server shows the advisory
// failed on that device; apply again with a passing check, report, and the
// device is patched, pending a reboot.
func TestApplyThenReport(t *testing.T) {
	work := t.TempDir()
	osv := filepath.Join(fixtures(t), "almalinux-osv", "almalinux9.jsonl.gz")
	rel := filepath.Join(fixtures(t), "os-release", "almalinux-9.2-host.os-release")
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	if out, err := exec.Command(filepath.Join(binDir, "demorepo"), "-osv", osv, "-advisory", "ALSA-2023:3722",
		"-device-release", rel, "-arch", arch, "-out", work).CombinedOutput(); err != nil {
		t.Fatalf("demorepo (run make deps if rpm is missing): %v\n%s", err, out)
	}
	root, state := filepath.Join(work, "device"), filepath.Join(work, "state")

	srv := startServer(t, filepath.Join(t.TempDir(), "data"))
	admin := []string{"RPMFLEET_SERVER=" + srv.url, "RPMFLEET_TOKEN=" + srv.admin}
	must(t, admin, "rpmfleet", "import", osv)
	tok := strings.TrimSpace(must(t, admin, "rpmfleet", "enroll-token", "create").stdout)
	must(t, nil, "rpmfleet-agent", "enroll", "--server", srv.url, "--token", tok, "--name", "pi-apply", "--state-dir", state, "--root", root)
	must(t, nil, "rpmfleet-agent", "report", "--once", "--root", root, "--state-dir", state)
	if got := cve(t, admin, "CVE-2023-2650"); len(got.Exposed) == 0 {
		t.Fatalf("before apply: %+v, want pi-apply exposed", got)
	}

	apply := []string{"apply", "--root", root, "--repo", filepath.Join(work, "repo"), "--gpgkey", filepath.Join(work, "RPM-GPG-KEY-demo"),
		"--advisory", "ALSA-2023:3722", "--state-dir", state}
	if r := run(t, nil, "rpmfleet-agent", append(apply, "--health-check", "false")...); r.code != 3 {
		t.Fatalf("apply with a failing health check: exit %d, want 3 (rolled back)\n%s", r.code, r.stderr)
	}
	rep := must(t, nil, "rpmfleet-agent", "report", "--once", "--root", root, "--state-dir", state)
	if !strings.Contains(rep.stdout, "1 update cycles") {
		t.Errorf("report after the rollback: %s, want one cycle", rep.stdout)
	}
	if st := deviceStatus(t, admin, "pi-apply", "ALSA-2023:3722"); st != protocol.StatusFailed {
		t.Errorf("after the rollback the device's status is %q, want failed", st)
	}

	must(t, nil, "rpmfleet-agent", append(apply, "--health-check", "true")...)
	rep = must(t, nil, "rpmfleet-agent", "report", "--once", "--root", root, "--state-dir", state)
	if !strings.Contains(rep.stdout, "delta inventory") || !strings.Contains(rep.stdout, "1 update cycles") {
		t.Errorf("report after the update: %s, want a delta with one cycle", rep.stdout)
	}
	got := cve(t, admin, "CVE-2023-2650")
	if len(got.Exposed) != 0 || len(got.Patched) == 0 {
		t.Errorf("after apply: %+v, want pi-apply patched", got)
	}
	// The agent counts openssl-libs among the packages that take effect
	// only after a reboot, and this machine has not rebooted since: the
	// device is pending a reboot, which the CVE query counts as patched.
	if st := deviceStatus(t, admin, "pi-apply", "ALSA-2023:3722"); st != protocol.StatusPendingReboot {
		t.Errorf("after the update the device's status is %q, want pending-reboot", st)
	}
}

func deviceStatus(t *testing.T, env []string, device, adv string) protocol.Status {
	t.Helper()
	var d protocol.Device
	if err := json.Unmarshal([]byte(must(t, env, "rpmfleet", "device", device, "--json").stdout), &d); err != nil {
		t.Fatal(err)
	}
	for _, a := range d.Advisories {
		if a.Advisory == adv {
			return a.Status
		}
	}
	return protocol.StatusNotAffected
}
