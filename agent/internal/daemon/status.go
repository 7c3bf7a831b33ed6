package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// publish sends the status where it changed: systemd, the retained state
// topic and the test seam.
func (d *daemon) publish(n *notifier) {
	st := d.status
	st.Version = protocol.StateVersion
	st.Queued = d.queued()
	if d.ver != nil {
		st.Notices = addStats(st.Notices, d.ver.Stats())
	}
	st.MQTT = d.mq != nil && d.mq.Connected()
	st.RebootWait = d.rebootWait()
	if d.mq != nil {
		d.publishState(st)
		d.haPublish(st)
	}
	b, _ := json.Marshal(st)
	if bytes.Equal(b, d.lastStatus) {
		return
	}
	d.lastStatus = b
	d.writeMetrics(st)
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
func (d *daemon) publishState(st protocol.DeviceState) {
	if b, ok := d.stateUpdate(st); ok {
		d.mq.PublishState(b)
	}
}

// stateUpdate is publishState's decision: the payload to publish for st,
// recorded as the one published, or false when the retained state may
// stay as it is.
func (d *daemon) stateUpdate(st protocol.DeviceState) ([]byte, bool) {
	if st.State == protocol.StateChecking {
		st.State = protocol.StateIdle
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
	// after the last one is not left out by the fetch's round trip. The
	// first last_check goes out at once: the state published during the
	// first fetch has none.
	stale := !d.fetching && !st.LastCheck.Equal(d.stateCheck) && (d.stateCheck.IsZero() || now.Sub(d.stateAt) >= beat-beat/8)
	if bytes.Equal(kb, d.stateKey) && !stale {
		return nil, false
	}
	b, _ := json.Marshal(st)
	d.stateKey, d.stateCheck, d.stateAt = kb, st.LastCheck, now
	return b, true
}

// statusLine is the STATUS= text.
func statusLine(st protocol.DeviceState) string {
	var parts []string
	switch {
	case st.State == protocol.StateApplying:
		parts = append(parts, "applying "+st.Applying)
	case st.NextPoll.IsZero():
		parts = append(parts, string(st.State))
	default:
		parts = append(parts, string(st.State)+"; next poll "+st.NextPoll.Local().Format("15:04"))
	}
	if st.Queued > 0 {
		parts = append(parts, fmt.Sprintf("%d reports queued", st.Queued))
	}
	if n := len(st.Pending); n > 0 {
		parts = append(parts, fmt.Sprintf("%d advisories pending", n))
	}
	switch {
	case st.RebootWait == protocol.RebootWaitSlot:
		parts = append(parts, "reboot waits for a slot")
	case st.RebootWait == protocol.RebootWaitSessions:
		parts = append(parts, "reboot waits for logged-in users until "+st.RebootAt.Local().Format("Mon 15:04"))
	case !st.RebootAt.IsZero():
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
