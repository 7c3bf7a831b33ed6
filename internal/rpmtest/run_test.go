package rpmtest

import (
	"strings"
	"testing"
	"time"
)

// A wedged tool ends in an error that names it, not in a hung test.
func TestRunToolGivesUp(t *testing.T) {
	start := time.Now()
	_, err := runTool(300*time.Millisecond, nil, true, "sleep", "30")
	if err == nil || !strings.Contains(err.Error(), "sleep 30: gave up after 300ms") {
		t.Fatalf("err = %v, want sleep 30 given up", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("runTool returned after %v", d)
	}
}

// A child that outlives the command and holds its output (as gpg-agent
// does when gpg starts it) does not hold the run, nor fail it.
func TestRunToolDaemonChild(t *testing.T) {
	out, err := runTool(time.Minute, nil, false, "sh", "-c", "sleep 30 & echo started")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "started" {
		t.Fatalf("out = %q", out)
	}
}

func TestRunToolStderrInError(t *testing.T) {
	_, err := runTool(time.Minute, []byte("in"), false, "sh", "-c", "cat >/dev/null; echo broken key >&2; exit 2")
	if err == nil || !strings.Contains(err.Error(), "broken key") {
		t.Fatalf("err = %v, want the standard error in it", err)
	}
}
