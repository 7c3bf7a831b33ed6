package dashboard_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestDevicePageShowsPlainUpdates: a cycle of allow-listed updates (no
// advisory; a Pi kernel and firmware) is listed in the device's history
// with what it installed, where an advisory's cycle names its advisories.
func TestDevicePageShowsPlainUpdates(t *testing.T) {
	e := newEnv(t, false)
	when := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	kernel := protocol.Package{Name: "raspberrypi2-kernel4", Version: "6.1.31", Release: "v8.1.el9", Arch: "aarch64"}
	firmware := protocol.Package{Name: "raspberrypi2-firmware", Version: "6.1.31", Release: "v8.1.el9", Arch: "aarch64"}
	cycle := protocol.CycleResult{ID: 1, Outcome: protocol.OutcomeApplied, RebootNeeded: true, After: []protocol.Package{kernel, firmware},
		Started: when, Finished: when.Add(time.Minute)}
	e.enroll(t, "pi-kitchen", nil, alma92, kitchenPackages, cycle)
	b := e.browser(t)
	b.login(protocol.RoleReadOnly)
	code, body, _ := b.get("/device?name=pi-kitchen")
	if code != http.StatusOK {
		t.Fatalf("device page = %d\n%s", code, body)
	}
	if !strings.Contains(body, "no advisory: raspberrypi2-kernel4-6.1.31-v8.1.el9 raspberrypi2-firmware-6.1.31-v8.1.el9") {
		t.Errorf("device page lacks the plain cycle's packages:\n%s", body)
	}
}
