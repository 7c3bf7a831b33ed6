package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/rpmfleet/rpmfleet/agent/internal/mqtt"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// message handles one MQTT message: verified, or refused and counted.
func (d *daemon) message(m mqtt.Message) {
	if d.haMessage(m) {
		return
	}
	if d.ver == nil {
		// Standalone: nothing signed is expected, and anyone on a home
		// broker could send these in a flood, so only at debug level.
		d.log.Debug("signed message ignored: standalone, no notice_key pinned", "topic", m.Topic)
		return
	}
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
		if d.rep == nil {
			d.log.Info("report command ignored: standalone")
		} else if _, err := d.rep.Enqueue(true); err != nil {
			d.log.Warn("report not queued", "err", err)
		}
	default:
		d.log.Warn("unknown command verb ignored", "verb", c.Verb)
	}
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
		KeepAlive: d.o.MQTTKeepAlive, MinBackoff: d.o.MQTTMinBackoff, MaxBackoff: d.o.MQTTMaxBackoff, Logger: d.o.Log,
		Subscribe: d.haSubscriptions()}
	if d.cfg.MQTT.Username != "" {
		// The configuration's account on an external broker.
		opts.Username, opts.Credential = d.cfg.MQTT.Username, d.cfg.MQTT.Password
	} else if d.standalone {
		// A home broker that admits anyone (plain only on loopback:
		// config refuses a password over plain MQTT elsewhere).
		opts.Anonymous = true
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
	d.mq = mq
	d.haConnected()
	mq.Start()
}
