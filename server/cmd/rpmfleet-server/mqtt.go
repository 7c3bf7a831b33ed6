package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"time"

	"github.com/rpmfleet/rpmfleet/server/internal/broker"
	"github.com/rpmfleet/rpmfleet/server/internal/config"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/remotebroker"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// authTimeout bounds the store lookup behind one MQTT login, so a slow
// database cannot pile up connection attempts.
const authTimeout = 5 * time.Second

// storeAuth lets devices into the embedded broker with their own
// credentials: username = device id, password = the device credential,
// looked up by its hash like an API request.
type storeAuth struct {
	st  store.Store
	log *slog.Logger
}

func (a storeAuth) Authenticate(username, password string) (broker.Principal, bool) {
	if username == "" || password == "" {
		return broker.Principal{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	d, err := a.st.DeviceByCredential(ctx, store.HashSecret(password))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			a.log.Warn("mqtt login: credential lookup failed", "username", username, "err", err)
		}
		return broker.Principal{}, false
	}
	if d.ID != username {
		return broker.Principal{}, false
	}
	return broker.Principal{DeviceID: d.ID}, true
}

// push is the server's MQTT side: what it publishes through, the URL
// devices are told, and how to stop it. A zero push (no Publisher) means
// no broker: devices only poll.
type push struct {
	pub   fleet.Publisher
	url   string
	close func()
	// embedded is the embedded broker, nil with none or an external one.
	embedded *broker.Broker
}

// startPush starts the embedded broker, or connects to the external one
// cfg names. When the embedded broker's default address is taken, it logs
// a warning and runs without a broker (the agents' poll still works); an
// address given explicitly that cannot be bound is an error.
//
// The embedded broker speaks TLS with the API's certificate (apiTLS) when
// the API does, and devices are told an mqtts:// URL. Without TLS it
// listens only on loopback unless insecure is set, as the API does: devices
// log in with their credential, which must not cross a network in clear.
func startPush(cfg config.MQTT, apiTLS *tls.Config, insecure bool, st store.Store, log *slog.Logger) (push, error) {
	if cfg.Broker != "" {
		var pw string
		if cfg.PasswordFile != "" {
			var err error
			if pw, err = remotebroker.ReadPassword(cfg.PasswordFile); err != nil {
				return push{}, err
			}
		}
		opts := remotebroker.Options{URL: cfg.Broker, Username: cfg.Username, Password: pw, Log: log}
		if cfg.CA != "" {
			pool, err := remotebroker.ReadCA(cfg.CA)
			if err != nil {
				return push{}, err
			}
			opts.RootCAs = pool
		}
		p, err := remotebroker.Dial(opts)
		if err != nil {
			return push{}, fmt.Errorf("mqtt broker: %w", err)
		}
		url := cfg.Advertise
		if url == "" {
			url = cfg.Broker
		}
		log.Info("publishing through an external MQTT broker", "broker", redactURL(cfg.Broker), "advertised", redactURL(url))
		return push{pub: p, url: url, close: p.Close}, nil
	}
	if cfg.Listen == broker.ListenOff {
		log.Info("no MQTT broker (mqtt listen off): devices learn of changes when they poll")
		return push{close: func() {}}, nil
	}
	listen := cfg.Listen
	if listen == "" {
		listen = broker.DefaultListen
	}
	if apiTLS == nil && !insecure && !loopbackAddr(listen) {
		return push{}, fmt.Errorf("mqtt listen %s: devices would send their credentials in clear; serve the API with TLS (--tls auto or --tls-cert), whose certificate the broker then uses, or pass --allow-insecure-http", listen)
	}
	b, err := broker.New(broker.Options{Listen: listen, TLS: apiTLS, Auth: storeAuth{st: st, log: log}, Logger: log,
		LoginTimeout: time.Duration(cfg.LoginTimeout), MaxPending: cfg.MaxPendingLogins,
		MaxPendingPerAddress: cfg.MaxPendingLoginsPerAddress})
	if err != nil {
		if cfg.Listen == "" {
			log.Warn("the default MQTT address is taken; running without a broker (devices poll); set --mqtt-listen to choose another", "addr", listen, "err", err)
			return push{close: func() {}}, nil
		}
		return push{}, fmt.Errorf("mqtt listen: %w", err)
	}
	if err := b.Start(); err != nil {
		b.Close()
		return push{}, err
	}
	url := cfg.Advertise
	if url == "" {
		url = "mqtt://" + b.Addr()
		if apiTLS != nil {
			url = "mqtts://" + b.Addr()
		}
		if host, _, _ := net.SplitHostPort(b.Addr()); net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
			log.Warn("the MQTT broker listens on all interfaces but devices are told an unspecified address; set --mqtt-advertise", "addr", b.Addr())
		}
	}
	log.Info("serving MQTT", "addr", b.Addr(), "advertised", url)
	return push{pub: b, url: url, close: func() { b.Close() }, embedded: b}, nil
}

// loopbackAddr reports whether a listen address (host:port) is on loopback
// only: "localhost" or a loopback IP.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL hides a password in a URL.
func redactURL(s string) string {
	u, err := neturl.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
