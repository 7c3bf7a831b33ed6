// Package fleetlock is the agent's client of the FleetLock protocol
// (https://coreos.github.io/zincati/development/fleetlock/protocol/), the
// reboot lock Zincati and Airlock speak and rpmfleet-server serves: a
// device takes a slot of its reboot group before it reboots (POST
// /v1/pre-reboot) and frees it once it is up and well again (POST
// /v1/steady-state). Both carry the fleet-lock-protocol: true header and
// the body {"client_params": {"id": ID, "group": GROUP}}; 200 means done,
// anything else a failure whose body is {"kind": ..., "value": ...}.
//
// Threat model. The lock server is trusted only to say yes or no: its
// answer decides when the device reboots, never what it runs. So the
// client reads at most MaxBody bytes of an answer, gives every request a
// timeout, follows no redirect (the protocol's header exists so that a
// redirected POST is refused, and a redirect could carry the credential
// elsewhere), and hands on the server's words only escaped. A bearer
// credential is sent only when Options.Token is set, which the agent does
// only for its own fleet server: a third-party lock server (Airlock) never
// sees the device's credential.
package fleetlock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Limits and defaults.
const (
	// MaxBody bounds what is read of an answer: the protocol's error body
	// is two short strings.
	MaxBody = 64 << 10
	// DefaultTimeout bounds one request.
	DefaultTimeout = 30 * time.Second
	// DefaultGroup is the protocol's default reboot group.
	DefaultGroup = "default"
	maxID        = 128
	maxShown     = 256
)

// Options configure a Client.
type Options struct {
	// URL is the lock server's base URL; the protocol's paths
	// (/v1/pre-reboot, /v1/steady-state) are appended to its path.
	URL string
	// ID names this device to the lock server, Group its reboot group
	// (DefaultGroup when empty).
	ID, Group string
	// Token, when set, is sent as "Authorization: Bearer TOKEN".
	Token string
	// HTTPClient sends the requests; one with DefaultTimeout when nil. Its
	// redirects are never followed.
	HTTPClient *http.Client
}

// Client talks FleetLock to one server for one device.
type Client struct {
	base      *url.URL
	id, group string
	token     string
	hc        *http.Client
}

// New checks o and returns its Client.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("fleetlock: url %q: want an http or https URL with a host and no credentials, query or fragment", o.URL)
	}
	if o.ID == "" || len(o.ID) > maxID {
		return nil, fmt.Errorf("fleetlock: id: must be 1 to %d bytes", maxID)
	}
	if err := protocol.ValidateText("fleetlock id", o.ID, maxID); err != nil {
		return nil, fmt.Errorf("fleetlock: %w", err)
	}
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if !protocol.ValidFleetLockGroup(o.Group) {
		return nil, fmt.Errorf("fleetlock: group %q: must match ^[a-zA-Z0-9.-]+$ and be at most %d bytes", o.Group, protocol.MaxFleetLockGroup)
	}
	hc := &http.Client{Timeout: DefaultTimeout}
	if o.HTTPClient != nil {
		c := *o.HTTPClient
		hc = &c
		if hc.Timeout <= 0 {
			hc.Timeout = DefaultTimeout
		}
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{base: u, id: o.ID, group: o.Group, token: o.Token, hc: hc}, nil
}

// ID and Group are what the client sends as client_params.
func (c *Client) ID() string    { return c.id }
func (c *Client) Group() string { return c.group }

// URL is the lock server's base URL.
func (c *Client) URL() string { return c.base.String() }

// Error is a lock server's refusal: any answer but 200.
type Error struct {
	// Op is "pre-reboot" or "steady-state".
	Op string
	// Status is the HTTP status.
	Status int
	// Kind and Value are the protocol's error body, escaped and cut short;
	// empty when the body was not one.
	Kind, Value string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("fleetlock: %s: %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if e.Kind != "" {
		s += ": " + e.Kind
	}
	if e.Value != "" {
		s += ": " + e.Value
	}
	return s
}

// Held reports whether the lock server said the group's slots are all
// taken: the answer to wait and ask again.
func (e *Error) Held() bool {
	return e.Kind == protocol.FleetLockFull || e.Status == http.StatusConflict
}

// PreReboot asks for a slot. A holder asking again gets it again (the
// protocol's locks are recursive), so a retry after a lost answer is safe.
func (c *Client) PreReboot(ctx context.Context) error {
	return c.do(ctx, "pre-reboot", protocol.PathPreReboot)
}

// SteadyState frees the slot this client holds; freeing one not held
// succeeds too.
func (c *Client) SteadyState(ctx context.Context) error {
	return c.do(ctx, "steady-state", protocol.PathSteadyState)
}

func (c *Client) do(ctx context.Context, op, path string) error {
	body, err := json.Marshal(protocol.FleetLockRequest{ClientParams: protocol.FleetLockClient{ID: c.id, Group: c.group}})
	if err != nil {
		return fmt.Errorf("fleetlock: %s: %w", op, err)
	}
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fleetlock: %s: %w", op, err)
	}
	req.Header.Set(protocol.FleetLockHeader, "true")
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("fleetlock: %s: %w", op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	e := &Error{Op: op, Status: resp.StatusCode}
	var fe protocol.FleetLockError
	if err == nil && json.Unmarshal(raw, &fe) == nil {
		e.Kind, e.Value = shown(fe.Kind), shown(fe.Value)
	}
	return e
}

// shown is s escaped and cut to a length fit for a log line.
func shown(s string) string {
	if len(s) > maxShown {
		s = s[:maxShown] + "..."
	}
	return protocol.Escape(s)
}

// Backoff paces retries: after the n-th failure in a row the wait is a
// uniformly random time in [Min/2, min(Max, Min*2^(n-1))], so devices
// waiting for one slot do not ask together.
type Backoff struct {
	// Min is the first ceiling (5 s when 0), Max the largest (5 min when
	// 0).
	Min, Max time.Duration
}

// Delay is the wait after the n-th failure in a row (n from 1).
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 5 * time.Second
	}
	if hi <= 0 {
		hi = 5 * time.Minute
	}
	if lo > hi {
		lo = hi
	}
	ceiling := hi
	if n < 1 {
		n = 1
	}
	if n-1 < 62 && lo <= hi>>(n-1) {
		ceiling = lo << (n - 1)
	}
	floor := lo / 2
	return floor + time.Duration(rand.Int64N(int64(ceiling-floor)+1))
}

// Retry calls op until it succeeds or ctx is done, waiting b.Delay after
// each failure; before each wait it calls onFail with the failure, the
// attempt count and the wait, and stops with that failure when onFail
// returns false. It returns nil, the failure onFail stopped at, or ctx's
// error.
func Retry(ctx context.Context, b Backoff, op func(context.Context) error, onFail func(err error, attempt int, wait time.Duration) bool) error {
	for n := 1; ; n++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := b.Delay(n)
		if onFail != nil && !onFail(err, n, wait) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// IsNotFound reports whether err is a 404: the server speaks no FleetLock.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}
