package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/queue"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// fetchResult is a plan fetch's answer.
type fetchResult struct {
	local       *savedPlan // a standalone check's plan (standalone.go)
	msg         []byte
	etag        string
	notModified bool
	err         error
}

// savedPlan is the last verified plan, kept in memory and in the state dir
// so a 304 or a restart has it.
type savedPlan struct {
	ETag    string        `json:"etag"`
	Msg     []byte        `json:"msg"`
	Expires time.Time     `json:"expires"`
	Plan    protocol.Plan `json:"plan"`
	// Local marks a plan derived from the repositories (standalone.go),
	// Info what it knows of each advisory beyond the plan.
	Local bool               `json:"local,omitempty"`
	Info  map[string]advInfo `json:"info,omitempty"`
}

// fetch starts a plan fetch unless one runs; then one more follows it.
func (d *daemon) fetch() {
	if d.fetching {
		d.fetchMore = true
		return
	}
	if d.standalone && d.running != nil {
		// The check reads the metadata cache the cycle is using.
		d.checkAfter = true
		return
	}
	d.fetching = true
	d.status.State = d.busyState(protocol.StateChecking)
	if d.standalone {
		d.fetchLocal()
		return
	}
	etag := ""
	if d.plan != nil {
		etag = d.plan.ETag
	}
	go func() {
		msg, tag, nm, err := d.client.Plan(d.ctx, etag)
		d.fetchDone <- fetchResult{msg: msg, etag: tag, notModified: nm, err: err}
	}()
}

func (d *daemon) busyState(s protocol.AgentState) protocol.AgentState {
	if d.running != nil && d.running.kind == cyclePrefetch {
		return protocol.StateDownloading
	}
	if d.running != nil && d.running.kind != cycleSettle {
		return protocol.StateApplying
	}
	return s
}

// fetched handles a plan fetch's answer and sets the next poll.
func (d *daemon) fetched(r fetchResult) {
	d.fetching = false
	d.status.State = d.busyState(protocol.StateIdle)
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
	case r.local != nil:
		d.plan = r.local
		d.savePlan()
		d.log.Info("plan derived from the repositories", "advisories", len(r.local.Plan.Advisories), "etag", r.local.ETag)
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
		d.notePlanPolicy(&p.Plan)
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
	if d.linkUp && !d.standalone { // standalone, no push wakes the agent
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
