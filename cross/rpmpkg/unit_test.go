package rpmpkg

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/cross/internal/crosstest"
)

// TestUnitFilesParse has the real systemd-analyze read each unit shipped: an
// option misspelt or a bad value (WatchdogSec=2 mins) is reported as
// "FILE:LINE: ..." and fails the test. What verify cannot check here (the
// binary is not installed, there is no booted systemd) is ignored.
func TestUnitFilesParse(t *testing.T) {
	analyze := crosstest.Tool(t, "systemd-analyze")
	for _, unit := range []string{"rpmfleet-agent.service", "rpmfleet-server.service"} {
		t.Run(unit, func(t *testing.T) {
			b, err := packaging.ReadFile("files/" + unit)
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(t.TempDir(), unit)
			if err := os.WriteFile(f, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out, _ := crosstest.Command(t.TempDir(), []string{"SYSTEMD_LOG_LEVEL=warning"}, analyze, "verify", "--man=no", f).CombinedOutput()
			bad := regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(f)+`:\d+: .*$`).FindAllString(string(out), -1)
			if len(bad) > 0 {
				t.Errorf("systemd-analyze verify:\n%s", strings.Join(bad, "\n"))
			}
			// The test can fail: a broken copy is caught.
			broken := strings.Replace(string(b), "[Service]", "[Service]\nWatchdogSecs=1min", 1)
			if err := os.WriteFile(f, []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			out, _ = crosstest.Command(t.TempDir(), nil, analyze, "verify", "--man=no", f).CombinedOutput()
			if !strings.Contains(string(out), "WatchdogSecs") {
				t.Errorf("a misspelt option went unnoticed:\n%s", out)
			}
		})
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "StateDirectory=rpmfleet", "ExecReload=/bin/kill -HUP $MAINPID", "KillMode=mixed"} {
		b, _ := packaging.ReadFile("files/rpmfleet-agent.service")
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want)).Match(b) {
			t.Errorf("agent unit lacks %q", want)
		}
	}
}
