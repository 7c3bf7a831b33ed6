package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestLogFormat: --log-format before the command chooses the format, an
// unknown one is refused with the flag named, and an unknown RPMFLEET_LOG
// is said, not silently taken as info.
func TestLogFormat(t *testing.T) {
	t.Setenv("RPMFLEET_LOG", "loud")
	t.Setenv("RPMFLEET_LOG_FORMAT", "")
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"--log-format=json", "version"}, &stdout, &stderr); code != ExitOK {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), `"level":"WARN","msg":"log level ignored","env":"RPMFLEET_LOG"`) {
		t.Errorf("stderr %q, want a JSON warning naming RPMFLEET_LOG", stderr.String())
	}
	stderr.Reset()
	if code := Main(t.Context(), []string{"--log-format", "syslog", "version"}, &stdout, &stderr); code != ExitUsage {
		t.Errorf("--log-format syslog: exit %d, want %d", code, ExitUsage)
	}
	if !strings.Contains(stderr.String(), `unknown log format "syslog"`) {
		t.Errorf("stderr %q, want the unknown format named", stderr.String())
	}
}
