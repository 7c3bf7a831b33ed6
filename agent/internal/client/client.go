// Package client is the agent's side of the fleet server's HTTP API:
// enrolment and reports, and the state that lets a report survive a failed
// delivery (state.go).
//
// Threat model. The device credential the server hands out at enrolment is
// the device's whole identity: whoever holds it can post reports as the
// device. It is kept in the state folder in a file only root can read (0600,
// written by temp file and rename, never logged), and sent only as a bearer
// token to the server it came from, or to the other replicas of that server
// the device's configuration lists (NewFailover). The client follows no
// redirects, so a credential never leaves for another host.
//
// Failover. A fleet server may run as several replicas (docs/replicas.md):
// a request goes to the replica that answered last and, when it cannot be
// reached or answers 5xx or 429, to the next in the list, so one dead
// replica costs a failed connection, not a missed report. A name that
// resolves to several addresses fails over too, inside the dialer: Go
// tries each address in turn.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/version"
)

// Error is a non-2xx answer of the server.
type Error struct {
	Status int
	// Message and Field come from the server's protocol.Error body.
	Message string
	Field   string
	// RetryAfter is the answer's Retry-After (given in seconds, taken up
	// to an hour); zero when it has none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("server answered %d: %s (field %s)", e.Status, e.Message, e.Field)
	}
	return fmt.Sprintf("server answered %d: %s", e.Status, e.Message)
}

// Retryable reports whether err may go away if the same request is sent
// again: the server was unreachable, or failed on its side (5xx, 429).
func Retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Status == http.StatusTooManyRequests
	}
	return err != nil && !errors.Is(err, context.Canceled)
}

// Client talks to one fleet server, or to any of its replicas.
type Client struct {
	bases      []string
	cur        atomic.Int32 // the index in bases of the replica that answered last
	credential string
	hc         *http.Client
}

// New returns a client of the server at baseURL ("https://fleet:8443"),
// authenticating with credential (empty before enrolment). A nil hc means a
// client with a 60 s timeout that follows no redirects.
func New(baseURL, credential string, hc *http.Client) *Client {
	return NewFailover([]string{baseURL}, credential, hc)
}

// NewFailover returns a client of the replicas of one fleet server at
// baseURLs, tried in order from the one that answered last (see Failover
// in the package doc). Empty and repeated URLs are dropped.
func NewFailover(baseURLs []string, credential string, hc *http.Client) *Client {
	var bases []string
	for _, u := range baseURLs {
		u = strings.TrimRight(u, "/")
		if u != "" && !slices.Contains(bases, u) {
			bases = append(bases, u)
		}
	}
	if len(bases) == 0 {
		bases = []string{""}
	}
	if hc == nil {
		hc = &http.Client{
			Timeout: 60 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return &Client{bases: bases, credential: credential, hc: hc}
}

// Servers returns the base URLs the client tries, the one that answered
// last first.
func (c *Client) Servers() []string {
	k := int(c.cur.Load())
	return append(slices.Clone(c.bases[k:]), c.bases[:k]...)
}

// do sends the request newReq makes for a base URL to each replica in
// turn, from the one that answered last, until one answers with neither a
// transport error nor a 5xx or 429; the last answer or error is returned.
// The caller closes the answer's body.
func (c *Client) do(ctx context.Context, newReq func(base string) (*http.Request, error)) (*http.Response, error) {
	first := int(c.cur.Load())
	var resp *http.Response
	var err error
	for k := range c.bases {
		i := (first + k) % len(c.bases)
		req, rerr := newReq(c.bases[i])
		if rerr != nil {
			return nil, rerr
		}
		if resp != nil {
			resp.Body.Close()
		}
		resp, err = c.hc.Do(req)
		if ctx.Err() != nil {
			break
		}
		if err == nil && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			c.cur.Store(int32(i))
			return resp, nil
		}
	}
	return resp, err
}

// Enrolment retries: a server busy with other enrolments (many devices
// of a site enrolling at once after a first boot) answers 503 or 429 with
// Retry-After, before spending the token; the enrolment is sent again
// after that wait (at most enrollMaxWait), up to enrollTries times.
const (
	enrollTries   = 6
	enrollMaxWait = 30 * time.Second
)

// Enroll spends an enrolment token for the device's identity.
func (c *Client) Enroll(ctx context.Context, req protocol.EnrollRequest) (protocol.EnrollResponse, error) {
	var resp protocol.EnrollResponse
	for try := 1; ; try++ {
		err := c.post(ctx, protocol.PathEnroll, req, &resp)
		var e *Error
		if err == nil || try == enrollTries || !errors.As(err, &e) ||
			(e.Status != http.StatusServiceUnavailable && e.Status != http.StatusTooManyRequests) {
			if err != nil {
				return resp, fmt.Errorf("enroll: %w", err)
			}
			return resp, nil
		}
		wait := min(max(e.RetryAfter, time.Second), enrollMaxWait)
		select {
		case <-ctx.Done():
			return resp, fmt.Errorf("enroll: %w (and %w)", err, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// Report posts a report. Sending the same report again (same ID) is safe:
// the server applies it once.
func (c *Client) Report(ctx context.Context, r *protocol.Report) (protocol.ReportResponse, error) {
	var resp protocol.ReportResponse
	if err := c.post(ctx, protocol.PathReport, r, &resp); err != nil {
		return resp, fmt.Errorf("report %s: %w", r.ID, err)
	}
	return resp, nil
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, func(base string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "rpmfleet-agent/"+version.String())
		req.Header.Set(protocol.VersionHeader, strconv.Itoa(protocol.Version))
		if c.credential != "" {
			req.Header.Set("Authorization", "Bearer "+c.credential)
		}
		return req, nil
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var pe protocol.Error
		if json.Unmarshal(b, &pe) != nil || pe.Error == "" {
			pe.Error = strings.TrimSpace(string(b))
			if pe.Error == "" {
				pe.Error = resp.Status
			}
		}
		e := &Error{Status: resp.StatusCode, Message: pe.Error, Field: pe.Field}
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
			e.RetryAfter = time.Duration(min(n, 3600)) * time.Second
		}
		return e
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// MaxPlanSize bounds a plan read from the server, as notice.MaxMessageSize
// bounds any signed message.
const MaxPlanSize = 4 << 20

// Plan fetches the device's signed plan (a pkg/notice envelope, returned
// unverified: the caller verifies it against the pinned notice key). etag is
// the ETag of the plan the caller already holds, "" for none; when the
// server answers 304 Not Modified, notModified is set and msg is nil, and the
// caller keeps the plan it verified before.
func (c *Client) Plan(ctx context.Context, etag string) (msg []byte, newETag string, notModified bool, err error) {
	resp, err := c.do(ctx, func(base string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+protocol.PathPlan, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("User-Agent", "rpmfleet-agent/"+version.String())
		req.Header.Set(protocol.VersionHeader, strconv.Itoa(protocol.Version))
		if c.credential != "" {
			req.Header.Set("Authorization", "Bearer "+c.credential)
		}
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		return req, nil
	})
	if err != nil {
		return nil, "", false, fmt.Errorf("plan: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil, etag, true, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxPlanSize+1))
	if err != nil {
		return nil, "", false, fmt.Errorf("plan: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var pe protocol.Error
		if json.Unmarshal(b, &pe) != nil || pe.Error == "" {
			pe.Error = strings.TrimSpace(string(b))
			if pe.Error == "" {
				pe.Error = resp.Status
			}
		}
		return nil, "", false, fmt.Errorf("plan: %w", &Error{Status: resp.StatusCode, Message: pe.Error, Field: pe.Field})
	}
	if len(b) > MaxPlanSize {
		return nil, "", false, fmt.Errorf("plan: answer larger than %d bytes", MaxPlanSize)
	}
	return b, resp.Header.Get("ETag"), false, nil
}
