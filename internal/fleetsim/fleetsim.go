// Package fleetsim simulates a fleet of rpmfleet agents against real
// servers, many virtual devices in one process, to test and measure the
// server at scale (issue 15): each device enrols with a real enrolment
// token, reports its package set over the real HTTP API, holds a real MQTT
// session (paho, as the agent's push transport) on which it verifies feed
// notices and commands with the agent's own verifier (pkg/notice), and
// fetches and verifies its signed plan. Package sets come from a real
// image manifest, perturbed per device (Perturb); an rpm transaction is
// simulated by changing the set and reporting the change as a delta, as
// the agent does after an update cycle.
//
// The agent's HTTP client (agent/internal/client) is internal to the
// agent, so requests are made here from the same wire types
// (pkg/protocol). Every loop is bounded: at most Options.Concurrency
// requests are in flight, whatever the number of devices. It talks to
// loopback servers only: it is a test tool, and its devices' credentials
// are kept in memory.
package fleetsim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Options configure a Fleet.
type Options struct {
	// Servers are the API base URLs ("http://127.0.0.1:8080"), every one a
	// replica of one fleet. Device i sends to Servers[i mod len] first and
	// fails over to the next on a connection error or a 5xx answer.
	Servers []string
	// Brokers are the MQTT URLs ("tcp://127.0.0.1:1883"); device i
	// connects to Brokers[i mod len] first and to the others when it is
	// lost. Empty: the broker the device's enrolment named.
	Brokers []string
	// Devices is how many virtual devices there are.
	Devices int
	// Base is the image's package set every device starts from
	// (ReadManifest); Variants is how many distinct perturbations of it
	// the fleet holds (device i has Perturb(Base, i mod Variants)).
	Base     []protocol.Package
	Variants int
	// Info is what each device says about itself; its Hostname is the
	// device's name.
	Info protocol.DeviceInfo
	// Prefix starts each device's name ("sim-" when empty).
	Prefix string
	// Concurrency bounds the requests (and MQTT connects) in flight; 64
	// when 0.
	Concurrency int
	// Sessions is how many devices (the first ones) hold an MQTT session:
	// Connect, Connected, WaitFeed and FeedLatencies are about them. All
	// when 0. A process's open files bound it (two per session on
	// loopback), not the fleet's size.
	Sessions int
	// HTTP is the client; a new one with a 30 s timeout when nil.
	HTTP *http.Client
	// Log receives the simulator's logs; nil discards them.
	Log *slog.Logger
}

// Fleet is a set of virtual devices.
type Fleet struct {
	opts    Options
	log     *slog.Logger
	devices []*Device
}

// Device is one virtual device.
type Device struct {
	Index int
	Name  string
	// ID, Credential and Key are what enrolment gave.
	ID, Credential string
	Key            ed25519.PublicKey
	Broker         string

	mu       sync.Mutex // guards pkgs, changed, acked, reports, verifier state
	pkgs     []protocol.Package
	changed  bool // pkgs changed since the last acknowledged report
	reports  int
	acked    []string // ids of the reports the server acknowledged
	planETag string
	verifier *notice.Verifier

	session  *session
	feedSeq  atomic.Uint64 // the newest feed notice accepted
	feedAt   atomic.Int64  // when it arrived, Unix nanoseconds
	commands atomic.Int64  // commands accepted
}

// New makes a fleet of opts.Devices devices, not yet enrolled.
func New(opts Options) (*Fleet, error) {
	if len(opts.Servers) == 0 {
		return nil, errors.New("fleetsim: no server")
	}
	if opts.Devices <= 0 || len(opts.Base) == 0 {
		return nil, fmt.Errorf("fleetsim: %d devices of %d packages: need at least one of each", opts.Devices, len(opts.Base))
	}
	if opts.Variants <= 0 {
		opts.Variants = 1
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.Prefix == "" {
		opts.Prefix = "sim-"
	}
	if opts.Sessions <= 0 || opts.Sessions > opts.Devices {
		opts.Sessions = opts.Devices
	}
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: opts.Concurrency, DialContext: (&spreadDialer{d: net.Dialer{Timeout: 5 * time.Second}}).DialContext}}
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{opts: opts, log: log.With("component", "fleetsim")}
	variants := map[int][]protocol.Package{}
	for i := range opts.Devices {
		v := i % opts.Variants
		if variants[v] == nil {
			variants[v] = Perturb(opts.Base, v)
		}
		f.devices = append(f.devices, &Device{Index: i, Name: opts.Prefix + strconv.Itoa(i), pkgs: variants[v]})
	}
	return f, nil
}

// Devices returns the fleet's devices.
func (f *Fleet) Devices() []*Device { return f.devices }

// eachOf runs fn for every device of ds on Concurrency workers, until ctx
// ends, and returns the errors joined (at most ten, and how many there
// were).
func (f *Fleet) eachOf(ctx context.Context, ds []*Device, fn func(context.Context, *Device) error) error {
	work := make(chan *Device)
	var mu sync.Mutex
	var errs []error
	n := 0
	var wg sync.WaitGroup
	for range min(f.opts.Concurrency, len(ds)) {
		wg.Go(func() {
			for d := range work {
				if err := fn(ctx, d); err != nil {
					mu.Lock()
					n++
					if len(errs) < 10 {
						errs = append(errs, fmt.Errorf("%s: %w", d.Name, err))
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, d := range ds {
		select {
		case work <- d:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if n > 0 {
		return fmt.Errorf("fleetsim: %d of %d devices failed: %w", n, len(ds), errors.Join(errs...))
	}
	return ctx.Err()
}

// errServer is a status the next replica may answer better: 5xx.
var errServer = errors.New("fleetsim: server error")

// attempts bounds how often do goes round every server when each failed
// or was too busy (5xx, 429), waiting a little longer each time.
const attempts = 10

// do sends one request for device d, to its first server and then the
// others, and decodes a 2xx JSON answer into out. It returns the status.
// When every server failed, it tries them all again after a pause, at
// most attempts times.
func (f *Fleet) do(ctx context.Context, d *Device, method, path, bearer string, header http.Header, body, out any) (int, http.Header, []byte, error) {
	var err error
	for a := range attempts {
		var code int
		var h http.Header
		var b []byte
		code, h, b, err = f.try(ctx, d, method, path, bearer, header, body, out)
		if err == nil || !errors.Is(err, errAllFailed) {
			return code, h, b, err
		}
		select {
		case <-ctx.Done():
			return 0, nil, nil, ctx.Err()
		case <-time.After(time.Duration(a+1)*200*time.Millisecond + rand.N(200*time.Millisecond)):
		}
	}
	return 0, nil, nil, err
}

// errAllFailed is every server failing one request.
var errAllFailed = errors.New("every server failed")

func (f *Fleet) try(ctx context.Context, d *Device, method, path, bearer string, header http.Header, body, out any) (int, http.Header, []byte, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return 0, nil, nil, err
		}
	}
	var last error
	for k := range f.opts.Servers {
		base := f.opts.Servers[(d.Index+k)%len(f.opts.Servers)]
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(raw))
		if err != nil {
			return 0, nil, nil, err
		}
		req.Header.Set(protocol.VersionHeader, strconv.Itoa(protocol.Version))
		if raw != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := f.opts.HTTP.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return 0, nil, nil, ctx.Err()
			}
			last = err
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if err != nil {
			last = err
			continue
		}
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			last = fmt.Errorf("%w: %s %s: %d %s", errServer, method, path, resp.StatusCode, bytes.TrimSpace(b))
			continue
		}
		if resp.StatusCode/100 != 2 {
			return resp.StatusCode, resp.Header, b, nil
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return resp.StatusCode, resp.Header, b, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
			}
		}
		return resp.StatusCode, resp.Header, b, nil
	}
	return 0, nil, nil, fmt.Errorf("%s %s: %w: %w", method, path, errAllFailed, last)
}

// Enroll enrols every device not enrolled yet with token (an enrolment
// token with uses for all), pinning the notice key the server gives.
func (f *Fleet) Enroll(ctx context.Context, token string) error {
	return f.EnrollSome(ctx, token, len(f.devices))
}

// EnrollSome enrols the next n devices not enrolled yet with token: a
// token has at most protocol.MaxEnrollTokenUses uses, so a larger fleet
// enrols with several.
func (f *Fleet) EnrollSome(ctx context.Context, token string, n int) error {
	var ds []*Device
	for _, d := range f.devices {
		if len(ds) == n {
			break
		}
		d.mu.Lock()
		if d.ID == "" {
			ds = append(ds, d)
		}
		d.mu.Unlock()
	}
	return f.eachOf(ctx, ds, func(ctx context.Context, d *Device) error {
		info := f.opts.Info
		info.Hostname = d.Name
		var resp protocol.EnrollResponse
		code, _, body, err := f.do(ctx, d, http.MethodPost, protocol.PathEnroll, "",
			nil, protocol.EnrollRequest{Token: token, Name: d.Name, Device: info}, &resp)
		if err != nil {
			return err
		}
		if code != http.StatusOK && code != http.StatusCreated {
			return fmt.Errorf("enroll: %d %s", code, bytes.TrimSpace(body))
		}
		v, err := notice.NewVerifier(notice.VerifierOptions{Keys: []ed25519.PublicKey{resp.NoticeKey}})
		if err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
		d.mu.Lock()
		d.ID, d.Credential, d.Key, d.Broker, d.verifier = resp.DeviceID, resp.Credential, resp.NoticeKey, resp.BrokerURL, v
		d.mu.Unlock()
		return nil
	})
}

// Result is what one round of requests measured.
type Result struct {
	// OK counts the requests answered as asked.
	OK int
	// Latencies are the times of the OK requests.
	Latencies []time.Duration
	// Took is the round's wall time.
	Took time.Duration
}

// Percentile is the p-th percentile (0-100) of the latencies, 0 for none.
func (r Result) Percentile(p float64) time.Duration {
	return Percentile(r.Latencies, p)
}

// Percentile is the p-th percentile (0-100) of ds, 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// rounds measures fn over every device.
func (f *Fleet) round(ctx context.Context, fn func(context.Context, *Device) (bool, error)) (Result, error) {
	return f.roundOf(ctx, f.devices, fn)
}

// roundOf measures fn over the devices ds.
func (f *Fleet) roundOf(ctx context.Context, ds []*Device, fn func(context.Context, *Device) (bool, error)) (Result, error) {
	var mu sync.Mutex
	var r Result
	start := time.Now()
	err := f.eachOf(ctx, ds, func(ctx context.Context, d *Device) error {
		t := time.Now()
		ok, err := fn(ctx, d)
		if ok {
			took := time.Since(t)
			mu.Lock()
			r.OK++
			r.Latencies = append(r.Latencies, took)
			mu.Unlock()
		}
		return err
	})
	r.Took = time.Since(start)
	return r, err
}

// Report makes every device report: its full set the first time, after
// that a delta when its set changed (Transact), else a full report again.
// A report the server acknowledged is remembered (Acked).
func (f *Fleet) Report(ctx context.Context) (Result, error) {
	return f.round(ctx, f.report)
}

// ReportChanged makes only the devices whose set changed (Transact) since
// their last acknowledged report report: the hourly deltas alone, without
// the unchanged devices' daily reports.
func (f *Fleet) ReportChanged(ctx context.Context) (Result, error) {
	var ds []*Device
	for _, d := range f.devices {
		d.mu.Lock()
		if d.changed {
			ds = append(ds, d)
		}
		d.mu.Unlock()
	}
	return f.roundOf(ctx, ds, f.report)
}

func (f *Fleet) report(ctx context.Context, d *Device) (bool, error) {
	d.mu.Lock()
	if d.ID == "" {
		d.mu.Unlock()
		return false, errors.New("report: not enrolled")
	}
	d.reports++
	id := d.Name + "-r" + strconv.Itoa(d.reports)
	info := f.opts.Info
	info.Hostname = d.Name
	pkgs := d.pkgs
	d.mu.Unlock()
	r := protocol.Report{ID: id, Time: time.Now().UTC(), Device: info,
		Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}
	var resp protocol.ReportResponse
	code, _, body, err := f.do(ctx, d, http.MethodPost, protocol.PathReport, d.Credential, nil, r, &resp)
	if err != nil {
		return false, err
	}
	if code != http.StatusOK {
		return false, fmt.Errorf("report %s: %d %s", id, code, bytes.TrimSpace(body))
	}
	d.mu.Lock()
	d.acked = append(d.acked, id)
	if slices.Equal(d.pkgs, pkgs) {
		d.changed = false
	}
	d.mu.Unlock()
	return true, nil
}

// Packages returns the device's package set now.
func (d *Device) Packages() []protocol.Package {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pkgs
}

// Acked returns the ids of the reports the server acknowledged for d.
func (d *Device) Acked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.acked)
}

// Transact simulates an rpm transaction on a tenth of the devices (every
// device whose index is round mod 10): one package moves a rebuild on, as
// an update would. Their next report carries it.
func (f *Fleet) Transact(round int) int {
	n := 0
	for _, d := range f.devices {
		if d.Index%10 != round%10 {
			continue
		}
		d.mu.Lock()
		pkgs := slices.Clone(d.pkgs)
		i := (d.Index/10 + round) % len(pkgs)
		pkgs[i].Release += ".u"
		d.pkgs = pkgs
		d.changed = true
		d.mu.Unlock()
		n++
	}
	return n
}

// Plans makes every device fetch its signed plan (with the ETag of the
// last one, so an unchanged plan is a 304) and verify it with the pinned
// key and replay guard, as the agent does.
func (f *Fleet) Plans(ctx context.Context) (Result, error) {
	return f.PlansOf(ctx, len(f.devices))
}

// PlansOf is Plans for the first n devices only.
func (f *Fleet) PlansOf(ctx context.Context, n int) (Result, error) {
	return f.roundOf(ctx, f.devices[:min(max(n, 0), len(f.devices))], func(ctx context.Context, d *Device) (bool, error) {
		d.mu.Lock()
		etag := d.planETag
		d.mu.Unlock()
		h := http.Header{}
		if etag != "" {
			h.Set("If-None-Match", etag)
		}
		code, rh, body, err := f.do(ctx, d, http.MethodGet, protocol.PathPlan, d.Credential, h, nil, nil)
		if err != nil {
			return false, err
		}
		switch code {
		case http.StatusNotModified:
			return true, nil
		case http.StatusOK:
		default:
			return false, fmt.Errorf("plan: %d %s", code, bytes.TrimSpace(body))
		}
		n, err := d.verifier.Verify(body, notice.KindPlan, d.ID)
		if err != nil {
			return false, fmt.Errorf("plan: %w", err)
		}
		var p protocol.Plan
		if err := json.Unmarshal(n.Body, &p); err != nil {
			return false, fmt.Errorf("plan: decode: %w", err)
		}
		d.mu.Lock()
		d.planETag = rh.Get("ETag")
		d.mu.Unlock()
		return true, nil
	})
}

// FeedSeq returns the sequence number of the newest feed notice the device
// accepted and when it arrived (zero values for none).
func (d *Device) FeedSeq() (uint64, time.Time) {
	at := d.feedAt.Load()
	if at == 0 {
		return d.feedSeq.Load(), time.Time{}
	}
	return d.feedSeq.Load(), time.Unix(0, at)
}

// Commands returns how many signed commands the device accepted.
func (d *Device) Commands() int64 { return d.commands.Load() }
