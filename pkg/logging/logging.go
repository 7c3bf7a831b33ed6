// Package logging makes the programs' loggers: under systemd, records go to
// journald over its native protocol, each with its priority and its
// attributes as fields, so `journalctl -p warning -u rpmfleet-agent`
// filters them and `journalctl -o verbose` shows them; elsewhere, text or
// JSON on stderr. The level comes from RPMFLEET_LOG.
//
// A record that journald cannot take (its socket gone, a datagram too
// large) is written to stderr instead, with the "<N>" level prefix journald
// reads from a service's stderr, so no record is lost for a format.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Format is how records are written.
type Format string

const (
	// Auto is Journal when stderr is the service's journal stream
	// (systemd's JOURNAL_STREAM names it), Text otherwise.
	Auto    Format = "auto"
	Text    Format = "text"
	JSON    Format = "json"
	Journal Format = "journal"
)

// Formats lists the formats, for flag help.
const Formats = "auto, text, json or journal"

// ErrFormat is returned for a format name that is none of Formats.
var ErrFormat = errors.New("logging: unknown log format")

// ParseFormat reads a --log-format value; "" is Auto.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case "":
		return Auto, nil
	case Auto, Text, JSON, Journal:
		return f, nil
	default:
		return "", fmt.Errorf("%w %q: want %s", ErrFormat, s, Formats)
	}
}

// LevelEnv is the environment variable that sets the level: debug, info
// (the default), warn or error.
const LevelEnv = "RPMFLEET_LOG"

// ErrLevel is returned for a level name slog does not know.
var ErrLevel = errors.New("logging: unknown log level")

// ParseLevel reads a level name as RPMFLEET_LOG holds it; "" is info.
func ParseLevel(s string) (slog.Level, error) {
	if strings.TrimSpace(s) == "" {
		return slog.LevelInfo, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return slog.LevelInfo, fmt.Errorf("%w %q: want debug, info, warn or error", ErrLevel, s)
	}
	return l, nil
}

// DefaultSocket is journald's native protocol socket.
const DefaultSocket = "/run/systemd/journal/socket"

// Options says how to log.
type Options struct {
	Format Format
	Level  slog.Leveler
	// Identifier is the SYSLOG_IDENTIFIER of journal records
	// ("rpmfleet-agent").
	Identifier string
	// Stderr receives text and JSON records and what journald cannot take.
	Stderr io.Writer
	// Socket is journald's socket (DefaultSocket when empty).
	Socket string
}

// New returns the logger o asks for. Auto picks Journal only when stderr
// is the journal stream systemd gave the service.
func New(o Options) *slog.Logger {
	if o.Level == nil {
		o.Level = slog.LevelInfo
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Socket == "" {
		o.Socket = DefaultSocket
	}
	f := o.Format
	if f == Auto || f == "" {
		f = Text
		if UnderJournal(o.Stderr) {
			f = Journal
		}
	}
	ho := &slog.HandlerOptions{Level: o.Level}
	switch f {
	case JSON:
		return slog.New(slog.NewJSONHandler(o.Stderr, ho))
	case Journal:
		return slog.New(newJournalHandler(o))
	default:
		return slog.New(slog.NewTextHandler(o.Stderr, ho))
	}
}

// UnderJournal reports whether w is a file whose device and inode are
// those JOURNAL_STREAM names: systemd's way of saying "your stderr is the
// journal" (a redirect to a file or a pipe makes them differ).
func UnderJournal(w io.Writer) bool {
	js := os.Getenv("JOURNAL_STREAM")
	f, ok := w.(*os.File)
	if js == "" || !ok {
		return false
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(js, "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino
}
