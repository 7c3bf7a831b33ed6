package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMetricsTextfile: with [metrics] textfile set, a daemon that applies
// a real signed plan with the real rpm writes a node_exporter textfile
// counting the committed cycle, with a last success time, that the real
// promtool check metrics accepts.
func TestMetricsTextfile(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool (the prometheus package, .ci/deps.sh) is needed: %v", err)
	}
	w := newWorld(t, worldOpts{})
	w.broker = "mqtt://127.0.0.1:1" // nothing listens there
	w.srv.setPlan(t, advisoryPlan(fileSHA256(t, w.rpms["demo-lib-1.1"])))
	textfile := filepath.Join(t.TempDir(), "textfile_collector", "rpmfleet.prom")
	if err := os.MkdirAll(filepath.Dir(textfile), 0o755); err != nil {
		t.Fatal(err)
	}
	w.writeConfig(t, policyTOML("apply", "open")+fmt.Sprintf("\n[metrics]\ntextfile = %q\n", textfile))
	w.start(t)

	var text string
	waitFor(t, 60*time.Second, "the textfile to count the cycle", func() bool {
		b, _ := os.ReadFile(textfile)
		text = string(b)
		return strings.Contains(text, `rpmfleet_agent_cycles_total{outcome="success"} 1`)
	})
	if strings.Contains(text, "rpmfleet_agent_last_success_timestamp_seconds 0\n") {
		t.Errorf("a committed cycle but no last success time:\n%s", text)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\n---\n%s", err, out, text)
	}
}
