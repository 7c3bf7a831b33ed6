package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// isLoopback reports whether a URL host names this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkServer(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return errors.New("want a URL such as https://fleet.example.org")
	case u.User != nil:
		return errors.New("credentials do not belong in the URL")
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case u.Scheme == "http":
		return errors.New("want https: plain http is allowed only to a loopback host")
	default:
		return fmt.Errorf("scheme %q: want https", u.Scheme)
	}
	return nil
}

func (d *decoder) poll(t *table) Poll {
	p := Poll{Interval: DefaultPollInterval, ConnectedInterval: DefaultPollConnectedInterval, Jitter: DefaultPollJitter}
	if t == nil {
		return p
	}
	_, ivPresent := t.m["interval"]
	iv, ivOK := t.duration("interval")
	if ivOK && iv <= 0 {
		d.errorf(t.key("interval"), "bad value %q: want more than 0", t.m["interval"])
		ivOK = false
	}
	if ivOK {
		p.Interval = iv
		// The default jitter shrinks with a short interval.
		p.Jitter = min(p.Jitter, iv/2)
	}
	if j, ok := t.duration("jitter"); ok {
		switch {
		case j < 0:
			d.errorf(t.key("jitter"), "bad value %q: want 0 or more", t.m["jitter"])
		case j >= p.Interval && (ivOK || !ivPresent):
			d.errorf(t.key("jitter"), "bad value %q: want less than the interval (%s)", t.m["jitter"], p.Interval)
		}
		p.Jitter = j
	}
	if ci, ok := t.duration("connected_interval"); ok {
		switch {
		case ci <= 0:
			d.errorf(t.key("connected_interval"), "bad value %q: want more than 0", t.m["connected_interval"])
		case ci < p.Interval && (ivOK || !ivPresent):
			// Honoured as the interval anyway (Connected takes the
			// larger), so a smaller one set on purpose is a mistake.
			d.errorf(t.key("connected_interval"), "bad value %q: want at least the interval (%s); to poll that often while connected, set interval as well", t.m["connected_interval"], p.Interval)
		default:
			p.ConnectedInterval = ci
		}
	}
	t.done()
	return p
}

func (d *decoder) mqtt(t *table) MQTT {
	var m MQTT
	if t == nil {
		return m
	}
	plain := false
	if s, ok := t.str("broker"); ok {
		u, err := url.Parse(s)
		switch {
		case err != nil || u.Hostname() == "":
			d.errorf(t.key("broker"), "bad value %q: want a URL such as mqtts://fleet.example.org:8883", s)
		case u.User != nil:
			d.errorf(t.key("broker"), "bad value %q: credentials do not belong in the URL; use username and password_file", s)
		case u.Scheme == "ws" || u.Scheme == "wss":
			// The agent's MQTT client dials TCP itself (to pin TLS and
			// count bytes); MQTT over WebSocket is not built.
			d.errorf(t.key("broker"), "bad value %q: MQTT over WebSocket is not supported; use mqtt:// or mqtts://", s)
		default:
			tls, err := protocol.BrokerTLS(u.Scheme)
			if err != nil {
				d.errorf(t.key("broker"), "bad value %q: scheme %q: want %s", s, u.Scheme, protocol.BrokerSchemes)
			}
			plain = err == nil && !tls && !isLoopback(u.Hostname())
		}
		m.Broker = s
	}
	if s, ok := t.str("username"); ok {
		m.Username = s
	}
	m.PasswordFile = d.absPath(t, "password_file")
	if plain && m.PasswordFile != "" {
		d.errorf(t.key("broker"), "bad value %q: a password would cross the network in clear; use mqtts://", m.Broker)
	}
	m.CA = d.absPath(t, "ca")
	t.done()
	return m
}
