package rpmpkg

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/cross/internal/crosstest"
)

// TestShippedConfigsPassConfigCheck has the real agent's `config check`
// read the configuration the package installs, the example as shipped, and
// the example with every commented-out key switched on, so the example
// cannot drift from the parser. The files those keys name are made in a
// temporary folder.
func TestShippedConfigsPassConfigCheck(t *testing.T) {
	agentBin := agent(t, crosstest.Target{GOARCH: "amd64"}, "1.0.0")
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"notice-key.pub": base64.StdEncoding.EncodeToString(pub) + "\n",
		"mqtt-password":  "not-a-real-password\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) string {
		b, err := packaging.ReadFile("files/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	example := read("agent.toml.example")
	allKeys := regexp.MustCompile(`(?m)^# ([a-z_]+ = )`).ReplaceAllString(example, "$1")
	allKeys = strings.ReplaceAll(allKeys, "/etc/rpmfleet/", dir+"/")
	if strings.Count(allKeys, "\n") != strings.Count(example, "\n") || allKeys == example {
		t.Fatal("uncommenting the example changed nothing")
	}

	tests := []struct {
		name, text string
		ok         bool
	}{
		{"agent.toml", read("agent.toml"), true},
		{"agent.toml.example", example, true},
		{"example with every key", allKeys, true},
		{"example with a misspelt key", strings.Replace(example, "interval = ", "intervall = ", 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".toml")
			if err := os.WriteFile(f, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := crosstest.Command(dir, nil, agentBin, "config", "check", f).CombinedOutput()
			if (err == nil) != tt.ok {
				t.Errorf("config check: %v, want ok=%v\n%s", err, tt.ok, out)
			}
		})
	}
}
