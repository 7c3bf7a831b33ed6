package fleetsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// session is a device's MQTT session: paho as the agent uses it (MQTT
// 3.1.1, clean session, client id = device id, the device credential, the
// offline last will, the feed and command topics at QoS 1), given every
// broker so that it fails over, in order from the device's own.
type session struct {
	pc paho.Client
}

// Connect opens every enrolled device's MQTT session. A session lost
// later reconnects by itself (to the next broker when its own is gone),
// within about a second, and subscribes again.
func (f *Fleet) Connect(ctx context.Context) error {
	return f.eachOf(ctx, f.sessions(), func(ctx context.Context, d *Device) error {
		if d.session != nil {
			return nil
		}
		brokers := f.opts.Brokers
		if len(brokers) == 0 {
			if d.Broker == "" {
				return errors.New("connect: the server named no broker")
			}
			brokers = []string{d.Broker}
		}
		po := paho.NewClientOptions().
			SetClientID(d.ID).
			SetUsername(d.ID).SetPassword(d.Credential).
			SetProtocolVersion(4).
			SetCleanSession(true).
			SetKeepAlive(60*time.Second).
			SetConnectTimeout(5*time.Second).
			SetAutoReconnect(true).
			SetConnectRetry(false).
			SetMaxReconnectInterval(time.Second).
			SetWill(protocol.DeviceOnlineTopic(d.ID), protocol.PayloadOffline, 1, true).
			SetOnConnectHandler(func(c paho.Client) {
				// A clean session: subscribe again on every connection.
				c.SubscribeMultiple(map[string]byte{
					protocol.TopicAdvisoryFeed:        1,
					protocol.DeviceCommandTopic(d.ID): 1,
				}, func(_ paho.Client, m paho.Message) { d.deliver(m.Topic(), m.Payload()) })
				c.Publish(protocol.DeviceOnlineTopic(d.ID), 1, true, protocol.PayloadOnline)
			})
		for k := range brokers {
			po.AddBroker(brokers[(d.Index+k)%len(brokers)])
		}
		if allLoopback(brokers) {
			// Each device from its own loopback address, as devices come
			// from their own: the broker caps connections waiting to log
			// in per address, and a source address has its own ports.
			po.SetDialer(&net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: loopbackFor(d.Index)}})
		}
		pc := paho.NewClient(po)
		tok := pc.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := tok.Error(); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		d.session = &session{pc: pc}
		return nil
	})
}

// sessions are the devices that hold an MQTT session (Options.Sessions).
func (f *Fleet) sessions() []*Device { return f.devices[:f.opts.Sessions] }

// Connected counts the devices whose session is up now.
func (f *Fleet) Connected() int {
	n := 0
	for _, d := range f.sessions() {
		if d.session != nil && d.session.pc.IsConnectionOpen() {
			n++
		}
	}
	return n
}

// Disconnect closes every session.
func (f *Fleet) Disconnect() {
	for _, d := range f.devices {
		if d.session != nil {
			d.session.pc.Disconnect(100)
		}
	}
}

// deliver verifies a message as the agent does and keeps what it says.
func (d *Device) deliver(topic string, payload []byte) {
	switch topic {
	case protocol.TopicAdvisoryFeed:
		n, err := d.verifier.Verify(payload, notice.KindFeedNotice, "")
		if err != nil {
			return // a retained notice seen again, or a refused one
		}
		var fn protocol.FeedNotice
		if json.Unmarshal(n.Body, &fn) != nil {
			return
		}
		d.feedAt.Store(time.Now().UnixNano())
		d.feedSeq.Store(n.Seq)
	case protocol.DeviceCommandTopic(d.ID):
		if _, err := d.verifier.Verify(payload, notice.KindCommand, d.ID); err == nil {
			d.commands.Add(1)
		}
	}
}

// WaitFeed waits until every device with a session accepted a feed notice
// numbered after seq, or ctx ends, and returns how many did.
func (f *Fleet) WaitFeed(ctx context.Context, seq uint64) int {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		n := 0
		for _, d := range f.sessions() {
			if d.feedSeq.Load() > seq {
				n++
			}
		}
		if n == f.opts.Sessions {
			return n
		}
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
	}
}

// FeedLatencies returns, for every device that accepted a notice numbered
// after seq, how long after since it arrived (0 when before).
func (f *Fleet) FeedLatencies(seq uint64, since time.Time) []time.Duration {
	var out []time.Duration
	for _, d := range f.devices {
		if s, at := d.FeedSeq(); s > seq {
			out = append(out, max(at.Sub(since), 0))
		}
	}
	return out
}

// allLoopback reports whether every broker URL names a loopback IP.
func allLoopback(brokers []string) bool {
	for _, b := range brokers {
		u, err := url.Parse(b)
		if err != nil {
			return false
		}
		ip := net.ParseIP(u.Hostname())
		if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
			return false
		}
	}
	return len(brokers) > 0
}

// loopbackFor is device i's source address: 127.1.0.0 on, one each, under
// 127.255.0.0 (over 16 million devices).
func loopbackFor(i int) net.IP {
	n := uint32(1<<16 + i%(254<<16))
	return net.IPv4(127, byte(n>>16), byte(n>>8), byte(n))
}

// spreadDialer gives each new connection to a loopback server a source
// address of its own (127.200.0.0/16, in turn), as requests from many
// devices come from many addresses: the server caps what one address may
// hold at once (enrolments, logins).
type spreadDialer struct {
	d net.Dialer
	n atomic.Uint32
}

func (s *spreadDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	if err != nil || ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return s.d.DialContext(ctx, network, addr)
	}
	d := s.d
	n := s.n.Add(1)
	d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 200, byte(n>>8), byte(n))}
	return d.DialContext(ctx, network, addr)
}
