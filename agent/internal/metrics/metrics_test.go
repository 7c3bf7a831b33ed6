package metrics

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTextfilePassesPromtool: the textfile written for a snapshot passes
// the real `promtool check metrics` (format and lint), holds each value
// given, replaces the previous file without leaving a temporary one, and a
// label value holding a quote, a backslash and a newline is escaped rather
// than forging a sample.
func TestTextfilePassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool (the prometheus package, .ci/deps.sh) is needed: %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "rpmfleet.prom")
	tests := []struct {
		name string
		snap Snapshot
		want []string
	}{
		{name: "empty", snap: Snapshot{}, want: []string{"rpmfleet_agent_last_success_timestamp_seconds 0\n", "rpmfleet_agent_report_queue 0\n"}},
		{name: "full", snap: Snapshot{
			Cycles:         map[string]uint64{"success": 3, "rolled-back": 1},
			LastSuccess:    time.Unix(1764950000, 0),
			Pending:        map[string]int{"Critical": 2, "Moderate": 5},
			NoticesRefused: map[string]uint64{"bad_signature": 7},
			Queued:         4,
		}, want: []string{
			`rpmfleet_agent_cycles_total{outcome="rolled-back"} 1`,
			`rpmfleet_agent_cycles_total{outcome="success"} 3`,
			"rpmfleet_agent_last_success_timestamp_seconds 1764950000\n",
			`rpmfleet_agent_pending_advisories{severity="Critical"} 2`,
			`rpmfleet_agent_notices_refused_total{reason="bad_signature"} 7`,
			"rpmfleet_agent_report_queue 4\n",
		}},
		{name: "label to escape", snap: Snapshot{Pending: map[string]int{"x\"} 1\nrpmfleet_agent_report_queue 99\n\\": 1}},
			want: []string{`rpmfleet_agent_pending_advisories{severity="x\"} 1\nrpmfleet_agent_report_queue 99\n\\"} 1`, "rpmfleet_agent_report_queue 0\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Write(path, tt.snap); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("textfile lacks %q:\n%s", w, b)
				}
			}
			if strings.Contains(string(b), "\nrpmfleet_agent_report_queue 99") {
				t.Errorf("a label value forged a sample:\n%s", b)
			}
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = strings.NewReader(string(b))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool check metrics: %v\n%s\n---\n%s", err, out, b)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("folder holds %d files, want the textfile alone", len(entries))
			}
			if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o644 {
				t.Errorf("textfile mode: %v, %v; want 0644", info, err)
			}
		})
	}
}
