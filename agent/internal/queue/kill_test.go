package queue

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/selfexec"
)

// childEnv names the queue folder when the test binary runs as the child of
// TestKill9.
const childEnv = "RPMFLEET_QUEUE_KILL_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		if err := child(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child enqueues reports until it is killed, printing "E n id" once report
// n is queued, and, every 7th report, acknowledging the oldest between "a
// id" and "A id" lines. os.Stdout is not buffered: a line the parent read
// was written after the operation returned.
func child(dir string) error {
	q, err := Open(dir, Options{MaxEntries: 1 << 20, MaxBytes: 1 << 30})
	if err != nil {
		return err
	}
	for n := 0; ; n++ {
		kind := KindDelta
		if n%3 == 0 {
			kind = KindCycle
		}
		id, err := q.Enqueue(kind, payloadFor(n))
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stdout, "E %d %s\n", n, id)
		if n%7 == 6 {
			it, err := q.Peek()
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stdout, "a %s\n", it.ID)
			if err := q.Ack(it.ID); err != nil {
				return err
			}
			fmt.Fprintf(os.Stdout, "A %s\n", it.ID)
		}
	}
}

// payloadFor is report n's payload, of varied length so that a torn write
// would show.
func payloadFor(n int) []byte {
	return fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, n, strings.Repeat("x", n*37%3000))
}

// startChild runs this test binary again as the child.
func startChild(t *testing.T, dir string) (*exec.Cmd, io.Reader, *strings.Builder) {
	t.Helper()
	cmd, err := selfexec.Command("-test.run=^$")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout, stderr
}

// TestKill9 SIGKILLs a process that is busy enqueueing and acknowledging,
// then checks that every report it was told is queued is there, whole and
// in order, that every acknowledged one is gone, and that the folder needs
// no repair beyond removing a temp file.
func TestKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd, stdout, stderr := startChild(t, dir)

	type queued struct {
		n  int
		id string
	}
	var enqueued []queued
	acking := map[string]bool{} // ack started
	acked := map[string]bool{}  // ack returned
	const killAfter = 150
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		var op, id string
		var n int
		switch line := sc.Text(); {
		case strings.HasPrefix(line, "E "):
			if _, err := fmt.Sscanf(line, "E %d %s", &n, &id); err != nil {
				t.Fatalf("child said %q: %v", line, err)
			}
			enqueued = append(enqueued, queued{n, id})
		default:
			if _, err := fmt.Sscanf(line, "%s %s", &op, &id); err != nil {
				t.Fatalf("child said %q: %v", line, err)
			}
			if op == "a" {
				acking[id] = true
			} else {
				acked[id] = true
			}
		}
		if len(enqueued) == killAfter && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by SIGKILL; stderr:\n%s", err, stderr.String())
	}

	q, logs := open(t, dir, Options{MaxEntries: 1 << 20, MaxBytes: 1 << 30})
	var got []*Item
	for {
		it, err := q.Peek()
		if errors.Is(err, ErrEmpty) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, it)
		if err := q.Ack(it.ID); err != nil {
			t.Fatal(err)
		}
	}

	// Every report told queued and not acknowledged must be there, in
	// order. Besides them, an ack cut short may have removed its report or
	// not, and the report being enqueued at the kill may be there or not.
	i := 0
	for _, e := range enqueued {
		if acked[e.id] {
			continue
		}
		if i < len(got) && got[i].ID == e.id {
			if want := payloadFor(e.n); string(got[i].Payload) != string(want) {
				t.Errorf("report %d: payload %.40q..., want %.40q...", e.n, got[i].Payload, want)
			}
			i++
			continue
		}
		if acking[e.id] {
			continue
		}
		t.Fatalf("report %d (%s) was queued and not acknowledged, but is missing after the kill", e.n, e.id)
	}
	extra := got[i:]
	if len(extra) > 1 {
		t.Errorf("%d reports after the last one the child saw queued, want at most 1", len(extra))
	}
	for _, it := range extra {
		if want := payloadFor(len(enqueued)); string(it.Payload) != string(want) {
			t.Errorf("extra report %s: payload %.40q, want that of report %d", it.ID, it.Payload, len(enqueued))
		}
	}
	if bad, _ := os.ReadDir(filepath.Join(dir, badDir)); len(bad) != 0 {
		t.Errorf("a kill -9 left corrupt entries in bad/: %v\nlog:\n%s", bad, logs)
	}
	t.Logf("child killed after %d reports queued and %d acknowledged; %d recovered", len(enqueued), len(acked), len(got))
}
