// Package client is the agent's side of the fleet server's HTTP API:
// enrolment and reports, and the state that lets a report survive a failed
// delivery (state.go).
//
// Threat model. The device credential the server hands out at enrolment is
// the device's whole identity: whoever holds it can post reports as the
// device. It is kept in the state folder in a file only root can read (0600,
// written by temp file and rename, never logged), and sent only as a bearer
// token to the server it came from. The client follows no redirects, so a
// credential never leaves for another host.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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

// Client talks to one fleet server.
type Client struct {
	base       string
	credential string
	hc         *http.Client
}

// New returns a client of the server at baseURL ("https://fleet:8443"),
// authenticating with credential (empty before enrolment). A nil hc means a
// client with a 60 s timeout that follows no redirects.
func New(baseURL, credential string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{
			Timeout: 60 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), credential: credential, hc: hc}
}

// Enroll spends an enrolment token for the device's identity.
func (c *Client) Enroll(ctx context.Context, req protocol.EnrollRequest) (protocol.EnrollResponse, error) {
	var resp protocol.EnrollResponse
	if err := c.post(ctx, protocol.PathEnroll, req, &resp); err != nil {
		return resp, fmt.Errorf("enroll: %w", err)
	}
	return resp, nil
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rpmfleet-agent/"+version.String())
	req.Header.Set(protocol.VersionHeader, strconv.Itoa(protocol.Version))
	if c.credential != "" {
		req.Header.Set("Authorization", "Bearer "+c.credential)
	}
	resp, err := c.hc.Do(req)
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
		return &Error{Status: resp.StatusCode, Message: pe.Error, Field: pe.Field}
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+protocol.PathPlan, nil)
	if err != nil {
		return nil, "", false, fmt.Errorf("plan: %w", err)
	}
	req.Header.Set("User-Agent", "rpmfleet-agent/"+version.String())
	req.Header.Set(protocol.VersionHeader, strconv.Itoa(protocol.Version))
	if c.credential != "" {
		req.Header.Set("Authorization", "Bearer "+c.credential)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.hc.Do(req)
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
