// Package metrics tells monitoring how the fleet server is doing: its
// Prometheus metrics (/metrics, in the Prometheus text format) and its
// health endpoints (/healthz, /readyz, health.go).
//
// The metrics live in a Registry of their own, never the global one, and
// reach the rest of the server through small hooks, not globals: the fleet
// service is handed the Metrics as its fleet.Observer (reports, imports,
// publications), the embedded broker is read through the two methods of
// Broker, and the fleet's gauges (devices by status and last-seen age,
// exposure by severity) are read from the store when Prometheus scrapes,
// at most once every MinRefresh, so two scrapers or a short scrape
// interval cost the store nothing more.
//
// Threat model. The metrics say how large the fleet is and how exposed:
// the API serves them only to an admin token (any role), as it does the
// summary; no label carries a device name, a CVE or anything a device
// wrote, so a device cannot grow the series count or put text into a
// scrape. /healthz and /readyz need no login and say only "ok", "ready" or
// "not ready"; why a check failed goes to the log.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/version"
	"github.com/rpmfleet/rpmfleet/server/internal/broker"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// DefaultMinRefresh is how long the fleet's gauges read from the store
// are reused before a scrape reads them again.
const DefaultMinRefresh = 10 * time.Second

// scrapeTimeout bounds the store queries behind one scrape.
const scrapeTimeout = 10 * time.Second

// Fleet is what the gauges read from the store (store.Queries has both).
// When it is also a store.DeviceDetails, the devices are read through its
// DeviceSummaries, which costs one aggregate rather than two subqueries
// per device.
type Fleet interface {
	Devices(ctx context.Context, f store.DeviceFilter) ([]protocol.DeviceSummary, error)
	Summary(ctx context.Context) (protocol.Summary, error)
}

// Broker is the embedded MQTT broker's side of the metrics
// (*broker.Broker has both).
type Broker interface {
	Connections() int
	Counters() broker.Counters
}

// Options configure Metrics.
type Options struct {
	// Fleet is read for the device and exposure gauges; nil leaves them
	// out.
	Fleet Fleet
	// Broker is the embedded broker; nil (no broker, or an external one)
	// leaves the MQTT metrics out.
	Broker Broker
	// MinRefresh is how long the fleet's gauges are reused; zero means
	// DefaultMinRefresh.
	MinRefresh time.Duration
	// Now is the clock the last-seen ages are measured on; nil means
	// time.Now.
	Now func() time.Time
	// Log receives what failed while collecting; nil discards it.
	Log *slog.Logger
}

// Metrics is the server's metrics and their registry.
type Metrics struct {
	reg  *prometheus.Registry
	opts Options
	log  *slog.Logger

	reports       *prometheus.CounterVec
	ingest        prometheus.Histogram
	imports       *prometheus.CounterVec
	webhooks      *prometheus.CounterVec
	importTime    prometheus.Histogram
	importRead    prometheus.Counter
	importChanged prometheus.Counter
	publish       *prometheus.HistogramVec
	publishErrors *prometheus.CounterVec
	storeErrors   *prometheus.CounterVec
}

// Age buckets of the rpmfleet_devices_last_seen gauge: a device is counted
// in the first bucket its last report's age fits, "older" past the last,
// "never" before its first report.
var ageBuckets = []struct {
	label string
	max   time.Duration
}{
	{"1h", time.Hour},
	{"6h", 6 * time.Hour},
	{"24h", 24 * time.Hour},
	{"7d", 7 * 24 * time.Hour},
	{"30d", 30 * 24 * time.Hour},
}

// New returns the metrics, registered in a registry of their own with
// the Go runtime's and the process's collectors.
func New(opts Options) *Metrics {
	if opts.MinRefresh <= 0 {
		opts.MinRefresh = DefaultMinRefresh
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: prometheus.NewRegistry(), opts: opts, log: log.With("component", "metrics")}
	m.reports = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rpmfleet_reports_ingested_total",
		Help: "Device reports handled, by result: stored, duplicate (an id already applied), refused (the report was malformed) or error (the store failed).",
	}, []string{"result"})
	m.ingest = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rpmfleet_report_ingest_duration_seconds",
		Help:    "Time from a report's arrival at the fleet service to its commit in the store (group commit included).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	m.imports = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rpmfleet_imports_total",
		Help: "Advisory imports, by result: ok, refused (bad input) or error.",
	}, []string{"result"})
	m.importTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rpmfleet_import_duration_seconds",
		Help:    "Time to store an import's advisories and bring every device's status up to date (reading the source not included).",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	})
	m.importRead = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rpmfleet_import_advisories_read_total",
		Help: "Advisories read by imports, one per (id, ecosystem).",
	})
	m.importChanged = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rpmfleet_import_advisories_changed_total",
		Help: "Advisory ids that imports added or changed.",
	})
	m.publish = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rpmfleet_push_publish_duration_seconds",
		Help:    "Time to hand a signed feed notice or command to the MQTT broker; the embedded broker fans it out to every subscriber within it.",
		Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5},
	}, []string{"kind"})
	m.publishErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rpmfleet_push_publish_errors_total",
		Help: "Feed notices and commands the broker did not take.",
	}, []string{"kind"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rpmfleet_webhook_attempts_total",
		Help: "Webhook delivery attempts, by event type and result: delivered, retrying (failed; another attempt is due) or failed (the last attempt failed).",
	}, []string{"event", "result"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rpmfleet_store_errors_total",
		Help: "Store operations that failed for the store's sake (not for bad input), by operation.",
	}, []string{"op"})
	for _, kind := range []string{"feed", "command"} {
		m.publish.WithLabelValues(kind)
		m.publishErrors.WithLabelValues(kind)
	}
	for _, r := range []string{"stored", "duplicate", "refused", "error"} {
		m.reports.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "refused", "error"} {
		m.imports.WithLabelValues(r)
	}
	for _, ev := range []string{protocol.WebhookExposure, protocol.WebhookRollback, protocol.WebhookSilent, protocol.WebhookRolloutPaused} {
		for _, r := range []string{"delivered", "retrying", "failed"} {
			m.webhooks.WithLabelValues(ev, r)
		}
	}
	for _, op := range []string{"report", "import", "scrape", "ready", "dashboard"} {
		m.storeErrors.WithLabelValues(op)
	}

	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "rpmfleet_build_info",
		Help:        "Always 1; the labels say which rpmfleet-server runs.",
		ConstLabels: prometheus.Labels{"version": version.String(), "goversion": goVersion},
	})
	info.Set(1)

	m.reg.MustRegister(m.reports, m.ingest, m.imports, m.importTime, m.importRead, m.importChanged,
		m.publish, m.publishErrors, m.storeErrors, m.webhooks, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.Fleet != nil {
		m.reg.MustRegister(&fleetCollector{m: m})
	}
	if opts.Broker != nil {
		m.reg.MustRegister(brokerCollector{b: opts.Broker})
	}
	return m
}

// Registry returns the registry, for a test to gather from.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format (or the
// protobuf or OpenMetrics one, as the scraper asks). A collector that
// fails leaves its metrics out of that scrape; the rest are served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             scrapeTimeout + 5*time.Second,
	})
}

// Observe counts and times one operation of the fleet service; it is the
// service's fleet.Observer.
func (m *Metrics) Observe(e fleet.Event) {
	switch e.Op {
	case fleet.OpReport:
		switch {
		case e.Err == nil && e.Duplicate:
			m.reports.WithLabelValues("duplicate").Inc()
		case e.Err == nil:
			m.reports.WithLabelValues("stored").Inc()
		case refused(e.Err):
			m.reports.WithLabelValues("refused").Inc()
		default:
			m.reports.WithLabelValues("error").Inc()
			m.StoreError("report")
		}
		if e.Err == nil {
			m.ingest.Observe(e.Took.Seconds())
		}
	case fleet.OpImport:
		switch {
		case e.Err == nil:
			m.imports.WithLabelValues("ok").Inc()
			m.importTime.Observe(e.Took.Seconds())
			m.importRead.Add(float64(e.Read))
			m.importChanged.Add(float64(e.Changed))
		case refused(e.Err):
			m.imports.WithLabelValues("refused").Inc()
		default:
			m.imports.WithLabelValues("error").Inc()
			m.StoreError("import")
		}
	case fleet.OpPublish:
		kind := "command"
		if e.Kind == "feed" {
			kind = "feed"
		}
		if e.Err != nil {
			m.publishErrors.WithLabelValues(kind).Inc()
			return
		}
		m.publish.WithLabelValues(kind).Observe(e.Took.Seconds())
	case fleet.OpWebhook:
		switch e.Kind {
		case protocol.WebhookExposure, protocol.WebhookRollback, protocol.WebhookSilent, protocol.WebhookRolloutPaused:
		default:
			return
		}
		switch e.Result {
		case "delivered", "retrying", "failed":
			m.webhooks.WithLabelValues(e.Kind, e.Result).Inc()
		}
	}
}

// StoreError counts one failed store operation; op is one of "report",
// "import", "scrape", "ready" or "dashboard".
func (m *Metrics) StoreError(op string) { m.storeErrors.WithLabelValues(op).Inc() }

// refused says whether err is the caller's fault (bad input, an unknown
// device, a cancelled request) rather than the store's.
func refused(err error) bool {
	for _, e := range []error{fleet.ErrBadRequest, store.ErrBadReport, store.ErrNotFound, store.ErrNameTaken,
		store.ErrTokenInvalid, store.ErrTokenExpired, store.ErrTokenUsedUp, store.ErrTokenRevoked,
		context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// fleetCollector reads the device and exposure gauges from the store,
// reusing a reading for MinRefresh.
type fleetCollector struct {
	m *Metrics

	mu   sync.Mutex // guards last and at, and serialises readings
	last []prometheus.Metric
	at   time.Time
}

var (
	devicesDesc = prometheus.NewDesc("rpmfleet_devices",
		"Enrolled devices by status: reporting (has reported), never_reported (enrolled, no report yet) or revoked.",
		[]string{"status"}, nil)
	lastSeenDesc = prometheus.NewDesc("rpmfleet_devices_last_seen",
		"Devices in service by the age of their last report: within 1h, 6h, 24h, 7d, 30d (each bucket counts only devices not in an earlier one), older, or never.",
		[]string{"age"}, nil)
	patchedDesc = prometheus.NewDesc("rpmfleet_devices_fully_patched",
		"Devices exposed to no advisory.", nil, nil)
	exposedDesc = prometheus.NewDesc("rpmfleet_devices_exposed",
		"Devices exposed to at least one advisory, by the severity of the worst one.",
		[]string{"severity"}, nil)
	exposuresDesc = prometheus.NewDesc("rpmfleet_exposures",
		"Device-advisory pairs affected or failed (each advisory a device still needs), by the device's worst severity.",
		[]string{"severity"}, nil)
	pendingRebootDesc = prometheus.NewDesc("rpmfleet_devices_pending_reboot",
		"Devices with an installed fix waiting for a reboot.", nil, nil)
	scrapeDesc = prometheus.NewDesc("rpmfleet_fleet_scrape_duration_seconds",
		"Time the last reading of the fleet's gauges from the store took.", nil, nil)
)

// severities are the severity names, least severe first.
var severities = []string{
	advisory.SeverityNone.String(), advisory.Low.String(), advisory.Moderate.String(),
	advisory.Important.String(), advisory.Critical.String(),
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{devicesDesc, lastSeenDesc, patchedDesc, exposedDesc, exposuresDesc, pendingRebootDesc, scrapeDesc} {
		ch <- d
	}
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.m.opts.Now()
	if c.last == nil || now.Sub(c.at) >= c.m.opts.MinRefresh || now.Before(c.at) {
		ms, err := c.read(now)
		if err != nil {
			c.m.StoreError("scrape")
			c.m.log.Warn("fleet gauges not read", "err", err)
			// The last good reading is better than none; with none,
			// the gauges are left out of this scrape.
		} else {
			c.last, c.at = ms, now
		}
	}
	for _, mt := range c.last {
		ch <- mt
	}
}

// read reads the fleet's gauges from the store.
func (c *fleetCollector) read(now time.Time) ([]prometheus.Metric, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	start := time.Now()
	list := c.m.opts.Fleet.Devices
	if dd, ok := c.m.opts.Fleet.(store.DeviceDetails); ok {
		list = dd.DeviceSummaries
	}
	devs, err := list(ctx, store.DeviceFilter{})
	if err != nil {
		return nil, err
	}
	sum, err := c.m.opts.Fleet.Summary(ctx)
	if err != nil {
		return nil, err
	}
	status := map[string]int{"reporting": 0, "never_reported": 0, "revoked": 0}
	ages := map[string]int{"older": 0, "never": 0}
	for _, b := range ageBuckets {
		ages[b.label] = 0
	}
	exposures := map[string]int{}
	pendingReboot := 0
	for _, d := range devs {
		if d.Revoked != nil {
			status["revoked"]++
			continue
		}
		if d.LastSeen.IsZero() {
			status["never_reported"]++
			ages["never"]++
			continue
		}
		status["reporting"]++
		age, label := now.Sub(d.LastSeen), "older"
		for _, b := range ageBuckets {
			if age <= b.max {
				label = b.label
				break
			}
		}
		ages[label]++
		if d.WorstSeverity != "" {
			exposures[d.WorstSeverity] += d.Affected
		}
		if d.PendingReboot > 0 {
			pendingReboot++
		}
	}
	var ms []prometheus.Metric
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ms = append(ms, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...))
	}
	for _, s := range []string{"reporting", "never_reported", "revoked"} {
		gauge(devicesDesc, status[s], s)
	}
	for _, b := range ageBuckets {
		gauge(lastSeenDesc, ages[b.label], b.label)
	}
	gauge(lastSeenDesc, ages["older"], "older")
	gauge(lastSeenDesc, ages["never"], "never")
	gauge(patchedDesc, sum.FullyPatched)
	for _, s := range severities {
		gauge(exposedDesc, sum.ExposedBySeverity[s], s)
		gauge(exposuresDesc, exposures[s], s)
	}
	gauge(pendingRebootDesc, pendingReboot)
	ms = append(ms, prometheus.MustNewConstMetric(scrapeDesc, prometheus.GaugeValue, time.Since(start).Seconds()))
	return ms, nil
}

// brokerCollector reads the embedded broker's counts at each scrape.
type brokerCollector struct{ b Broker }

var (
	mqttConnDesc = prometheus.NewDesc("rpmfleet_mqtt_connections",
		"MQTT clients logged in to the embedded broker.", nil, nil)
	mqttPendingDesc = prometheus.NewDesc("rpmfleet_mqtt_connections_pending",
		"MQTT connections accepted and not logged in yet.", nil, nil)
	mqttRefusedDesc = prometheus.NewDesc("rpmfleet_mqtt_connections_closed_total",
		"MQTT connections closed before logging in, by reason: too_many_pending (closed on arrival) or login_timeout.",
		[]string{"reason"}, nil)
	mqttAcceptErrDesc = prometheus.NewDesc("rpmfleet_mqtt_accept_errors_total",
		"Failed accepts on the embedded broker's listener (EMFILE and the like).", nil, nil)
)

func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mqttConnDesc, mqttPendingDesc, mqttRefusedDesc, mqttAcceptErrDesc} {
		ch <- d
	}
}

func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.b.Counters()
	ch <- prometheus.MustNewConstMetric(mqttConnDesc, prometheus.GaugeValue, float64(c.b.Connections()))
	ch <- prometheus.MustNewConstMetric(mqttPendingDesc, prometheus.GaugeValue, float64(n.Pending))
	ch <- prometheus.MustNewConstMetric(mqttRefusedDesc, prometheus.CounterValue, float64(n.Refused), "too_many_pending")
	ch <- prometheus.MustNewConstMetric(mqttRefusedDesc, prometheus.CounterValue, float64(n.TimedOut), "login_timeout")
	ch <- prometheus.MustNewConstMetric(mqttAcceptErrDesc, prometheus.CounterValue, float64(n.AcceptErrors))
}
