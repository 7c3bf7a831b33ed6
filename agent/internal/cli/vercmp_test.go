package cli

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
)

// TestVercmp runs `rpmfleet-agent vercmp A B` as a user would, and holds
// each verdict it prints to the real rpm's rpm.vercmp on the same strings.
func TestVercmp(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantOut    string
		wantCode   int
		wantStderr string
	}{
		{name: "tilde pre-release is older", args: []string{"1.0~rc1", "1.0"}, wantOut: "1.0~rc1 < 1.0\n"},
		{name: "caret snapshot sits between", args: []string{"1.0^git1", "1.0.1"}, wantOut: "1.0^git1 < 1.0.1\n"},
		{name: "epoch wins over version", args: []string{"1:1.0", "2.0"}, wantOut: "1:1.0 > 2.0\n"},
		{name: "epoch 0 is no epoch", args: []string{"0:3.0.1-23.el9_0", "3.0.1-23.el9_0"}, wantOut: "0:3.0.1-23.el9_0 == 3.0.1-23.el9_0\n"},
		{name: "openssl fix of ALSA-2023:3722", args: []string{"1:3.0.1-23.el9_0", "1:3.0.7-16.el9_2"}, wantOut: "1:3.0.1-23.el9_0 < 1:3.0.7-16.el9_2\n"},
		{name: "release after the last dash", args: []string{"1.2-3-4", "1.2-3-5"}, wantOut: "1.2-3-4 < 1.2-3-5\n"},
		{name: "no release sorts first", args: []string{"1.0", "1.0-1"}, wantOut: "1.0 < 1.0-1\n"},
		{name: "leading zeros", args: []string{"1.010", "1.10"}, wantOut: "1.010 == 1.10\n"},
		{name: "numbers beyond 64 bits", args: []string{"1.100000000000000000000", "1.99999999999999999999"}, wantOut: "1.100000000000000000000 > 1.99999999999999999999\n"},
		{name: "same after separators", args: []string{"1_0", "1.0"}, wantOut: "1_0 == 1.0\n"},
		{name: "empty version refused", args: []string{"", "1.0"}, wantCode: ExitError, wantStderr: "rpmfleet-agent vercmp: parse EVR \"\": rpmver: empty version"},
		{name: "one argument", args: []string{"1.0"}, wantCode: ExitUsage, wantStderr: "Usage: rpmfleet-agent vercmp A B"},
		{name: "three arguments", args: []string{"1", "2", "3"}, wantCode: ExitUsage, wantStderr: "Usage: rpmfleet-agent vercmp A B"},
		{name: "help", args: []string{"-h"}, wantCode: ExitOK, wantStderr: "Usage: rpmfleet-agent vercmp A B"},
	}
	var rpmPairs [][2]string
	var rpmWant []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), append([]string{"vercmp"}, tt.args...), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			if stdout.String() != tt.wantOut {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.wantOut)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want it to hold %q", stderr.String(), tt.wantStderr)
			}
			if tt.wantOut != "" {
				op := strings.Fields(tt.wantOut)[1]
				rpmPairs = append(rpmPairs, [2]string{tt.args[0], tt.args[1]})
				rpmWant = append(rpmWant, map[string]string{"<": "-1", "==": "0", ">": "1"}[op])
			}
		})
	}

	// The same verdicts from the real rpm, in one call.
	rpm, err := exec.LookPath("rpm")
	if err != nil {
		t.Fatalf("%v; run make deps", err)
	}
	var lua strings.Builder
	lua.WriteString("%{lua:\n")
	for _, p := range rpmPairs {
		lua.WriteString("io.write(rpm.vercmp([==[" + p[0] + "]==], [==[" + p[1] + "]==]), '\\n')\n")
	}
	lua.WriteString("}")
	out, err := exec.Command(rpm, "--eval", lua.String()).Output()
	if err != nil {
		t.Fatalf("rpm --eval: %v", err)
	}
	got := strings.Fields(string(out))
	if strings.Join(got, " ") != strings.Join(rpmWant, " ") {
		t.Errorf("rpm.vercmp on %q says %v; the command says %v", rpmPairs, got, rpmWant)
	}
}
