// Package metrics writes the agent's node_exporter textfile: what a
// Prometheus scraping node_exporter's textfile collector learns of the
// agent (update cycles by outcome, the last successful cycle, the plan's
// pending advisories by severity, signed messages refused by reason, the
// report queue's depth).
//
// Threat model. The file is read by node_exporter, which exposes it to
// whoever scrapes the host. Label values come from the agent's own
// constants and the server's signed plan, never from the network unsigned;
// still every value is escaped as the text format requires (backslash,
// double quote, newline), so a severity holding a quote cannot forge a
// sample. The file is replaced atomically (pkg/durable), so a scrape never
// sees half a file, and it is written 0644 without secrets.
package metrics

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/durable"
)

// Snapshot is what the textfile shows.
type Snapshot struct {
	// Cycles counts the update cycles that ended, by outcome ("success",
	// "rolled-back", "failed"), since the agent started.
	Cycles map[string]uint64
	// LastSuccess is when a cycle last succeeded; zero when none has.
	LastSuccess time.Time
	// Pending counts the plan's advisories not applied now, by severity.
	Pending map[string]int
	// NoticesRefused counts the signed messages refused, by reason.
	NoticesRefused map[string]uint64
	// Queued is how many reports wait for delivery.
	Queued int
}

// Render writes s in the Prometheus text exposition format.
func Render(w io.Writer, s Snapshot) error {
	var b bytes.Buffer
	family(&b, "rpmfleet_agent_cycles_total", "counter", "Update cycles ended since the agent started, by outcome.")
	for _, k := range slices.Sorted(maps.Keys(s.Cycles)) {
		fmt.Fprintf(&b, "rpmfleet_agent_cycles_total{outcome=\"%s\"} %d\n", escape(k), s.Cycles[k])
	}
	family(&b, "rpmfleet_agent_last_success_timestamp_seconds", "gauge", "When an update cycle last succeeded, as a Unix time; 0 when none has.")
	last := int64(0)
	if !s.LastSuccess.IsZero() {
		last = s.LastSuccess.Unix()
	}
	fmt.Fprintf(&b, "rpmfleet_agent_last_success_timestamp_seconds %d\n", last)
	family(&b, "rpmfleet_agent_pending_advisories", "gauge", "The plan's advisories not applied now, by severity.")
	for _, k := range slices.Sorted(maps.Keys(s.Pending)) {
		fmt.Fprintf(&b, "rpmfleet_agent_pending_advisories{severity=\"%s\"} %d\n", escape(k), s.Pending[k])
	}
	family(&b, "rpmfleet_agent_notices_refused_total", "counter", "Signed messages refused since the agent started, by reason.")
	for _, k := range slices.Sorted(maps.Keys(s.NoticesRefused)) {
		fmt.Fprintf(&b, "rpmfleet_agent_notices_refused_total{reason=\"%s\"} %d\n", escape(k), s.NoticesRefused[k])
	}
	family(&b, "rpmfleet_agent_report_queue", "gauge", "Reports waiting for delivery to the server.")
	fmt.Fprintf(&b, "rpmfleet_agent_report_queue %d\n", s.Queued)
	_, err := w.Write(b.Bytes())
	return err
}

// Write replaces the textfile at path with s, atomically.
func Write(path string, s Snapshot) error {
	if err := durable.Write(path, 0o644, func(w io.Writer) error { return Render(w, s) }); err != nil {
		return fmt.Errorf("write metrics textfile: %w", err)
	}
	return nil
}

func family(b *bytes.Buffer, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// escape escapes a label value as the text format requires.
var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escape(s string) string { return escaper.Replace(s) }
