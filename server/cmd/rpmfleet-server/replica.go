package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres"
)

// Replica timings.
const (
	// catchUpWindow is how old a message another replica published may
	// be and still be published again here after a lost connection: a
	// command lives 10 minutes (fleet.CommandTTL).
	catchUpWindow = fleet.CommandTTL
	// catchUpLimit bounds the messages published again after one lost
	// connection.
	catchUpLimit = 10000
	// pruneAge is how long a replica message is kept (the newest
	// retained one of each topic stays).
	pruneAge = 24 * time.Hour
)

// replica joins this server to the others on the same PostgreSQL: every
// server on PostgreSQL is one, even alone. Notice sequence numbers come
// from the database; what this server publishes on its own broker is
// stored and announced, so each other replica publishes it on its broker
// for its devices; an import makes the others reload their advisories;
// leader-only jobs run under an advisory lock.
type replica struct {
	cl    *postgres.Cluster
	local fleet.Publisher // this server's broker; nil for none
	log   *slog.Logger

	// last is the id of the newest message published here; only the
	// listening goroutine touches it.
	last int64
}

// newReplica connects the replica's own connections to the database at url.
func newReplica(ctx context.Context, url string, local fleet.Publisher, log *slog.Logger) (*replica, error) {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	id := host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
	cl, err := postgres.OpenCluster(ctx, url, id, log)
	if err != nil {
		return nil, fmt.Errorf("join the replicas: %w", err)
	}
	log.Info("replica joined", "replica", id)
	return &replica{cl: cl, local: local, log: log.With("component", "replica")}, nil
}

func (r *replica) close() { r.cl.Close() }

// seq is the signer's sequence (notice.SignerOptions.Seq).
func (r *replica) seq(notice.Kind, string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.cl.NextSeq(ctx)
}

// AdvisoriesChanged is fleet.Replicas.
func (r *replica) AdvisoriesChanged(ctx context.Context, started time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return r.cl.AdvisoriesChanged(ctx, started)
}

// Publish is the service's fleet.Publisher: it publishes on this server's
// broker, then stores the message for the other replicas' brokers. The
// message fails only when neither took it: a device connected here has
// it, or the others will publish it to theirs.
func (r *replica) Publish(topic string, payload []byte, retained bool) error {
	var errLocal error
	if r.local != nil {
		errLocal = r.local.Publish(topic, payload, retained)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, errOthers := r.cl.Publish(ctx, topic, payload, retained, time.Now())
	if errOthers != nil && (errLocal != nil || r.local == nil) {
		return errors.Join(errLocal, errOthers)
	}
	if errOthers != nil {
		r.log.Warn("message published here only; the other replicas' devices find it when they poll", "topic", topic, "err", errOthers)
	}
	return errLocal
}

// disconnectTopic is the topic of a replica message that asks the others
// to end a device's session (payload: its id). It is never published on a
// broker: a topic starting with '$' is not one a client may use.
const disconnectTopic = "$rpmfleet/disconnect"

// DisconnectDevice is fleet.Disconnector: it ends a revoked or deleted
// device's session on this server's broker and asks the others to end it
// on theirs, wherever the device is connected.
func (r *replica) DisconnectDevice(deviceID string) {
	if d, ok := r.local.(fleet.Disconnector); ok {
		d.DisconnectDevice(deviceID)
	} else if r.local != nil {
		r.log.Warn("the external MQTT broker keeps the device's session; its own authentication must refuse the device", "id", deviceID)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.cl.Publish(ctx, disconnectTopic, []byte(deviceID), false, time.Now()); err != nil {
		r.log.Warn("other replicas not told to end the device's session; their brokers refuse its next login", "id", deviceID, "err", err)
	}
}

// listen runs until ctx ends: it publishes here what the others publish,
// and reloads the advisories when another imported, matching again the
// package sets stored since that import began (fleet.ReloadAdvisories).
// After every (re)connection it catches up: the advisories are reloaded
// (with the sets stored since the connection before matched again, as an
// import may have been missed), and the messages it missed (the newest
// retained ones, the first time) are published again.
func (r *replica) listen(ctx context.Context, svc *fleet.Service) {
	reload := make(chan struct{}, 1)
	var mu sync.Mutex
	var since time.Time // the earliest asked for; zero for no rematch
	done := make(chan struct{})
	go func() {
		// Reloads run here, one at a time, coalesced: ten imports
		// while one reload reads cost one more reload, not ten.
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-reload:
				mu.Lock()
				s := since
				since = time.Time{}
				mu.Unlock()
				if err := svc.ReloadAdvisories(ctx, s); err != nil && ctx.Err() == nil {
					r.log.Error("advisories not reloaded after another replica's import", "err", err)
				}
			}
		}
	}()
	defer func() { <-done }()
	askReload := func(s time.Time) {
		mu.Lock()
		if !s.IsZero() && (since.IsZero() || s.Before(since)) {
			since = s
		}
		mu.Unlock()
		select {
		case reload <- struct{}{}:
		default:
		}
	}
	var connectedAt time.Time
	r.cl.Listen(ctx, func(ctx context.Context) {
		if connectedAt.IsZero() {
			askReload(time.Time{}) // the service loaded them just before
		} else {
			askReload(connectedAt.Add(-fleet.RematchMargin))
		}
		connectedAt = time.Now()
		r.catchUp(ctx)
	}, func(ctx context.Context, n postgres.Notification) {
		if n.Message == 0 {
			askReload(n.Import.Add(-fleet.RematchMargin))
			return
		}
		m, err := r.cl.Message(ctx, n.Message)
		if err != nil {
			r.log.Warn("another replica's message not read", "id", n.Message, "err", err)
			return
		}
		r.publish(m)
	})
}

// catchUp publishes the messages missed since the last one published
// here; the first time, the newest retained message of each topic, so
// this broker holds the current feed notice.
func (r *replica) catchUp(ctx context.Context) {
	var ms []postgres.Message
	var err error
	if r.last == 0 {
		if r.last, err = r.cl.Last(ctx); err == nil {
			ms, err = r.cl.Retained(ctx)
		}
	} else {
		ms, err = r.cl.Since(ctx, r.last, time.Now().Add(-catchUpWindow), catchUpLimit)
	}
	if err != nil {
		r.log.Warn("missed messages not caught up", "err", err)
		return
	}
	for _, m := range ms {
		if m.Origin != r.cl.ID() || m.Retained {
			r.publish(m)
		}
	}
}

func (r *replica) publish(m postgres.Message) {
	r.last = max(r.last, m.ID)
	if r.local == nil {
		return
	}
	if m.Topic == disconnectTopic {
		if d, ok := r.local.(fleet.Disconnector); ok {
			d.DisconnectDevice(string(m.Payload))
		}
		return
	}
	if err := r.local.Publish(m.Topic, m.Payload, m.Retained); err != nil {
		r.log.Warn("another replica's message not published here", "topic", m.Topic, "id", m.ID, "err", err)
	}
}

// lead runs fn under the leader lock called name; the leader also prunes
// the replica messages.
func (r *replica) lead(ctx context.Context, name string, fn func(context.Context)) {
	r.cl.Lead(ctx, name, fn)
}

// prune deletes old replica messages once an hour, as the leader.
func (r *replica) prune(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := r.cl.Prune(ctx, time.Now().Add(-pruneAge)); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("replica messages not pruned", "err", err)
		} else if n > 0 {
			r.log.Info("replica messages pruned", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// startReplica joins the replicas when the store is PostgreSQL (url not
// empty); nil otherwise, and every method below is then a lone server's.
func startReplica(ctx context.Context, url string, log *slog.Logger) (*replica, error) {
	if url == "" {
		return nil, nil
	}
	return newReplica(ctx, url, nil, log)
}

// seqFunc is the signer's sequence: the database's for a replica, the
// clock's (notice's default) for a lone server.
func (r *replica) seqFunc() func(notice.Kind, string) (uint64, error) {
	if r == nil {
		return nil
	}
	return r.seq
}

// join makes the service tell the others of its imports and, when relay
// (each replica runs its embedded broker), publish through the replica:
// on this broker and for the others'. With one external broker for all
// (--mqtt-broker) or none, the service publishes as a lone server does.
func (r *replica) join(o *fleet.Options, relay bool) {
	if r == nil {
		return
	}
	o.Replicas = r
	if relay {
		r.local = o.Publisher
		o.Publisher = r
	}
}

// start listens to the other replicas and prunes their messages as the
// leader, until the returned stop is called.
func (r *replica) start(ctx context.Context, svc *fleet.Service) (stop func()) {
	if r == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { defer func() { done <- struct{}{} }(); r.listen(ctx, svc) }()
	go func() { defer func() { done <- struct{}{} }(); r.lead(ctx, "prune", r.prune) }()
	return func() { cancel(); <-done; <-done; r.close() }
}

// leader runs fn as a leader-only job: under the lock called name on a
// replica, at once on a lone server.
func (r *replica) leader(ctx context.Context, name string, fn func(context.Context)) {
	if r == nil {
		fn(ctx)
		return
	}
	r.lead(ctx, name, fn)
}
