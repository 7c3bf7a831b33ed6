package utmp

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// record is a non-session record (type t) as login programs write them.
func record(typ uint32, pid int, line, user string) []byte {
	r := Record(Session{PID: pid, Line: line, User: user})
	r[0], r[1], r[2], r[3] = byte(typ), 0, 0, 0
	return r
}

// TestSessions: only USER_PROCESS records on a terminal whose process is
// alive count: not the boot time, LOGIN or DEAD_PROCESS records, not a
// session whose process died without logging out.
func TestSessions(t *testing.T) {
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer live.Process.Kill()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.Write(record(2, 0, "~", "reboot"))     // BOOT_TIME
	b.Write(record(6, 900, "tty1", "LOGIN")) // LOGIN_PROCESS
	b.Write(Record(Session{PID: live.Process.Pid, Line: "pts/0", User: "alice"}))
	b.Write(Record(Session{PID: dead.Process.Pid, Line: "pts/1", User: "bob"})) // died without logout
	b.Write(record(8, live.Process.Pid, "pts/2", "carol"))                      // DEAD_PROCESS
	b.Write(Record(Session{PID: live.Process.Pid, Line: "", User: "noterm"}))
	b.Write([]byte("partial record"))
	path := filepath.Join(t.TempDir(), "utmp")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Sessions(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Session{{PID: live.Process.Pid, Line: "pts/0", User: "alice"}}; !slices.Equal(got, want) {
		t.Errorf("Sessions = %+v, want %+v", got, want)
	}
	// The real who(1) reads the same file the same way: our records are
	// glibc's struct utmp.
	if who, err := exec.LookPath("who"); err == nil {
		out, err := exec.Command(who, path).Output()
		if err != nil {
			t.Fatalf("who %s: %v", path, err)
		}
		if !bytes.Contains(out, []byte("alice")) || !bytes.Contains(out, []byte("pts/0")) || !bytes.Contains(out, []byte("bob")) {
			t.Errorf("who %s:\n%s\nwant alice on pts/0 and bob", path, out)
		}
	}
	if all := Parse(b.Bytes()); len(all) != 3 {
		t.Errorf("Parse found %d USER_PROCESS records, want 3", len(all))
	}
	if got, err := Sessions(filepath.Join(t.TempDir(), "none")); err != nil || got != nil {
		t.Errorf("missing file: %v, %v; want nobody logged in", got, err)
	}
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, make([]byte, MaxSize+RecordSize), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Sessions(big); err == nil {
		t.Error("an oversized file was read")
	}
}

// TestRealUtmp reads this machine's own /run/utmp when it has one: every
// session found is on a terminal and has a user.
func TestRealUtmp(t *testing.T) {
	ss, err := Sessions(DefaultPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Line == "" || s.User == "" || s.PID <= 0 {
			t.Errorf("session %+v", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Record(Session{PID: 1, Line: "pts/0", User: "root"}))
	f.Add(bytes.Repeat([]byte{7, 0, 0, 0, 0xff}, 200))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range Parse(b) {
			if len(s.Line) > lenLine || len(s.User) > lenUser {
				t.Fatalf("field past its length: %+v", s)
			}
		}
	})
}
