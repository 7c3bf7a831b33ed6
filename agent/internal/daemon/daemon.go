package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/client"
	"github.com/rpmfleet/rpmfleet/agent/internal/config"
	"github.com/rpmfleet/rpmfleet/agent/internal/mqtt"
	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
	"github.com/rpmfleet/rpmfleet/agent/internal/queue"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
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
	// RebootCommand reboots the device; ["systemctl", "reboot"] when nil.
	// WallCommand broadcasts the warning before; ["wall"] when nil. It
	// gets the message as its last argument.
	RebootCommand, WallCommand []string
	// RebootGrace is the wait between the warning and the reboot;
	// DefaultRebootGrace when 0.
	RebootGrace time.Duration
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
	OnStatus func(Status)
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

// Status is what the daemon is doing, as STATUS= tells systemd and the
// retained state topic tells the fleet.
type Status struct {
	// State is "starting", "idle", "checking", "applying", "rebooting";
	// the retained state topic shows "checking" as "idle" (publishState).
	State string `json:"status"`
	// Applying names the advisories (or the bundle) of the running cycle.
	Applying  string    `json:"applying,omitempty"`
	LastCheck time.Time `json:"last_check,omitzero"`
	NextPoll  time.Time `json:"next_poll,omitzero"`
	// Pending are the plan's advisories not being applied, with why.
	Pending []PendingAdvisory `json:"pending_advisories,omitempty"`
	// Queued is how many reports wait for delivery.
	Queued int `json:"queued_reports"`
	// Notices counts the signed messages accepted and refused, by reason.
	Notices notice.Stats `json:"notices"`
	// LastCycle is the newest cycle this daemon ran or settled.
	LastCycle *CycleSummary `json:"last_cycle,omitempty"`
	// RebootAt is when a needed reboot is scheduled; zero when none is.
	RebootAt time.Time `json:"reboot_at,omitzero"`
	// Reloads and ReloadErrors count configuration reloads.
	Reloads      int `json:"config_reloads"`
	ReloadErrors int `json:"config_reload_errors"`
	// Spool counts bundles handled.
	SpoolDone   int  `json:"spool_done,omitempty"`
	SpoolFailed int  `json:"spool_failed,omitempty"`
	MQTT        bool `json:"mqtt_connected"`
}

// PendingAdvisory is a plan's advisory the policy holds back.
type PendingAdvisory struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Reason string `json:"reason"`
}

// CycleSummary is one update cycle in the status.
type CycleSummary struct {
	ID         int      `json:"id"`
	Phase      string   `json:"phase"`
	Advisories []string `json:"advisories,omitempty"`
	Error      string   `json:"error,omitempty"`
	Reboot     bool     `json:"reboot_needed,omitempty"`
}

// fetchResult is a plan fetch's answer.
type fetchResult struct {
	msg         []byte
	etag        string
	notModified bool
	err         error
}

// cycleJob says what a running cycle is for.
type cycleJob struct {
	label  string
	bundle string // the spool bundle's folder, for a spool cycle
	ids    []string
}

type cycleResult struct {
	job cycleJob
	res *update.Result
	err error
}

// savedPlan is the last verified plan, kept in memory and in the state dir
// so a 304 or a restart has it.
type savedPlan struct {
	ETag    string        `json:"etag"`
	Msg     []byte        `json:"msg"`
	Expires time.Time     `json:"expires"`
	Plan    protocol.Plan `json:"plan"`
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
	rep      *Reporter
	mq       *mqtt.Client
	broker   string
	spool    string
	now      func() time.Time

	status     Status
	lastStatus []byte
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

	running         *cycleJob
	enqueueFailures int // reports that could not be made, in a row

	fetchDone chan fetchResult
	cycleDone chan cycleResult
	cfgCh     chan *config.Config
	cfgErr    chan error
	dbEvents  chan struct{}
	spoolEv   chan struct{}
	// serverBack wakes report delivery from its backoff.
	serverBack chan struct{}

	pollT, debounceT, windowT, rebootT *time.Timer
	rebootStage                        int // 0 none, 1 waiting for a window, 2 warned
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
	defer d.rep.Close()
	return d.loop(ctx)
}

func newDaemon(ctx context.Context, o Options) (*daemon, error) {
	if o.Config == nil {
		return nil, errors.New("daemon: no configuration")
	}
	if o.Credential.Credential == "" || o.Credential.DeviceID == "" {
		return nil, fmt.Errorf("daemon: %w (run rpmfleet-agent enroll)", client.ErrNotEnrolled)
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
		log:       o.Log.With("component", "daemon"),
		fetchDone: make(chan fetchResult, 1),
		cycleDone: make(chan cycleResult, 1),
		cfgCh:     make(chan *config.Config, 1),
		cfgErr:    make(chan error, 1),
		dbEvents:  make(chan struct{}, 1),
		spoolEv:   make(chan struct{}, 1),
		status:    Status{State: "starting"},
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("daemon: state dir: %w", err)
	}
	if err := d.makeVerifier(cfg); err != nil {
		return nil, err
	}
	hc := o.HTTPClient
	if hc == nil {
		var err error
		if hc, err = o.Credential.HTTPClient(); err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
	}
	if cfg.Server != "" && strings.TrimRight(cfg.Server, "/") != strings.TrimRight(o.Credential.Server, "/") {
		d.log.Warn("the configuration names another server than the enrolment; using the enrolment's", "config", cfg.Server, "enrolled", o.Credential.Server)
	}
	d.client = client.New(o.Credential.Server, o.Credential.Credential, hc)
	// A report waiting out its backoff is retried at once when a plan
	// fetch shows the server is back.
	d.serverBack = make(chan struct{}, 1)
	bo := o.ReportBackoff
	if bo.Sleep == nil {
		bo.Sleep = func(ctx context.Context, wait time.Duration) error {
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
	}
	rep, err := OpenReporter(ReporterOptions{StateDir: cfg.StateDir, Root: cfg.Root, Client: d.client, Info: o.Info, Log: o.Log, Backoff: bo})
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	d.rep = rep
	d.spool = o.SpoolDir
	if d.spool == "" {
		d.spool = filepath.Join(cfg.StateDir, "spool")
	}
	d.loadPlan()
	return d, nil
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

	// A cycle a crash or a stop left half done is settled before anything
	// else runs.
	d.startCycle(cycleJob{label: "settle"}, update.Options{})

	wctx, cancelWorkers := context.WithCancel(ctx)
	defer cancelWorkers()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
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
			cancelWorkers()
			<-drained // the report being sent is acknowledged or stays queued
			d.log.Info("stopped", "queued_reports", d.rep.Len())
			return nil
		case <-watchdog:
			notify.watchdog()
		case <-refresh.C:
		case m := <-mqMsgs:
			d.message(m)
		case <-d.pollT.C:
			d.fetch()
		case r := <-d.fetchDone:
			d.fetched(r)
		case r := <-d.cycleDone:
			d.cycleFinished(r)
		case <-d.dbEvents:
			if d.running == nil {
				d.debounceT.Reset(d.o.Debounce)
			}
		case <-d.debounceT.C:
			if d.running == nil {
				d.enqueue("inventory change")
			}
		case <-d.spoolEv:
			d.scanSpool()
		case <-d.windowT.C:
			d.log.Info("maintenance window open")
			d.windowOpen()
		case <-d.rebootT.C:
			d.rebootTimer()
		case c := <-d.cfgCh:
			d.reload(c, nil)
		case err := <-d.cfgErr:
			d.reload(nil, err)
		case <-d.o.Reload:
			c, err := config.Load(d.cfg.File)
			d.reload(c, err)
		}
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

// message handles one MQTT message: verified, or refused and counted.
func (d *daemon) message(m mqtt.Message) {
	kind := notice.KindCommand
	if m.Topic == protocol.TopicAdvisoryFeed {
		kind = notice.KindFeedNotice
	} else if m.Topic != protocol.DeviceCommandTopic(d.deviceID) {
		d.log.Warn("message on an unexpected topic ignored", "topic", m.Topic)
		return
	}
	n, err := d.ver.Verify(m.Payload, kind, d.deviceID)
	if errors.Is(err, notice.ErrRepeated) {
		d.log.Debug("signed message seen before (retained)", "topic", m.Topic, "err", err)
		return
	}
	if err != nil {
		d.log.Warn("signed message refused", "topic", m.Topic, "kind", kind, "retained", m.Retained, "err", err)
		return
	}
	if kind == notice.KindFeedNotice {
		var fn protocol.FeedNotice
		if err := json.Unmarshal(n.Body, &fn); err != nil {
			d.log.Warn("feed notice body unreadable", "seq", n.Seq, "err", err)
			return
		}
		d.log.Info("advisory feed changed; fetching the plan", "changed", fn.Changed, "seq", n.Seq)
		d.fetch()
		return
	}
	var c protocol.Command
	if err := json.Unmarshal(n.Body, &c); err != nil {
		d.log.Warn("command body unreadable", "seq", n.Seq, "err", err)
		return
	}
	d.log.Info("command", "verb", c.Verb, "advisories", c.Advisories, "seq", n.Seq)
	switch c.Verb {
	case protocol.CommandCheck:
		d.fetch()
	case protocol.CommandApply:
		d.force = append(d.force, c.Advisories...)
		d.fetch()
	case protocol.CommandReport:
		if _, err := d.rep.Enqueue(true); err != nil {
			d.log.Warn("report not queued", "err", err)
		}
	default:
		d.log.Warn("unknown command verb ignored", "verb", c.Verb)
	}
}

// fetch starts a plan fetch unless one runs; then one more follows it.
func (d *daemon) fetch() {
	if d.fetching {
		d.fetchMore = true
		return
	}
	d.fetching = true
	d.status.State = d.busyState("checking")
	etag := ""
	if d.plan != nil {
		etag = d.plan.ETag
	}
	go func() {
		msg, tag, nm, err := d.client.Plan(d.ctx, etag)
		d.fetchDone <- fetchResult{msg: msg, etag: tag, notModified: nm, err: err}
	}()
}

func (d *daemon) busyState(s string) string {
	if d.running != nil && d.running.label != "settle" {
		return "applying"
	}
	return s
}

// fetched handles a plan fetch's answer and sets the next poll.
func (d *daemon) fetched(r fetchResult) {
	d.fetching = false
	d.status.State = d.busyState("idle")
	if r.err != nil {
		if d.ctx.Err() != nil {
			return
		}
		d.failures++
		wait := queue.Backoff{Min: d.o.PollRetryMin, Max: d.cfg.Poll.Interval}.Delay(d.failures)
		d.log.Warn("plan fetch failed", "err", r.err, "failures", d.failures, "retry_in", wait.Round(time.Millisecond))
		d.setPoll(wait)
		return
	}
	d.failures = 0
	poke(d.serverBack)
	d.status.LastCheck = d.now()
	d.lastPoll, d.pollJitter = d.status.LastCheck, jitter(d.cfg.Poll.Jitter)
	d.schedulePoll()
	if d.fetchMore {
		d.fetchMore = false
		defer d.fetch()
	}
	switch {
	case r.notModified && d.plan != nil:
		d.log.Debug("plan not modified", "etag", r.etag)
	case r.notModified:
		// Asked without an ETag: a server fault; the next poll asks again.
		d.log.Warn("server answered 304 to a request that named no plan")
		return
	default:
		p, err := d.verifyPlan(r.msg)
		if err != nil {
			d.log.Warn("plan refused", "err", err)
			return
		}
		if p == nil { // the plan already held
			break
		}
		p.ETag = r.etag
		d.plan = p
		d.savePlan()
	}
	d.act()
}

// verifyPlan checks a signed plan for this device; nil, nil means it is
// the plan already held (the server signed nothing new).
func (d *daemon) verifyPlan(msg []byte) (*savedPlan, error) {
	n, err := d.ver.Verify(msg, notice.KindPlan, d.deviceID)
	if errors.Is(err, notice.ErrRepeated) && d.plan != nil && bytes.Equal(msg, d.plan.Msg) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p protocol.Plan
	dec := json.NewDecoder(bytes.NewReader(n.Body))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("plan seq %d: body: %w", n.Seq, err)
	}
	return &savedPlan{Msg: msg, Expires: n.Expires, Plan: p}, nil
}

// schedulePoll sets the next poll from the last successful one: the
// configuration's connected interval while the MQTT link is up, when the
// poll only catches a lost push, else its interval; plus the jitter drawn
// at that poll. A poll already due (the link went down long after the last
// poll) starts at once.
func (d *daemon) schedulePoll() {
	iv := d.cfg.Poll.Interval
	if d.linkUp {
		iv = d.cfg.Poll.Connected()
	}
	d.setPoll(max(d.lastPoll.Add(iv+d.pollJitter).Sub(d.now()), 0))
}

// checkLink notices the MQTT link going up or down and moves the next
// poll to the interval that now applies. A fetch running or backing off
// is left alone: its answer schedules the poll after it.
func (d *daemon) checkLink() {
	up := d.mq != nil && d.mq.Connected()
	if up == d.linkUp {
		return
	}
	d.linkUp = up
	if d.fetching || d.failures > 0 || d.lastPoll.IsZero() {
		return
	}
	d.schedulePoll()
	d.log.Info("mqtt link changed; poll rescheduled", "mqtt", up, "next_poll", d.status.NextPoll)
}

func (d *daemon) setPoll(wait time.Duration) {
	d.pollT.Stop()
	d.pollT.Reset(wait)
	d.status.NextPoll = d.now().Add(wait)
}

func jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(max)))
}

// act decides, with the policy, what to do with each advisory of the plan,
// and starts one cycle for those to apply now.
func (d *daemon) act() {
	if d.plan == nil {
		return
	}
	if d.running != nil {
		d.planDirty = true
		return
	}
	now := d.now()
	pol := &d.cfg.Policy
	var apply []string
	var pending []PendingAdvisory
	pinned := map[string]string{}
	waiting := false
	for _, pa := range d.plan.Plan.Advisories {
		adv := planAdvisory(pa)
		act := policy.Decide(&adv, pol, now)
		forced := slices.Contains(d.force, pa.ID)
		switch {
		case forced && act.Verb == policy.Skip && len(act.Excluded) > 0:
			pending = append(pending, PendingAdvisory{ID: pa.ID, Action: "refused", Reason: act.Reason})
			continue
		case forced && len(act.Excluded) > 0, !forced && act.Verb == policy.ApplyNow && len(act.Excluded) > 0:
			// A cycle applies whole advisories; one with an excluded
			// package is left to the admin.
			pending = append(pending, PendingAdvisory{ID: pa.ID, Action: policy.NotifyOnly.String(), Reason: act.Reason + "; a cycle applies whole advisories"})
			continue
		case forced:
			apply = append(apply, pa.ID)
		case act.Verb == policy.ApplyNow:
			apply = append(apply, pa.ID)
		case act.Verb == policy.Skip:
			d.log.Debug("advisory skipped", "advisory", pa.ID, "reason", act.Reason)
			continue
		default:
			if act.Verb == policy.DownloadOnly {
				act.Reason += "; the daemon notifies only in download mode"
			}
			pending = append(pending, PendingAdvisory{ID: pa.ID, Action: act.Verb.String(), Reason: act.Reason})
			if pol.Mode == policy.Apply && !pol.InWindow(now) {
				waiting = true
			}
			d.log.Info("advisory not applied now", "advisory", pa.ID, "action", act.Verb, "reason", act.Reason)
			continue
		}
		for _, pp := range pa.Packages {
			if pp.SHA256 != "" {
				if e, err := rpmver.ParseEVR(pp.Fixed); err == nil {
					pinned[nevra(pp.Name, e, pp.Arch)] = pp.SHA256
				}
			}
		}
	}
	d.force = nil
	d.status.Pending = pending
	if waiting {
		if next := pol.NextWindow(now); !next.IsZero() {
			d.windowT.Stop()
			d.windowT.Reset(next.Sub(now))
			d.log.Info("waiting for the maintenance window", "opens", next)
		}
	}
	if len(apply) == 0 {
		return
	}
	d.startCycle(cycleJob{label: strings.Join(apply, ","), ids: apply}, update.Options{
		Select: update.Selection{IDs: apply}, Pinned: pinned,
	})
}

// windowOpen acts on the plan held when it is still valid, else fetches.
func (d *daemon) windowOpen() {
	if d.plan != nil && d.now().Before(d.plan.Expires) {
		d.act()
		return
	}
	d.fetch()
}

func planAdvisory(pa protocol.PlanAdvisory) advisory.Advisory {
	sev, _ := advisory.ParseSeverity(pa.Severity)
	a := advisory.Advisory{ID: pa.ID, Type: advisory.Type(strings.ToLower(pa.Type)), Severity: sev, RebootSuggested: pa.RebootSuggested}
	for _, pp := range pa.Packages {
		e, _ := rpmver.ParseEVR(pp.Fixed)
		a.Packages = append(a.Packages, advisory.Package{Name: pp.Name, EVR: e, Arch: pp.Arch})
	}
	return a
}

// nevra writes name-[epoch:]version-release.arch as rpm -q does.
func nevra(name string, e rpmver.EVR, arch string) string {
	s := e.Version
	if e.Epoch != "" && e.Epoch != "0" {
		s = e.Epoch + ":" + s
	}
	return name + "-" + s + "-" + e.Release + "." + arch
}

// updateOptions fills what every cycle shares from the configuration.
func (d *daemon) updateOptions(o update.Options) update.Options {
	c := d.cfg
	o.StateDir, o.Root = c.StateDir, c.Root
	o.HealthChecks = c.Policy.HealthChecks
	o.Log = d.o.Log
	keys := map[string]bool{}
	for _, r := range c.Repos {
		for _, k := range r.GPGKeys {
			if !keys[k] {
				keys[k] = true
				o.Keys = append(o.Keys, k)
			}
		}
	}
	// A spool cycle brings its own repository; the others use the
	// configured ones, or the device's .repo files when there are none.
	if o.Repos == nil {
		for _, r := range c.Repos {
			if r.Enabled {
				o.Repos = append(o.Repos, r.BaseURL)
			}
		}
	}
	return o
}

// startCycle runs update.Run in a worker.
func (d *daemon) startCycle(job cycleJob, o update.Options) {
	o = d.updateOptions(o)
	d.running = &job
	if job.label != "settle" {
		d.status.State = "applying"
		d.status.Applying = job.label
		d.log.Info("update cycle starting", "for", job.label)
	}
	ctx := d.ctx
	go func() {
		res, err := update.Run(ctx, o)
		d.cycleDone <- cycleResult{job: job, res: res, err: err}
	}()
}

// cycleFinished records a cycle's outcome, queues its report and moves on.
func (d *daemon) cycleFinished(r cycleResult) {
	d.running = nil
	d.status.State = "idle"
	d.status.Applying = ""
	var c *update.Cycle
	if r.res != nil {
		c = r.res.Cycle
		if c == nil {
			c = r.res.Recovered
		}
	}
	if c != nil {
		s := &CycleSummary{ID: c.ID, Phase: c.Phase.String(), Error: c.Error, Reboot: c.Reboot.Needed}
		for _, a := range c.Advisories {
			s.Advisories = append(s.Advisories, a.ID)
		}
		d.status.LastCycle = s
	}
	switch {
	case r.err != nil && d.ctx.Err() != nil:
		d.log.Info("update cycle stopped; it resumes at the next start", "for", r.job.label, "err", r.err)
	case r.err != nil:
		d.log.Warn("update cycle failed", "for", r.job.label, "err", r.err)
	case c != nil:
		d.log.Info("update cycle finished", "for", r.job.label, "cycle", c.ID, "phase", c.Phase, "reboot_needed", c.Reboot.Needed)
	}
	if r.job.bundle != "" {
		d.bundleDone(r.job.bundle, c, r.err)
	}
	// The cycle's report carries its results and the inventory change it
	// made, so the rpm database watcher has nothing left to say about it.
	d.debounceT.Stop()
	d.enqueue("cycle report")
	if c != nil && c.Phase == update.Committed && c.Reboot.Needed && d.cfg.Policy.Reboot == policy.RebootWhenNeeded {
		d.scheduleReboot()
	}
	if d.ctx.Err() != nil {
		return
	}
	if d.planDirty {
		d.planDirty = false
		d.act()
	}
	if d.running == nil {
		d.scanSpool()
	}
}

// enqueue queues what changed. A failure (the rpm database read while rpm
// writes it) is tried again after the debounce delay: nothing is marked
// reported until it is queued.
// Retries double their wait, up to 1024 times the delay, so a database
// that stays unreadable is not read in a tight loop.
func (d *daemon) enqueue(what string) {
	if _, err := d.rep.Enqueue(false); err != nil {
		d.enqueueFailures++
		wait := d.o.Debounce << min(d.enqueueFailures-1, 10)
		d.log.Warn("report not queued; trying again", "what", what, "retry_in", wait, "err", err)
		d.debounceT.Reset(wait)
		return
	}
	d.enqueueFailures = 0
}

// reload takes a new configuration, or reports why the file was refused.
func (d *daemon) reload(c *config.Config, err error) {
	if err != nil {
		d.status.ReloadErrors++
		d.log.Error("configuration not reloaded; keeping the running one", "file", d.cfg.File, "err", err)
		return
	}
	if c.StateDir != d.cfg.StateDir || c.Root != d.cfg.Root {
		d.status.ReloadErrors++
		d.log.Error("configuration not reloaded: state_dir and root change only with a restart", "file", c.File)
		return
	}
	old := d.cfg
	d.cfg = c
	if err := d.makeVerifier(c); err != nil {
		d.cfg = old
		d.status.ReloadErrors++
		d.log.Error("configuration not reloaded; keeping the running one", "file", c.File, "err", err)
		return
	}
	d.status.Reloads++
	d.log.Info("configuration reloaded", "file", c.File, "mode", c.Policy.Mode, "poll", c.Poll.Interval)
	if c.Poll != old.Poll && !d.fetching && d.failures == 0 {
		d.pollJitter = jitter(c.Poll.Jitter)
		d.schedulePoll()
	}
	if d.brokerURL() != d.broker {
		d.log.Info("mqtt broker changed; reconnecting", "broker", d.brokerURL())
		if d.mq != nil {
			d.mq.Close()
			d.mq = nil
		}
		d.stateKey = nil // the new client holds no state yet
		d.connectMQTT()
	}
	if d.rebootStage != 0 && c.Policy.Reboot != old.Policy.Reboot || !slices.Equal(c.Policy.Windows, old.Policy.Windows) && d.rebootStage == 1 {
		d.scheduleReboot() // cancelled, or moved to the new windows
	}
	// The policy may now allow, or forbid, what the plan holds.
	d.act()
}

func (d *daemon) brokerURL() string {
	if d.cfg.MQTT.Broker != "" {
		return d.cfg.MQTT.Broker
	}
	return d.o.Credential.BrokerURL
}

// connectMQTT starts the MQTT client when a broker is known.
func (d *daemon) connectMQTT() {
	d.broker = d.brokerURL()
	if d.broker == "" {
		d.log.Info("no mqtt broker; polling only")
		return
	}
	opts := mqtt.Options{Broker: d.broker, DeviceID: d.deviceID, Credential: d.o.Credential.Credential,
		KeepAlive: d.o.MQTTKeepAlive, MinBackoff: d.o.MQTTMinBackoff, MaxBackoff: d.o.MQTTMaxBackoff, Logger: d.o.Log}
	if d.cfg.MQTT.Username != "" {
		// The configuration's account on an external broker.
		opts.Username, opts.Credential = d.cfg.MQTT.Username, d.cfg.MQTT.Password
	}
	// The broker's CA: the configuration's, or, for the server's embedded
	// broker learnt at enrolment (TLS with the API's certificate), the CA
	// pinned then; none leaves the system's roots.
	var caPEM []byte
	caFrom := d.cfg.MQTT.CA
	switch {
	case d.cfg.MQTT.CA != "":
		b, err := os.ReadFile(d.cfg.MQTT.CA)
		if err != nil {
			d.log.Error("mqtt not started: broker CA", "err", err)
			return
		}
		caPEM = b
	case d.cfg.MQTT.Broker == "" && len(d.o.Credential.CA) > 0:
		caPEM, caFrom = d.o.Credential.CA, "the CA pinned at enrolment"
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			d.log.Error("mqtt not started: broker CA", "err", fmt.Errorf("%s holds no PEM certificate", caFrom))
			return
		}
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	mq, err := mqtt.New(opts)
	if err != nil {
		d.log.Error("mqtt not started", "err", err)
		return
	}
	mq.Start()
	d.mq = mq
}

// publish sends the status where it changed: systemd, the retained state
// topic and the test seam.
func (d *daemon) publish(n *notifier) {
	st := d.status
	st.Queued = d.rep.Len()
	st.Notices = addStats(st.Notices, d.ver.Stats())
	st.MQTT = d.mq != nil && d.mq.Connected()
	if d.mq != nil {
		d.publishState(st)
	}
	b, _ := json.Marshal(st)
	if bytes.Equal(b, d.lastStatus) {
		return
	}
	d.lastStatus = b
	n.status(statusLine(st))
	if d.o.OnStatus != nil {
		d.o.OnStatus(st)
	}
}

// publishState updates the retained state topic when something a user
// reads there changed. Every publish costs the link about 550 bytes (QoS
// 1, its PUBACK, the segments), so a poll that changes nothing but
// last_check and next_poll publishes nothing, and the poll's "checking"
// shows there as "idle" (it lasts one round trip; systemd's STATUS still
// says it). The timestamps are refreshed about every StateHeartbeat (by
// default the connected poll interval, so once a connected poll):
// last_check is what tells a dashboard, such as Home Assistant's, that the
// device still reaches its server, which the online topic (the MQTT link
// only) does not.
func (d *daemon) publishState(st Status) {
	if st.State == "checking" {
		st.State = "idle"
	}
	key := st
	key.LastCheck, key.NextPoll = time.Time{}, time.Time{}
	kb, _ := json.Marshal(key)
	now := d.now()
	beat := d.o.StateHeartbeat
	if beat <= 0 {
		beat = d.cfg.Poll.Connected()
	}
	// Not during a fetch, which would send the last_check it replaces;
	// and with an eighth of slack, so that a poll due exactly one beat
	// after the last one is not left out by the fetch's round trip.
	stale := !d.fetching && !st.LastCheck.Equal(d.stateCheck) && now.Sub(d.stateAt) >= beat-beat/8
	if bytes.Equal(kb, d.stateKey) && !stale {
		return
	}
	b, _ := json.Marshal(st)
	d.mq.PublishState(b)
	d.stateKey, d.stateCheck, d.stateAt = kb, st.LastCheck, now
}

// statusLine is the STATUS= text.
func statusLine(st Status) string {
	var parts []string
	switch {
	case st.State == "applying":
		parts = append(parts, "applying "+st.Applying)
	case st.NextPoll.IsZero():
		parts = append(parts, st.State)
	default:
		parts = append(parts, st.State+"; next poll "+st.NextPoll.Local().Format("15:04"))
	}
	if st.Queued > 0 {
		parts = append(parts, fmt.Sprintf("%d reports queued", st.Queued))
	}
	if n := len(st.Pending); n > 0 {
		parts = append(parts, fmt.Sprintf("%d advisories pending", n))
	}
	if !st.RebootAt.IsZero() {
		parts = append(parts, "reboot at "+st.RebootAt.Local().Format("Mon 15:04"))
	}
	return strings.Join(parts, "; ")
}

func addStats(a, b notice.Stats) notice.Stats {
	a.Accepted += b.Accepted
	a.Malformed += b.Malformed
	a.UnknownKey += b.UnknownKey
	a.BadSignature += b.BadSignature
	a.WrongKind += b.WrongKind
	a.WrongDevice += b.WrongDevice
	a.Expired += b.Expired
	a.NotYetValid += b.NotYetValid
	a.Replayed += b.Replayed
	a.Repeated += b.Repeated
	a.Other += b.Other
	return a
}

// loadPlan reads the last verified plan from the state dir.
func (d *daemon) loadPlan() {
	b, err := os.ReadFile(filepath.Join(d.cfg.StateDir, planFile))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var p savedPlan
	if err == nil {
		err = json.Unmarshal(b, &p)
	}
	if err != nil {
		d.log.Warn("last plan unreadable; fetching it again", "file", filepath.Join(d.cfg.StateDir, planFile), "err", err)
		return
	}
	d.plan = &p
}

func (d *daemon) savePlan() {
	b, err := json.Marshal(d.plan)
	if err == nil {
		err = writeFileAtomic(filepath.Join(d.cfg.StateDir, planFile), b)
	}
	if err != nil {
		d.log.Warn("plan not saved", "err", err)
	}
}
