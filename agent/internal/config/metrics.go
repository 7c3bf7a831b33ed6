package config

// Metrics is the [metrics] section: where the agent writes its
// node_exporter textfile (agent/internal/metrics).
//
//	[metrics]
//	textfile = "/var/lib/node_exporter/textfile_collector/rpmfleet.prom"
type Metrics struct {
	// Textfile is the file's absolute path; "" writes none.
	Textfile string
}

func (d *decoder) metrics(t *table) Metrics {
	var m Metrics
	if t == nil {
		return m
	}
	m.Textfile = d.absPath(t, "textfile")
	t.done()
	return m
}
