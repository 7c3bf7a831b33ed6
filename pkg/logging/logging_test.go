package logging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// journald listens on a real unixgram socket, as journald's own does, and
// returns what each datagram says, decoded by the native protocol.
type journald struct {
	path string
	conn *net.UnixConn
}

func listenJournal(t *testing.T) *journald {
	t.Helper()
	// Socket paths are limited to 108 bytes: a short folder, not t.TempDir.
	dir, err := os.MkdirTemp("", "jd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "socket")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &journald{path: p, conn: c}
}

// next reads one record, or fails the test after a second.
func (j *journald) next(t *testing.T) map[string]string {
	t.Helper()
	buf := make([]byte, 1<<20)
	j.conn.SetReadDeadline(time.Now().Add(time.Second))
	n, err := j.conn.Read(buf)
	if err != nil {
		t.Fatalf("no journal record: %v", err)
	}
	fields, err := decode(buf[:n])
	if err != nil {
		t.Fatalf("journal record %q: %v", buf[:n], err)
	}
	return fields
}

// none checks that no record arrives within 100 ms.
func (j *journald) none(t *testing.T) {
	t.Helper()
	j.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 1<<16)
	if n, err := j.conn.Read(buf); err == nil {
		t.Fatalf("unexpected journal record %q", buf[:n])
	}
}

// decode parses the native protocol; a field sent twice is an error, as
// a forged second PRIORITY would be.
func decode(b []byte) (map[string]string, error) {
	f := map[string]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, errors.New("no newline")
		}
		line := b[:nl]
		var name, value string
		if eq := bytes.IndexByte(line, '='); eq >= 0 {
			name, value = string(line[:eq]), string(line[eq+1:])
			b = b[nl+1:]
		} else {
			name = string(line)
			b = b[nl+1:]
			if len(b) < 8 {
				return nil, fmt.Errorf("field %s: no length", name)
			}
			n := binary.LittleEndian.Uint64(b)
			b = b[8:]
			if uint64(len(b)) < n+1 || b[n] != '\n' {
				return nil, fmt.Errorf("field %s: length %d does not fit", name, n)
			}
			value, b = string(b[:n]), b[n+1:]
		}
		if _, dup := f[name]; dup {
			return nil, fmt.Errorf("field %s twice", name)
		}
		f[name] = value
	}
	return f, nil
}

func TestJournalFields(t *testing.T) {
	j := listenJournal(t)
	var stderr bytes.Buffer
	log := New(Options{Format: Journal, Identifier: "rpmfleet-agent", Socket: j.path, Stderr: &stderr})
	log.With("device", "pi-1").WithGroup("cycle").Info("cycle ended", "id", 7, "err", errors.New("rpm: exit 1\nline two"),
		slog.Group("plan", "seq", 3), "at", time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	got := j.next(t)
	want := map[string]string{
		"MESSAGE":           "cycle ended",
		"PRIORITY":          "6",
		"SYSLOG_IDENTIFIER": "rpmfleet-agent",
		"DEVICE":            "pi-1",
		"CYCLE_ID":          "7",
		"CYCLE_ERR":         "rpm: exit 1\nline two",
		"CYCLE_PLAN_SEQ":    "3",
		"CYCLE_AT":          "2026-12-05T10:00:00Z",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (record %q)", k, got[k], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("record has %d fields, want %d: %q", len(got), len(want), got)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr got %q while journald took the record", stderr.String())
	}
}

// TestJournalPriorities: journalctl -p filters on PRIORITY; a record below
// the level is not sent at all.
func TestJournalPriorities(t *testing.T) {
	j := listenJournal(t)
	log := New(Options{Format: Journal, Socket: j.path, Level: slog.LevelInfo})
	log.Debug("hidden")
	j.none(t)
	for _, c := range []struct {
		level slog.Level
		want  string
	}{{slog.LevelInfo, "6"}, {slog.LevelWarn, "4"}, {slog.LevelError, "3"}, {slog.LevelError + 4, "3"}, {slog.LevelWarn + 1, "4"}} {
		log.Log(t.Context(), c.level, "m")
		if got := j.next(t)["PRIORITY"]; got != c.want {
			t.Errorf("level %v: PRIORITY %s, want %s", c.level, got, c.want)
		}
	}
	debug := New(Options{Format: Journal, Socket: j.path, Level: slog.LevelDebug})
	debug.Debug("shown")
	if got := j.next(t); got["PRIORITY"] != "7" || got["MESSAGE"] != "shown" {
		t.Errorf("debug record %q, want PRIORITY 7", got)
	}
}

// TestJournalNoForgedFields: a value from outside (a device name, an
// advisory title) holding a newline and "PRIORITY=0", or a key naming a
// field journald keeps for itself, cannot add or change a field.
func TestJournalNoForgedFields(t *testing.T) {
	j := listenJournal(t)
	log := New(Options{Format: Journal, Socket: j.path})
	log.Info("report refused", "name", "pi\nPRIORITY=0\nMESSAGE=all good", "_SYSTEMD_UNIT", "sshd.service")
	got := j.next(t) // decode fails the test on a field seen twice
	if got["PRIORITY"] != "6" || got["MESSAGE"] != "report refused" {
		t.Errorf("record %q: PRIORITY or MESSAGE changed by a value", got)
	}
	if got["NAME"] != "pi\nPRIORITY=0\nMESSAGE=all good" {
		t.Errorf("NAME = %q, want the value whole", got["NAME"])
	}
	if _, ok := got["_SYSTEMD_UNIT"]; ok || got["X_SYSTEMD_UNIT"] != "sshd.service" {
		t.Errorf("record %q: a trusted field was set from an attribute", got)
	}
}

func TestFieldName(t *testing.T) {
	for _, c := range []struct{ key, want string }{
		{"path", "PATH"},
		{"cycle.id", "CYCLE_ID"},
		{"Retry-After", "RETRY_AFTER"},
		{"_PID", "X_PID"},
		{"9lives", "X9LIVES"},
		{"", "X"},
		{"é", "X_"},
		{strings.Repeat("a", 100), strings.Repeat("A", 64)},
	} {
		if got := FieldName(c.key); got != c.want {
			t.Errorf("FieldName(%q) = %q, want %q", c.key, got, c.want)
		}
	}
}

// TestJournalFallback: with journald gone, records go to stderr with the
// "<N>" prefix systemd reads there, attributes kept.
func TestJournalFallback(t *testing.T) {
	var stderr bytes.Buffer
	log := New(Options{Format: Journal, Socket: filepath.Join(t.TempDir(), "gone"), Stderr: &stderr}).With("device", "pi-1")
	log.Warn("mirror skipped", "url", "https://m.example/")
	log.Error("cycle failed")
	want := "<4>msg=\"mirror skipped\" device=pi-1 url=https://m.example/\n<3>msg=\"cycle failed\" device=pi-1\n"
	if stderr.String() != want {
		t.Errorf("stderr:\n%q\nwant\n%q", stderr.String(), want)
	}
}

// TestJournalTooLarge: a record too large for a datagram is written to
// stderr, and the next one goes to journald again.
func TestJournalTooLarge(t *testing.T) {
	j := listenJournal(t)
	var stderr bytes.Buffer
	log := New(Options{Format: Journal, Socket: j.path, Stderr: &stderr})
	log.Info("huge", "body", strings.Repeat("x", 4<<20))
	if !strings.HasPrefix(stderr.String(), "<6>msg=huge body=xxx") {
		t.Errorf("stderr starts %q, want the huge record with <6>", stderr.String()[:min(stderr.Len(), 40)])
	}
	log.Info("small")
	if got := j.next(t); got["MESSAGE"] != "small" {
		t.Errorf("after the huge record journald got %q, want the small one", got)
	}
}

// TestAuto: journald only when stderr is the stream JOURNAL_STREAM names
// (not when the service's stderr was redirected to a file).
func TestAuto(t *testing.T) {
	j := listenJournal(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	New(Options{Socket: j.path, Stderr: f}).Info("to journald")
	if got := j.next(t); got["MESSAGE"] != "to journald" {
		t.Errorf("journal got %q", got)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	New(Options{Socket: j.path, Stderr: f}).Info("to the file")
	j.none(t)
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "level=INFO msg=\"to the file\"") {
		t.Errorf("stderr file holds %q, want a text record", b)
	}
	t.Setenv("JOURNAL_STREAM", "")
	if UnderJournal(f) {
		t.Error("UnderJournal with no JOURNAL_STREAM")
	}
}

func TestJSON(t *testing.T) {
	var stderr bytes.Buffer
	New(Options{Format: JSON, Stderr: &stderr}).Info("m", "k", "v\x1b[2J")
	if !strings.Contains(stderr.String(), `"msg":"m","k":"v\u001b[2J"`) {
		t.Errorf("JSON record %q", stderr.String())
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Format
		err  error
	}{{"", Auto, nil}, {"JSON", JSON, nil}, {" journal ", Journal, nil}, {"text", Text, nil}, {"syslog", "", ErrFormat}} {
		got, err := ParseFormat(c.in)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q, %v", c.in, got, err, c.want, c.err)
		}
	}
	for _, c := range []struct {
		in   string
		want slog.Level
		err  error
	}{{"", slog.LevelInfo, nil}, {"debug", slog.LevelDebug, nil}, {"WARN", slog.LevelWarn, nil}, {"error", slog.LevelError, nil}, {"loud", slog.LevelInfo, ErrLevel}} {
		got, err := ParseLevel(c.in)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, %v", c.in, got, err, c.want, c.err)
		}
	}
}
