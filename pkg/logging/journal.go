package logging

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// journalHandler writes each record as one datagram of journald's native
// protocol (systemd.journal-fields(7), "Native Journal Protocol"):
// FIELD=value lines, or FIELD, a newline, a 64-bit little-endian length
// and the raw value for a value holding a newline. Attributes become
// upper-case fields, groups joined with "_" (path → PATH, err → ERR,
// cycle.id → CYCLE_ID).
type journalHandler struct {
	o     Options
	conn  *journalConn
	attrs []byte // encoded fields of WithAttrs
	group string // field name prefix of WithGroup
	// fb writes what journald cannot take to stderr (line), with the
	// same attributes and groups.
	fb   slog.Handler
	line *prefixWriter
}

// journalConn is the socket, shared by a handler and those derived from
// it, dialled on first use and again after a failure.
type journalConn struct {
	mu   sync.Mutex
	addr string
	c    *net.UnixConn
}

func newJournalHandler(o Options) *journalHandler {
	line := &prefixWriter{w: o.Stderr}
	fb := slog.NewTextHandler(line, &slog.HandlerOptions{
		Level: o.Level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{} // journald stamps its own; the prefix is the level
			}
			return a
		},
	})
	return &journalHandler{o: o, conn: &journalConn{addr: o.Socket}, fb: fb, line: line}
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.o.Level.Level()
}

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	var b bytes.Buffer
	writeField(&b, "MESSAGE", r.Message)
	writeField(&b, "PRIORITY", fmt.Sprint(Priority(r.Level)))
	if h.o.Identifier != "" {
		writeField(&b, "SYSLOG_IDENTIFIER", h.o.Identifier)
	}
	b.Write(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.group, a)
		return true
	})
	if err := h.conn.send(b.Bytes()); err != nil {
		// journald is gone or the record is too large for a datagram:
		// stderr, which systemd also reads, with the level prefix.
		return h.fallback(r)
	}
	return nil
}

func (h *journalHandler) fallback(r slog.Record) error {
	h.line.mu.Lock()
	defer h.line.mu.Unlock()
	h.line.prio = Priority(r.Level)
	return h.fb.Handle(context.Background(), r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	var b bytes.Buffer
	b.Write(h.attrs)
	for _, a := range as {
		appendAttr(&b, h.group, a)
	}
	h2.attrs = b.Bytes()
	h2.fb = h.fb.WithAttrs(as)
	return &h2
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group = h.group + name + "_"
	h2.fb = h.fb.WithGroup(name)
	return &h2
}

// prefixWriter writes each line with the "<N>" priority prefix journald
// reads from a service's stderr; the handler sets prio under mu.
type prefixWriter struct {
	mu   sync.Mutex
	prio int
	w    io.Writer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	if _, err := fmt.Fprintf(p.w, "<%d>%s", p.prio, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Priority is the syslog priority of a slog level: debug 7, info 6,
// warn 4, error 3 (levels between round down to the less severe).
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}

func appendAttr(b *bytes.Buffer, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "_"
		}
		for _, g := range a.Value.Group() {
			appendAttr(b, p, g)
		}
		return
	}
	var v string
	switch a.Value.Kind() {
	case slog.KindTime:
		v = a.Value.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			v = err.Error()
			break
		}
		v = a.Value.String()
	default:
		v = a.Value.String()
	}
	writeField(b, FieldName(prefix+a.Key), v)
}

// FieldName turns an attribute key into a journal field name: upper case
// letters, digits and "_", not starting with "_" or a digit (journald
// drops such fields, or keeps them for itself), at most 64 bytes.
func FieldName(key string) string {
	var n strings.Builder
	for _, c := range key {
		switch {
		case c >= 'a' && c <= 'z':
			n.WriteRune(c - 'a' + 'A')
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
			n.WriteRune(c)
		default:
			n.WriteByte('_')
		}
	}
	s := n.String()
	if s == "" || s[0] == '_' || (s[0] >= '0' && s[0] <= '9') {
		s = "X" + s
	}
	return s[:min(len(s), 64)]
}

func writeField(b *bytes.Buffer, name, value string) {
	if !strings.Contains(value, "\n") {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(value)
		b.WriteByte('\n')
		return
	}
	b.WriteString(name)
	b.WriteByte('\n')
	binary.Write(b, binary.LittleEndian, uint64(len(value)))
	b.WriteString(value)
	b.WriteByte('\n')
}

func (j *journalConn) send(p []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.c == nil {
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: j.addr, Net: "unixgram"})
		if err != nil {
			return err
		}
		j.c = c
	}
	if _, err := j.c.Write(p); err != nil {
		if !isTooLarge(err) {
			j.c.Close() // journald restarted: dial again next time
			j.c = nil
		}
		return err
	}
	return nil
}

// isTooLarge: the record does not fit a datagram (journald takes larger
// ones through a memfd, which this handler does not send).
func isTooLarge(err error) bool {
	return errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ENOBUFS)
}
