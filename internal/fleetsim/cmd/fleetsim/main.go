// Command fleetsim drives running rpmfleet-server replicas with simulated
// devices (internal/fleetsim) and prints what it measured: enrolment,
// MQTT sessions, ingest throughput, plan fetch p99, import time, push
// fan-out p99 to every session, CVE query p99. Loopback servers only.
//
// At 100,000 devices: -sessions 10000 (a process's open files bound the
// sessions, two per session on loopback), -delta-only (the hourly round
// is the changed tenth alone), -plans 10000, -cve-queries 20.
//
//	fleetsim -servers http://127.0.0.1:8080,http://127.0.0.1:8081 \
//	  -brokers tcp://127.0.0.1:1883,tcp://127.0.0.1:1884 \
//	  -admin-token-file DATA/admin.token -devices 10000 \
//	  -import testdata/almalinux-osv/almalinux9.jsonl.gz
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/fleetsim"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

func main() {
	var o opts
	flag.StringVar(&o.servers, "servers", "http://127.0.0.1:8080", "API base URLs of the replicas, comma-separated")
	flag.StringVar(&o.brokers, "brokers", "", "MQTT URLs of the replicas' brokers, comma-separated; empty: the one enrolment names; \"off\": no sessions")
	flag.StringVar(&o.tokenFile, "admin-token-file", "", "file holding an admin token (required)")
	flag.IntVar(&o.devices, "devices", 1000, "simulated devices")
	flag.IntVar(&o.variants, "variants", 200, "distinct package sets among them")
	flag.IntVar(&o.concurrency, "concurrency", 64, "requests in flight at most")
	flag.StringVar(&o.manifest, "manifest", "testdata/installed-inventory/claircore-ubi9/ubi9_ubi-aarch64-rpm-manifest.tsv", "image rpm manifest the devices start from")
	flag.StringVar(&o.importFile, "import", "", "advisory file to import once the devices are connected (push fan-out and import time)")
	flag.StringVar(&o.cve, "cve", "CVE-2023-2650", "CVE to ask about")
	flag.IntVar(&o.cveQueries, "cve-queries", 200, "CVE questions to time")
	flag.IntVar(&o.sessions, "sessions", 0, "devices (the first ones) that hold an MQTT session; 0: all")
	flag.IntVar(&o.plans, "plans", 0, "devices (the first ones) that fetch their plan; 0: all")
	flag.BoolVar(&o.deltaOnly, "delta-only", false, "in the second round only the tenth that changed a package reports; otherwise every device does")
	flag.StringVar(&o.prefix, "prefix", "sim-", "device name prefix (a new one per run on one database)")
	flag.StringVar(&o.pids, "rss-pids", "", "server process ids whose resident set to read while the sessions are up, comma-separated")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	res, err := run(ctx, o, log)
	// What was measured before a failure is printed too: a long run
	// that fails at its last step keeps its figures.
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(res)
	if err != nil {
		log.Error("fleetsim failed", "err", err)
		os.Exit(1)
	}
}

type opts struct {
	servers, brokers, tokenFile, manifest, importFile, cve, prefix, pids string
	devices, variants, concurrency, cveQueries, sessions, plans          int
	deltaOnly                                                            bool
}

// results are the figures, in milliseconds where a time.
type results struct {
	Devices          int     `json:"devices"`
	EnrollS          float64 `json:"enroll_s"`
	ConnectS         float64 `json:"connect_s,omitempty"`
	Sessions         int     `json:"sessions,omitempty"`
	ReportsPerS      float64 `json:"reports_per_s"`
	ReportP99Ms      float64 `json:"report_p99_ms"`
	DeltaReports     int     `json:"delta_reports"`
	DeltaReportsPerS float64 `json:"delta_reports_per_s"`
	DeltaReportP99Ms float64 `json:"delta_report_p99_ms"`
	Plans            int     `json:"plans"`
	PlanP99Ms        float64 `json:"plan_p99_ms"`
	PlanPerS         float64 `json:"plans_per_s"`
	ImportS          float64 `json:"import_s,omitempty"`
	ImportChanged    int     `json:"import_changed,omitempty"`
	PushReached      int     `json:"push_reached,omitempty"`
	PushP50Ms        float64 `json:"push_p50_ms"`
	PushP99Ms        float64 `json:"push_p99_ms"`
	CVEP50Ms         float64 `json:"cve_p50_ms"`
	CVEP99Ms         float64 `json:"cve_p99_ms"`
	CVEExposed       int     `json:"cve_exposed"`
	CVEPageP50Ms     float64 `json:"cve_page_p50_ms"`
	CVEPageP99Ms     float64 `json:"cve_page_p99_ms"`
	// RSSMiB is each server's resident set, read with the sessions up.
	RSSMiB []float64 `json:"rss_mib,omitempty"`
}

// rss reads a process's resident set from /proc, in MiB.
func rss(pid string) (float64, error) {
	b, err := os.ReadFile("/proc/" + strings.TrimSpace(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%f kB", &kb); err != nil {
				return 0, fmt.Errorf("pid %s: VmRSS %q: %w", pid, rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("pid %s: no VmRSS", pid)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// loopbackOnly refuses a URL whose host is not a loopback address: the
// simulator is a load generator for this machine, never a way to flood
// another.
func loopbackOnly(list string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("%q: not a loopback address", s)
		}
		out = append(out, s)
	}
	return out, nil
}

func run(ctx context.Context, o opts, log *slog.Logger) (results, error) {
	servers, err := loopbackOnly(o.servers)
	if err != nil {
		return results{}, fmt.Errorf("-servers: %w", err)
	}
	var brokers []string
	if o.brokers != "off" {
		if brokers, err = loopbackOnly(o.brokers); err != nil {
			return results{}, fmt.Errorf("-brokers: %w", err)
		}
	}
	if o.tokenFile == "" {
		return results{}, errors.New("-admin-token-file: required")
	}
	tb, err := os.ReadFile(o.tokenFile)
	if err != nil {
		return results{}, err
	}
	admin := fleetsim.Admin{URL: servers[0], Token: strings.TrimSpace(string(tb))}
	base, err := fleetsim.ReadManifest(o.manifest)
	if err != nil {
		return results{}, err
	}
	sim, err := fleetsim.New(fleetsim.Options{Servers: servers, Brokers: brokers, Devices: o.devices, Base: base,
		Variants: o.variants, Prefix: o.prefix, Concurrency: o.concurrency, Sessions: o.sessions, Log: log,
		Info: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.0", Arch: "aarch64", AgentVersion: "fleetsim"}})
	if err != nil {
		return results{}, err
	}
	r := results{Devices: o.devices}
	// One token for each protocol.MaxEnrollTokenUses devices.
	t := time.Now()
	for left := o.devices; left > 0; left -= protocol.MaxEnrollTokenUses {
		n := min(left, protocol.MaxEnrollTokenUses)
		tok, err := admin.EnrollToken(ctx, n)
		if err != nil {
			return r, err
		}
		if err := sim.EnrollSome(ctx, tok, n); err != nil {
			return r, err
		}
	}
	r.EnrollS = time.Since(t).Seconds()
	log.Info("enrolled", "devices", o.devices, "took", time.Since(t))
	if o.brokers != "off" {
		t = time.Now()
		if err := sim.Connect(ctx); err != nil {
			return r, err
		}
		defer sim.Disconnect()
		r.ConnectS = time.Since(t).Seconds()
		r.Sessions = sim.Connected()
		log.Info("connected", "sessions", r.Sessions, "took", time.Since(t))
	}
	rep, err := sim.Report(ctx)
	if err != nil {
		return r, err
	}
	r.ReportsPerS = float64(rep.OK) / rep.Took.Seconds()
	r.ReportP99Ms = ms(rep.Percentile(99))
	log.Info("reported", "ok", rep.OK, "took", rep.Took)
	// A tenth of the fleet changed a package: the hourly delta.
	sim.Transact(1)
	if o.deltaOnly {
		rep, err = sim.ReportChanged(ctx)
	} else {
		rep, err = sim.Report(ctx)
	}
	if err != nil {
		return r, err
	}
	r.DeltaReports = rep.OK
	r.DeltaReportsPerS = float64(rep.OK) / rep.Took.Seconds()
	r.DeltaReportP99Ms = ms(rep.Percentile(99))
	log.Info("second round reported", "ok", rep.OK, "took", rep.Took)
	planned := o.plans
	if planned <= 0 {
		planned = o.devices
	}
	pl, err := sim.PlansOf(ctx, planned)
	if err != nil {
		return r, err
	}
	r.Plans = pl.OK
	r.PlanP99Ms = ms(pl.Percentile(99))
	r.PlanPerS = float64(pl.OK) / pl.Took.Seconds()
	log.Info("plans fetched", "ok", pl.OK, "took", pl.Took)
	if o.importFile != "" {
		b, err := os.ReadFile(o.importFile)
		if err != nil {
			return r, err
		}
		var seq uint64
		for _, d := range sim.Devices() {
			s, _ := d.FeedSeq()
			seq = max(seq, s)
		}
		t = time.Now()
		imp, err := admin.Import(ctx, b)
		if err != nil {
			return r, err
		}
		r.ImportS = time.Since(t).Seconds()
		r.ImportChanged = imp.Changed
		answered := time.Now()
		log.Info("imported", "changed", imp.Changed, "took", time.Since(t))
		if o.brokers != "off" && imp.Changed > 0 {
			wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			r.PushReached = sim.WaitFeed(wctx, seq)
			cancel()
			// From the import's answer: the notice is published as the
			// import commits, just before it answers.
			lat := sim.FeedLatencies(seq, answered)
			r.PushP50Ms, r.PushP99Ms = ms(fleetsim.Percentile(lat, 50)), ms(fleetsim.Percentile(lat, 99))
		}
	}
	if o.pids != "" {
		for _, p := range strings.Split(o.pids, ",") {
			m, err := rss(p)
			if err != nil {
				return r, err
			}
			r.RSSMiB = append(r.RSSMiB, m)
		}
	}
	// The whole answer (every exposed device), then its first page of 100
	// devices, as the dashboard and a paging client ask.
	for _, limit := range []int{0, 100} {
		var cl []time.Duration
		for range o.cveQueries {
			t := time.Now()
			c, err := admin.CVE(ctx, o.cve, limit)
			if err != nil {
				return r, err
			}
			cl = append(cl, time.Since(t))
			if limit == 0 {
				r.CVEExposed = len(c.Exposed)
			}
		}
		p50, p99 := ms(fleetsim.Percentile(cl, 50)), ms(fleetsim.Percentile(cl, 99))
		if limit == 0 {
			r.CVEP50Ms, r.CVEP99Ms = p50, p99
		} else {
			r.CVEPageP50Ms, r.CVEPageP99Ms = p50, p99
		}
	}
	return r, nil
}
