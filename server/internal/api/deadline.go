package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/peer"
)

// Time limits on a request. The server's main bounds the headers
// (http.Server.ReadHeaderTimeout); this file bounds the body and the
// answer, per route, because one server-wide ReadTimeout cannot tell a
// 300-byte enrolment from a 500 MB import, and once it fires after the body
// was read it cancels the context of a handler still working (net/http's
// background read sees the timeout).
//
//   - A small body (every route but report and import) must arrive whole
//     within BodyTimeout of the handler's start: a body sent a byte a
//     second to /enroll, which needs no login, is cut off there.
//   - A large body (report, import) gets BodyTimeout, and then must keep
//     up an average of MinBodyRate bytes a second: a slow link gets through,
//     a drip does not.
//   - Once the body is read to its end the read deadline is lifted, so a
//     long import is not cancelled while it works.
//   - The answer must be written within WriteTimeout; an import lifts that
//     while it works and sets it again before it answers.
//
// A body cut off answers 408 when the connection still takes an answer.

// Defaults of the time limits.
const (
	DefaultBodyTimeout  = 10 * time.Second
	DefaultMinBodyRate  = 1 << 10 // bytes a second
	DefaultWriteTimeout = 2 * time.Minute
	// DefaultMaxEnrolling bounds the enrolments being handled at once;
	// more are answered 503 with Retry-After.
	DefaultMaxEnrolling = 32
	// DefaultMaxEnrollingPerAddress bounds those from one IPv4 address
	// or IPv6 /64, so one host's flood of enrolments leaves slots for
	// the others.
	DefaultMaxEnrollingPerAddress = 8
)

// errBodyTooSlow is what reading a body that missed its deadline returns.
var errBodyTooSlow = errors.New("api: request body too slow")

// largeBody reports whether the route takes large bodies at a minimum
// rate rather than small ones in a fixed time.
func largeBody(r *http.Request) bool {
	return r.URL.Path == protocol.PathReport || r.URL.Path == protocol.PathImport
}

// limitTime applies the read and write deadlines to one request.
func (s *Server) limitTime(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	now := time.Now()
	rc.SetWriteDeadline(now.Add(s.opts.WriteTimeout)) // not supported by a ResponseRecorder: no limit then
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	b := &deadlineBody{ReadCloser: r.Body, rc: rc, start: now, grace: s.opts.BodyTimeout}
	if largeBody(r) {
		b.rate = s.opts.MinBodyRate
	}
	// Set now, not at the first Read: a handler that refuses the request
	// without reading its body (no credential) leaves net/http to read
	// what is left of it, and that read must end too.
	rc.SetReadDeadline(b.deadline())
	r.Body = b
}

// deadlineBody reads a request body under a deadline that grows with what
// was read: start + grace + read/rate (no growth when rate is 0).
type deadlineBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  int64
	read  int64
	done  bool
}

func (b *deadlineBody) deadline() time.Time {
	d := b.start.Add(b.grace)
	if b.rate > 0 {
		d = d.Add(time.Duration(float64(b.read) / float64(b.rate) * float64(time.Second)))
	}
	return d
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	d := b.deadline()
	if !time.Now().Before(d) {
		return 0, b.tooSlow()
	}
	// Deadlines only move later here, and never once passed (net/http
	// does not extend one already exceeded).
	b.rc.SetReadDeadline(d)
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	switch {
	case err == io.EOF:
		b.done = true
		// Lift the deadline: net/http now reads the connection in the
		// background, and a deadline passing there would cancel the
		// handler's context.
		b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, b.tooSlow()
	}
	return n, err
}

func (b *deadlineBody) tooSlow() error {
	if b.rate > 0 {
		return fmt.Errorf("%w: %d bytes in %v, below %d bytes a second after the first %v",
			errBodyTooSlow, b.read, time.Since(b.start).Round(time.Millisecond), b.rate, b.grace)
	}
	return fmt.Errorf("%w: %d bytes in %v, not all of it within %v", errBodyTooSlow, b.read, time.Since(b.start).Round(time.Millisecond), b.grace)
}

// holdWrite lifts the write deadline while a handler works for longer than
// WriteTimeout (an import); the function it returns sets it again, from
// then, before the handler answers.
func (s *Server) holdWrite(w http.ResponseWriter) (rearm func()) {
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{})
	return func() { rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout)) }
}

// admitEnrolment takes one of the MaxEnrolling slots, and one of its
// address's MaxEnrollingPerAddress, or answers 503 with Retry-After and
// returns false; release gives the slots back.
func (s *Server) admitEnrolment(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	addr := peer.Of(r.RemoteAddr)
	busy := func(msg string) (func(), bool) {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, msg+"; retry in a few seconds", "")
		return nil, false
	}
	if !s.enrollers.Take(addr) {
		return busy(fmt.Sprintf("too many enrolments in progress from your address (%d)", s.enrollers.Max))
	}
	select {
	case s.enrolling <- struct{}{}:
		return func() { <-s.enrolling; s.enrollers.Give(addr) }, true
	default:
		s.enrollers.Give(addr)
		return busy(fmt.Sprintf("too many enrolments in progress (%d)", cap(s.enrolling)))
	}
}
