package broker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// aclHook is the one adapter between mochi's Hook interface and this
// package's Authenticator and ACL. It fails closed: a client it has not
// authenticated, or that is gone, may do nothing.
type aclHook struct {
	mqtt.HookBase
	auth Authenticator
	log  *slog.Logger

	mu         sync.Mutex                 // guards principals and ended
	principals map[*mqtt.Client]Principal // connected, authenticated clients
	ended      map[string]bool            // device ids revoked or deleted
}

func (h *aclHook) ID() string { return "rpmfleet-acl" }

func (h *aclHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnDisconnect,
	}, []byte{b})
}

// OnConnectAuthenticate admits a connection whose credentials name a
// principal, whose client id is its device id, and whose last will, if
// any, is allowed to it.
func (h *aclHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	refuse := func(why string) bool {
		h.log.Warn("mqtt connection refused", "reason", why, "username", user, "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	if !pk.Connect.UsernameFlag || user == "" {
		return refuse("anonymous")
	}
	p, ok := h.auth.Authenticate(user, string(pk.Connect.Password))
	if !ok {
		return refuse("bad credentials")
	}
	switch {
	case p.Server && p.DeviceID == "":
	case !p.Server && validDeviceID(p.DeviceID):
		if cl.ID != p.DeviceID {
			return refuse("client id is not the device id")
		}
	default:
		return refuse("authenticator returned an invalid principal")
	}
	if pk.Connect.WillFlag && !mayPublish(p, pk.Connect.WillTopic) {
		return refuse("last will on a topic the principal may not publish to")
	}
	h.mu.Lock()
	if !p.Server && h.ended[p.DeviceID] {
		h.mu.Unlock()
		return refuse("device revoked or deleted")
	}
	if h.principals == nil {
		h.principals = make(map[*mqtt.Client]Principal)
	}
	h.principals[cl] = p
	h.mu.Unlock()
	if g, ok := cl.Net.Conn.(*gateConn); ok {
		g.loggedIn()
	}
	return true
}

// errDeviceEnded is the stop cause of a revoked or deleted device's
// connections.
var errDeviceEnded = errors.New("broker: device revoked or deleted")

// endDevice refuses the device's logins from now on and stops its
// connections; it returns how many it stopped.
func (h *aclHook) endDevice(deviceID string) int {
	h.mu.Lock()
	if h.ended == nil {
		h.ended = make(map[string]bool)
	}
	h.ended[deviceID] = true
	var stop []*mqtt.Client
	for cl, p := range h.principals {
		if !p.Server && p.DeviceID == deviceID {
			stop = append(stop, cl)
		}
	}
	h.mu.Unlock()
	// Stop closes the connection; mochi's read loop then ends the
	// session, publishing the device's last will ("offline").
	for _, cl := range stop {
		cl.Stop(errDeviceEnded)
	}
	return len(stop)
}

// OnDisconnect forgets the client, so a stale session can do nothing.
func (h *aclHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	delete(h.principals, cl)
	h.mu.Unlock()
}

// OnACLCheck is asked for every subscription (write false, topic is the
// filter), every publication (write true) and every delivery to a
// subscriber (write false, topic is the message's topic).
func (h *aclHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	h.mu.Lock()
	p, ok := h.principals[cl]
	h.mu.Unlock()
	if !ok {
		return false
	}
	allowed := false
	if write {
		allowed = mayPublish(p, topic)
	} else {
		allowed = mayRead(p, topic)
	}
	if !allowed {
		h.log.Warn("mqtt access denied", "client", cl.ID, "topic", topic, "write", write)
	}
	return allowed
}

// mayPublish says whether p may publish to topic.
func mayPublish(p Principal, topic string) bool {
	if p.Server {
		return validTopic(topic)
	}
	return topic == protocol.DeviceStateTopic(p.DeviceID) ||
		topic == protocol.DeviceOnlineTopic(p.DeviceID)
}

// mayRead says whether p may subscribe to filter or receive a message on
// it. A device gets exact topics only, never a wildcard.
func mayRead(p Principal, filter string) bool {
	if p.Server {
		return validTopic(filter)
	}
	return filter == protocol.TopicAdvisoryFeed ||
		filter == protocol.DeviceCommandTopic(p.DeviceID)
}

// validTopic says whether topic (or filter) lies under protocol.TopicPrefix.
func validTopic(topic string) bool {
	return strings.HasPrefix(topic, protocol.TopicPrefix)
}

// validDeviceID says whether id can stand as one topic level: not empty,
// and free of the separator, the wildcards and control characters.
func validDeviceID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r == '/' || r == '+' || r == '#' || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// levelFilter passes on records at min or above; it quiets mochi, which
// logs every connection at Info.
type levelFilter struct {
	min slog.Level
	h   slog.Handler
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}
func (f levelFilter) Handle(ctx context.Context, r slog.Record) error { return f.h.Handle(ctx, r) }
func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{min: f.min, h: f.h.WithAttrs(a)}
}
func (f levelFilter) WithGroup(g string) slog.Handler {
	return levelFilter{min: f.min, h: f.h.WithGroup(g)}
}
