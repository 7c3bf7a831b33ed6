package daemon

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/client"
	"github.com/rpmfleet/rpmfleet/agent/internal/config"
	"github.com/rpmfleet/rpmfleet/agent/internal/mqtt"
	"github.com/rpmfleet/rpmfleet/agent/internal/queue"
	"github.com/rpmfleet/rpmfleet/agent/internal/report"
	"github.com/rpmfleet/rpmfleet/agent/internal/statedir"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/durable"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Defaults for Options.
const (
	DefaultDebounce     = 2 * time.Second
	DefaultRebootGrace  = 5 * time.Minute
	DefaultPollRetryMin = 10 * time.Second
	// DefaultStatusRefresh keeps the status fresh on an idle device at
	// two wake-ups a minute.
	DefaultStatusRefresh = 30 * time.Second
)

// Files in the state dir.
const (
	guardFile = "notice-guard.json"
	planFile  = "plan-last.json"
)

// ErrNoNoticeKey: neither the enrolment nor the configuration pins the
// server's notice key, so no plan could be trusted.
var ErrNoNoticeKey = errors.New("daemon: no pinned notice key")

// Options configure Run.
type Options struct {
	// Config is the configuration to start with; ConfigPath the file it
	// came from, watched for changes ("" watches nothing).
	Config     *config.Config
	ConfigPath string
	// Credential is the device's enrolment (client.State.LoadCredential).
	Credential client.Credential
	// HTTPClient talks to the fleet server; nil means the credential's
	// (its pinned CA, when it has one).
	HTTPClient *http.Client
	// Info describes the device for reports.
	Info func() protocol.DeviceInfo
	Log  *slog.Logger
	// Reload asks for the configuration file to be read again (SIGHUP).
	Reload <-chan struct{}
	// Debounce is how long the rpm database must stay quiet before a
	// change is reported; DefaultDebounce when 0.
	Debounce time.Duration
	// SpoolDir is the folder bundles are dropped into; STATE_DIR/spool
	// when empty.
	SpoolDir string
	// SpoolMaxBytes bounds what a bundle's repo/ may hold;
	// DefaultSpoolMaxBytes when 0.
	SpoolMaxBytes int64
	// RebootCommand reboots the device; ["systemctl", "reboot"] when nil.
	// WallCommand broadcasts the warning before; ["wall"] when nil. It
	// gets the message as its last argument.
	RebootCommand, WallCommand []string
	// RebootGrace is the wait between the warning and the reboot;
	// DefaultRebootGrace when 0.
	RebootGrace time.Duration
	// Reboot holds the reboot coordination's seams (rebootlock.go).
	Reboot RebootOptions
	// PollRetryMin is the first backoff ceiling after a failed plan fetch;
	// DefaultPollRetryMin when 0. The ceiling doubles per failure up to the
	// poll interval.
	PollRetryMin time.Duration
	// ReportBackoff paces report redelivery (queue.Backoff defaults when
	// zero).
	ReportBackoff queue.Backoff
	// MQTTKeepAlive, MQTTMinBackoff and MQTTMaxBackoff tune the MQTT
	// client (its defaults when 0).
	MQTTKeepAlive, MQTTMinBackoff, MQTTMaxBackoff time.Duration
	// OnStatus, when set, gets every new status, on Run's goroutine; a
	// test seam, it must not block.
	OnStatus func(protocol.DeviceState)
	// StatusRefresh is how often the status is looked at for what changes
	// without an event (the MQTT link, the queue drained);
	// DefaultStatusRefresh when 0. A lost MQTT link shortens the poll
	// interval within this much.
	StatusRefresh time.Duration
	// StateHeartbeat is about how long the retained state topic goes
	// without fresh last_check and next_poll when nothing else in it
	// changed; the configuration's connected poll interval when 0.
	StateHeartbeat time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

type daemon struct {
	o        Options
	ctx      context.Context
	log      *slog.Logger
	cfg      *config.Config
	deviceID string
	keys     []ed25519.PublicKey
	ver      *notice.Verifier
	client   *client.Client
	rep      *report.Reporter
	mq       *mqtt.Client
	broker   string
	spool    string
	now      func() time.Time

	// standalone: no enrolment and no server; plans are derived from the
	// repositories (standalone.go) with repoClient, there is no verifier
	// unless notice_key is set, no reporter, and checkAfter asks for a
	// check once the running cycle ends.
	standalone bool
	repoClient *http.Client
	checkAfter bool
	// retryAfter holds automatic applies back after a failed standalone
	// cycle until the next scheduled check.
	retryAfter time.Time
	// ha publishes to Home Assistant (homeassistant.go); nil when off.
	ha *haPublisher

	status     protocol.DeviceState
	lastStatus []byte
	metrics    metricsState // [metrics] textfile (metrics.go)
	// The retained state last published on MQTT: its content without
	// the timestamps, its last_check, and when.
	stateKey   []byte
	stateCheck time.Time
	stateAt    time.Time

	// lastPoll is when the last successful plan fetch answered, and
	// pollJitter the jitter drawn then; linkUp whether the MQTT link was
	// up (connected and subscribed) at the last look. The next poll is
	// lastPoll + the interval linkUp selects + pollJitter.
	lastPoll   time.Time
	pollJitter time.Duration
	linkUp     bool

	plan      *savedPlan
	fetching  bool
	fetchMore bool
	failures  int
	force     []string // advisories an apply command forces
	planDirty bool     // a plan arrived during a cycle
	// prefetchedFor is the advisory set the last prefetch fetched
	// (download.go).
	prefetchedFor string

	running         *cycleJob
	enqueueFailures int // reports that could not be made, in a row

	// The spool (spool.go): its worker, whether it is busy, whether a
	// take is wanted, the moves waiting, and a taken bundle waiting for
	// the running cycle to end.
	sfs        *spoolFS
	spoolDone  chan spoolResult
	spoolBusy  bool
	spoolWant  bool
	spoolMoves []moveReq
	spoolHeld  *taken

	fetchDone chan fetchResult
	cycleDone chan cycleResult
	cfgCh     chan *config.Config
	cfgErr    chan error
	dbEvents  chan struct{}
	spoolEv   chan struct{}
	// serverBack wakes report delivery from its backoff.
	serverBack chan struct{}

	pollT, debounceT, windowT, rebootT *time.Timer
	rebootStage                        rebootStep  // where a needed reboot is (reboot.go)
	rb                                 rebootCoord // the reboot lock (rebootlock.go)
}

// Run runs the daemon until ctx is done, then stops at a step boundary:
// a running cycle is let finish its current step (never an rpm transaction
// half way; update.Run resumes the rest at the next start) and reports stay
// queued on disk. It returns nil on cancellation.
func Run(ctx context.Context, o Options) error {
	d, err := newDaemon(ctx, o)
	if err != nil {
		return err
	}
	if d.rep != nil {
		defer d.rep.Close()
	}
	return d.loop(ctx)
}

func newDaemon(ctx context.Context, o Options) (*daemon, error) {
	if o.Config == nil {
		return nil, errors.New("daemon: no configuration")
	}
	standalone := o.Credential.Credential == "" && o.Credential.DeviceID == ""
	if (standalone && o.Config != nil && o.Config.Server != "") || (!standalone && (o.Credential.Credential == "" || o.Credential.DeviceID == "")) {
		return nil, fmt.Errorf("daemon: %w (run rpmfleet-agent enroll, or leave server out of the configuration to run standalone)", client.ErrNotEnrolled)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Info == nil {
		o.Info = func() protocol.DeviceInfo { return protocol.DeviceInfo{} }
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.RebootGrace <= 0 {
		o.RebootGrace = DefaultRebootGrace
	}
	if o.StatusRefresh <= 0 {
		o.StatusRefresh = DefaultStatusRefresh
	}
	if o.PollRetryMin <= 0 {
		o.PollRetryMin = DefaultPollRetryMin
	}
	if o.RebootCommand == nil {
		o.RebootCommand = []string{"systemctl", "reboot"}
	}
	if o.WallCommand == nil {
		o.WallCommand = []string{"wall"}
	}
	cfg := o.Config
	d := &daemon{
		o: o, ctx: ctx, cfg: cfg, deviceID: o.Credential.DeviceID, now: o.Now,
		log:        o.Log.With("component", "daemon"),
		fetchDone:  make(chan fetchResult, 1),
		cycleDone:  make(chan cycleResult, 1),
		cfgCh:      make(chan *config.Config, 1),
		cfgErr:     make(chan error, 1),
		dbEvents:   make(chan struct{}, 1),
		spoolEv:    make(chan struct{}, 1),
		spoolDone:  make(chan spoolResult, 1),
		status:     protocol.DeviceState{State: protocol.StateStarting},
		standalone: standalone,
	}
	if standalone {
		d.deviceID = cfg.HomeAssistant.NodeID
		d.repoClient = newRepoHTTPClient()
	}
	if from, changed, err := statedir.Ensure(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	} else if changed {
		d.log.Warn("state dir was open to others; set to 0700", "dir", cfg.StateDir, "mode", fmt.Sprintf("%#o", from))
	}
	if err := d.makeVerifier(cfg); err != nil {
		return nil, err
	}
	if !standalone {
		if err := d.serverParts(cfg); err != nil {
			return nil, err
		}
	}
	d.spool = o.SpoolDir
	if d.spool == "" {
		d.spool = filepath.Join(cfg.StateDir, "spool")
	}
	if o.SpoolMaxBytes <= 0 {
		o.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	d.sfs = &spoolFS{dir: d.spool, stage: stagePath(cfg.StateDir), maxBytes: o.SpoolMaxBytes, log: d.log}
	d.loadPlan()
	d.ha = newHAPublisher(d)
	return d, nil
}

// serverParts makes what talks to the fleet server: its client and the
// report queue.
func (d *daemon) serverParts(cfg *config.Config) error {
	o := &d.o
	hc := o.HTTPClient
	if hc == nil {
		var err error
		if hc, err = o.Credential.HTTPClient(); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
	}
	if cfg.Server != "" && strings.TrimRight(cfg.Server, "/") != strings.TrimRight(o.Credential.Server, "/") {
		d.log.Warn("the configuration names another server than the enrolment; using the enrolment's", "config", cfg.Server, "enrolled", o.Credential.Server)
	}
	d.client = client.NewFailover(append([]string{o.Credential.Server}, cfg.Servers...), o.Credential.Credential, hc)
	// A report waiting out its backoff is retried at once when a plan
	// fetch shows the server is back.
	d.serverBack = make(chan struct{}, 1)
	bo := o.ReportBackoff
	if bo.Sleep == nil {
		bo.Sleep = d.reportWait
	}
	rep, err := report.Open(report.Options{StateDir: cfg.StateDir, Root: cfg.Root, Client: d.client, Info: o.Info, Log: o.Log, Backoff: bo})
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	d.rep = rep
	return nil
}

// reportWait is report delivery's backoff: it waits wait, or less when a
// plan fetch shows the server is back (serverBack), or until ctx is done.
func (d *daemon) reportWait(ctx context.Context, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	case <-d.serverBack:
	}
	return nil
}

// queued is how many reports wait; 0 standalone.
func (d *daemon) queued() int {
	if d.rep == nil {
		return 0
	}
	return d.rep.Len()
}

// makeVerifier pins the configuration's notice key, else the enrolment's.
func (d *daemon) makeVerifier(cfg *config.Config) error {
	var keys []ed25519.PublicKey
	if len(cfg.NoticeKey) > 0 {
		keys = append(keys, cfg.NoticeKey)
	}
	if k := d.o.Credential.NoticeKey; len(k) == ed25519.PublicKeySize && !slices.ContainsFunc(keys, func(p ed25519.PublicKey) bool { return p.Equal(ed25519.PublicKey(k)) }) {
		keys = append(keys, ed25519.PublicKey(k))
	}
	if len(keys) == 0 && d.standalone {
		d.ver, d.keys = nil, nil // nothing signed is expected
		return nil
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: enrol again with a server that gives one, or set notice_key", ErrNoNoticeKey)
	}
	if d.ver != nil && slices.EqualFunc(keys, d.keys, func(a, b ed25519.PublicKey) bool { return a.Equal(b) }) {
		return nil
	}
	v, err := notice.NewVerifier(notice.VerifierOptions{Keys: keys, StatePath: filepath.Join(cfg.StateDir, guardFile), Now: d.now})
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if d.ver != nil {
		// Keep counting across a key change.
		d.status.Notices = addStats(d.status.Notices, d.ver.Stats())
	}
	d.ver, d.keys = v, keys
	return nil
}

func (d *daemon) loop(ctx context.Context) error {
	d.pollT = time.NewTimer(0) // first check at once
	d.debounceT = stoppedTimer()
	d.windowT = stoppedTimer()
	d.rebootT = stoppedTimer()
	defer d.pollT.Stop()
	d.rebootResume() // a reboot in flight: free its slot, or say why not

	// A cycle a crash or a stop left half done is settled before anything
	// else runs.
	d.startCycle(cycleJob{kind: cycleSettle, label: "settle"}, update.Options{})

	wctx, cancelWorkers := context.WithCancel(ctx)
	defer cancelWorkers()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		if d.rep == nil {
			return // standalone: nobody to report to
		}
		if err := d.rep.Drain(wctx); err != nil {
			d.log.Error("report queue failed", "err", err)
		}
	}()
	if d.o.ConfigPath != "" {
		go func() {
			err := config.Watch(wctx, d.o.ConfigPath, func(c *config.Config) { sendLatest(d.cfgCh, c) },
				func(err error) {
					select {
					case d.cfgErr <- err:
					default:
					}
				})
			if err != nil {
				d.log.Warn("configuration not watched; SIGHUP still reloads it", "err", err)
			}
		}()
	}
	d.watchDB(wctx)
	d.watchSpool(wctx)
	d.connectMQTT()
	defer func() {
		if d.mq != nil {
			d.mq.Close()
		}
	}()

	notify := newNotifier(d.log)
	notify.ready()
	var watchdog <-chan time.Time
	if iv := notify.watchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		watchdog = t.C
	}
	refresh := time.NewTicker(d.o.StatusRefresh)
	defer refresh.Stop()
	var mqMsgs <-chan mqtt.Message
	d.publish(notify)
	for {
		mqMsgs = nil
		if d.mq != nil {
			mqMsgs = d.mq.Messages()
		}
		select {
		case <-ctx.Done():
			notify.stopping()
			if d.running != nil {
				d.log.Info("stopping: waiting for the update cycle to reach a step boundary", "cycle", d.running.label)
				r := <-d.cycleDone
				d.cycleFinished(r)
			}
			d.flushSpool()
			cancelWorkers()
			<-drained // the report being sent is acknowledged or stays queued
			d.log.Info("stopped", "queued_reports", d.queued())
			return nil
		case <-watchdog:
			notify.watchdog()
		case <-refresh.C:
		case <-d.haTick():
			d.haProgress()
		case m := <-mqMsgs:
			d.message(m)
		case <-d.pollT.C:
			d.fetch()
		case r := <-d.fetchDone:
			d.fetched(r)
		case r := <-d.cycleDone:
			d.cycleFinished(r)
		case <-d.dbEvents:
			// A prefetch changes no rpm database: a change seen
			// during one is someone else's.
			if d.running == nil || d.running.kind == cyclePrefetch {
				d.debounceT.Reset(d.o.Debounce)
			}
		case <-d.debounceT.C:
			if d.running == nil || d.running.kind == cyclePrefetch {
				d.enqueue("inventory change")
			}
		case <-d.spoolEv:
			d.spoolWant = true
		case r := <-d.spoolDone:
			d.spoolFinished(r)
		case <-d.windowT.C:
			d.log.Info("maintenance window open")
			d.windowOpen()
		case <-d.rebootT.C:
			d.rebootTimer()
		case r := <-d.rebootDone():
			d.lockFinished(r)
		case c := <-d.cfgCh:
			d.reload(c, nil)
		case err := <-d.cfgErr:
			d.reload(nil, err)
		case <-d.o.Reload:
			c, err := config.Load(d.cfg.File)
			d.reload(c, err)
		}
		d.spoolNext()
		d.checkLink()
		d.publish(notify)
	}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// sendLatest puts v on a channel of capacity one, replacing what waits.
func sendLatest[T any](ch chan T, v T) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// writeFileAtomic replaces path, mode 0600, through pkg/durable.
func writeFileAtomic(path string, b []byte) error {
	return durable.WriteFile(path, b, 0o600)
}
