// Package utmp reads the login records file (/run/utmp) to tell whether
// people are logged in, so that a reboot can wait for them.
//
// The file is glibc's struct utmp, 384 bytes a record on every Linux
// architecture rpmfleet builds for (aarch64, armv7hl and x86_64 alike:
// glibc keeps 32-bit times in it for this reason). Only what the agent
// needs is decoded: the record type, the process id, the terminal and the
// user. The file is written by root-owned login programs; still, it is
// read with a size bound and its strings are cut at their field's length,
// so a corrupt file cannot make the agent read or print past a record.
package utmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// DefaultPath is where systemd-era Enterprise Linux keeps the records.
const DefaultPath = "/run/utmp"

// RecordSize is sizeof(struct utmp) on Linux with glibc.
const RecordSize = 384

// MaxSize bounds the file read: 4096 records.
const MaxSize = 4096 * RecordSize

// userProcess is ut_type USER_PROCESS: a login session.
const userProcess = 7

// Field offsets of struct utmp.
const (
	offType = 0
	offPID  = 4
	offLine = 8
	lenLine = 32
	offUser = 44
	lenUser = 32
)

// Session is one login session's record.
type Session struct {
	PID  int
	Line string // the terminal, "pts/0" or "tty1"
	User string
}

// ErrTooLarge: the file is larger than MaxSize.
var ErrTooLarge = errors.New("utmp: file larger than 4096 records")

// Parse decodes the USER_PROCESS records of b; a trailing partial record
// is ignored, as glibc's getutent does.
func Parse(b []byte) []Session {
	var out []Session
	for len(b) >= RecordSize {
		r := b[:RecordSize]
		b = b[RecordSize:]
		if int32(binary.LittleEndian.Uint32(r[offType:])) != userProcess {
			continue
		}
		out = append(out, Session{
			PID:  int(int32(binary.LittleEndian.Uint32(r[offPID:]))),
			Line: cstring(r[offLine : offLine+lenLine]),
			User: cstring(r[offUser : offUser+lenUser]),
		})
	}
	return out
}

// cstring is a NUL-padded field as a string, cut at the first NUL.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Sessions reads path (DefaultPath when "") and returns the sessions on a
// terminal whose process is still alive: a record left behind by a
// process that died without logging out does not count. A missing file
// means nobody is logged in.
func Sessions(path string) ([]Session, error) {
	if path == "" {
		path = DefaultPath
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("utmp: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("utmp: read %s: %w", path, err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %s", ErrTooLarge, path)
	}
	var live []Session
	for _, s := range Parse(b) {
		if s.Line == "" || s.PID <= 0 || !alive(s.PID) {
			continue
		}
		live = append(live, s)
	}
	return live, nil
}

// alive reports whether process pid exists (signal 0: no signal sent).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Record encodes a USER_PROCESS record as login programs write it, for
// tests and tools that make a utmp file.
func Record(s Session) []byte {
	r := make([]byte, RecordSize)
	binary.LittleEndian.PutUint32(r[offType:], userProcess)
	binary.LittleEndian.PutUint32(r[offPID:], uint32(int32(s.PID)))
	copy(r[offLine:offLine+lenLine], s.Line)
	copy(r[offUser:offUser+lenUser], s.User)
	return r
}
