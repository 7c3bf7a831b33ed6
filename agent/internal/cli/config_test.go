package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// repoRoot walks up to go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.mod above the test folder")
		}
		dir = filepath.Dir(dir)
	}
}

// TestConfigCheck runs `rpmfleet-agent config check` as a user would, on the
// shipped example and on broken files.
func TestConfigCheck(t *testing.T) {
	configNow = func() time.Time { return time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC) }
	defer func() { configNow = time.Now }()
	example := filepath.Join(repoRoot(t), "cross/rpmpkg/files/agent.toml.example")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[policy]\nmode = \"sometimes\"\nreboot = \"now\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.toml")
	if err := os.WriteFile(open, []byte("server = \"http://127.0.0.1:8080\"\n[policy]\nmode = \"apply\"\nsecurity_only = false\n[[policy.window]]\ndays = [\"mon-sun\"]\nstart = \"00:00\"\nlength = \"24h\"\ntimezone = \"UTC\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string
		wantStderr string
	}{
		{
			name: "shipped example, with --config",
			args: []string{"config", "check", "--config", example},
			wantOut: example + `: OK
  server:       none: standalone (plans made from the repositories; enrolled, the enrolment's server)
  repositories: baseos, appstream
  mode:         notify (security advisories only, security ones of at least Moderate)
  exclude:      kernel*, grub2*
  reboot:       when-needed
  window:       sat,sun 02:00 for 3h0m0s (Europe/Berlin)
  next window:  Sat 2026-11-28 02:00 CET
  poll:         every 6h0m0s, up to 30m0s later at random (enrolled: 12h0m0s while the MQTT link is up)
  state_dir:    /var/lib/rpmfleet
  root:         /
`,
		},
		{
			name: "window open now, file as an argument",
			args: []string{"config", "check", open},
			wantOut: open + `: OK
  server:       http://127.0.0.1:8080
  repositories: the device's yum.repos.d
  mode:         apply (all advisories)
  reboot:       never
  window:       mon,tue,wed,thu,fri,sat,sun 00:00 for 24h0m0s (UTC)
  next window:  open now
  poll:         every 1h0m0s, 12h0m0s while the MQTT link is up, up to 10m0s later at random
  state_dir:    /var/lib/rpmfleet
  root:         /
`,
		},
		{
			name:       "every problem, then a count",
			args:       []string{"config", "check", "--config", bad},
			wantCode:   ExitError,
			wantStderr: bad + ":2: key \"policy.mode\": bad value \"sometimes\": want notify, download or apply\n" + bad + ":3: key \"policy.reboot\": bad value \"now\": want never or when-needed\n" + bad + ": 2 problems\n",
		},
		{
			name:       "missing file",
			args:       []string{"config", "check", filepath.Join(dir, "absent.toml")},
			wantCode:   ExitError,
			wantStderr: "rpmfleet-agent config check: read config: open " + filepath.Join(dir, "absent.toml") + ": no such file or directory\n",
		},
		{name: "no subcommand", args: []string{"config"}, wantCode: ExitUsage, wantStderr: "Usage: rpmfleet-agent config check [--config FILE | FILE]\n"},
		{name: "two files", args: []string{"config", "check", bad, open}, wantCode: ExitUsage, wantStderr: "Usage: rpmfleet-agent config check [--config FILE | FILE]\n\nFlags:\n  -config string\n    \tconfiguration file to check (default \"/etc/rpmfleet/agent.toml\")\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if stdout.String() != tt.wantOut {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tt.wantOut)
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr:\n%q\nwant:\n%q", stderr.String(), tt.wantStderr)
			}
		})
	}
}
