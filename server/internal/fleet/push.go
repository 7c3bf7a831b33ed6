package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Signed message lifetimes. A feed notice is retained on the broker, so an
// agent that connects within a day still learns of the last import; a
// command is acted on at once or not at all.
const (
	FeedNoticeTTL = 24 * time.Hour
	CommandTTL    = 10 * time.Minute
)

// Publisher publishes MQTT messages: the embedded broker
// (server/internal/broker) or an external one (server/internal/remotebroker).
type Publisher interface {
	Publish(topic string, payload []byte, retained bool) error
}

// ErrNoBroker is returned by Command when the server publishes to no
// broker.
var ErrNoBroker = errors.New("fleet: no MQTT broker")

// Command signs cmd for the device called name and publishes it, not
// retained, on the device's command topic. An unknown verb, advisories
// given to a verb other than apply, or an advisory the server does not
// know fail with ErrBadRequest naming the field; an unknown device with
// store.ErrNotFound.
func (s *Service) Command(ctx context.Context, name string, cmd protocol.Command) (protocol.CommandResponse, error) {
	switch cmd.Verb {
	case protocol.CommandCheck, protocol.CommandReport:
		if len(cmd.Advisories) > 0 {
			return protocol.CommandResponse{}, fmt.Errorf("%w: advisories: only the apply verb takes advisories", ErrBadRequest)
		}
	case protocol.CommandApply:
		if len(cmd.Advisories) == 0 {
			return protocol.CommandResponse{}, fmt.Errorf("%w: advisories: apply needs at least one advisory", ErrBadRequest)
		}
		s.mu.RLock()
		for i, id := range cmd.Advisories {
			if _, ok := s.advs[id]; !ok {
				s.mu.RUnlock()
				return protocol.CommandResponse{}, fmt.Errorf("%w: advisories[%d]: unknown advisory %q", ErrBadRequest, i, id)
			}
		}
		s.mu.RUnlock()
	default:
		return protocol.CommandResponse{}, fmt.Errorf("%w: verb: %q is not check, apply or report", ErrBadRequest, cmd.Verb)
	}
	d, err := s.st.Device(ctx, name)
	if err != nil {
		return protocol.CommandResponse{}, fmt.Errorf("command: %w", err)
	}
	if d.Revoked != nil {
		// Its credential no longer logs in: a command would wait on the
		// broker for a device that can never take it.
		return protocol.CommandResponse{}, fmt.Errorf("%w: device %s was revoked at %s", ErrBadRequest, name, d.Revoked.Format(time.RFC3339))
	}
	if s.opts.Publisher == nil {
		return protocol.CommandResponse{}, ErrNoBroker
	}
	if s.opts.Signer == nil {
		return protocol.CommandResponse{}, ErrNoSigner
	}
	msg, err := s.opts.Signer.Sign(notice.KindCommand, d.ID, cmd, CommandTTL)
	if err != nil {
		return protocol.CommandResponse{}, fmt.Errorf("command to %s: %w", name, err)
	}
	topic := protocol.DeviceCommandTopic(d.ID)
	start := time.Now()
	err = s.opts.Publisher.Publish(topic, msg, false)
	s.observe(Event{Op: OpPublish, Kind: "command", Took: time.Since(start), Err: err})
	if err != nil {
		return protocol.CommandResponse{}, fmt.Errorf("command to %s: publish on %s: %w", name, topic, err)
	}
	s.log.Info("command sent", "device", name, "id", d.ID, "verb", cmd.Verb, "advisories", len(cmd.Advisories))
	return protocol.CommandResponse{DeviceID: d.ID, Topic: topic}, nil
}

// publishFeed signs a feed notice naming the changed advisories and
// publishes it retained on the fleet's feed topic. A failure is logged,
// never returned: the import stands, and the agents' poll finds the
// change a little later.
func (s *Service) publishFeed(changed int, ids []string) {
	if s.opts.Publisher == nil || s.opts.Signer == nil || changed == 0 {
		return
	}
	n := protocol.FeedNotice{Changed: changed}
	if len(ids) <= protocol.MaxFeedAdvisories {
		n.Advisories = slices.Sorted(slices.Values(ids))
	}
	msg, err := s.opts.Signer.Sign(notice.KindFeedNotice, "", n, FeedNoticeTTL)
	if err == nil {
		start := time.Now()
		err = s.opts.Publisher.Publish(protocol.TopicAdvisoryFeed, msg, true)
		s.observe(Event{Op: OpPublish, Kind: "feed", Took: time.Since(start), Err: err})
	}
	if err != nil {
		s.log.Warn("feed notice not published; agents will find the change when they poll", "changed", changed, "err", err)
		return
	}
	s.log.Info("feed notice published", "topic", protocol.TopicAdvisoryFeed, "changed", changed)
}
