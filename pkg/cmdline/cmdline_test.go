package cmdline

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestSuggest(t *testing.T) {
	known := []string{"advisories", "advisory", "cve", "device", "devices", "enroll-token", "import", "login", "summary", "token"}
	for _, c := range []struct {
		typed string
		want  []string
	}{
		{"devcies", []string{"devices"}},
		{"devics", []string{"device", "devices"}},
		{"cev", nil}, // a transposition is two edits; three letters allow one
		{"cvee", []string{"cve"}},
		{"adv", []string{"advisories", "advisory"}},
		{"Summray", []string{"summary"}},
		{"imprt", []string{"import"}},
		{"enroll", []string{"enroll-token"}},
		{"xyz", nil},
		{"", nil},
	} {
		if got := Suggest(c.typed, known); !slices.Equal(got, c.want) {
			t.Errorf("Suggest(%q) = %q, want %q", c.typed, got, c.want)
		}
	}
}

func TestUnknown(t *testing.T) {
	var b bytes.Buffer
	Unknown(&b, "rpmfleet", "devcies\x1b[2J", []string{"devices"})
	if got := b.String(); got != "rpmfleet: unknown command \"devcies\\x1b[2J\"\nRun 'rpmfleet help' for the list.\n" {
		t.Errorf("got %q", got)
	}
	b.Reset()
	Unknown(&b, "rpmfleet", "devics", []string{"devices", "device"})
	if got := b.String(); !strings.Contains(got, "did you mean device or devices?") {
		t.Errorf("got %q", got)
	}
}

// TestBashCompletion sources the script in a real bash and completes
// command names, a command's words and flags, the flags read from a
// program's -h as Go's flag package prints it.
func TestBashCompletion(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "fleetctl")
	help := "Usage: fleetctl cve CVE-ID\n\nFlags:\n  -json\n    \tprint JSON\n  -server string\n    \tfleet server URL\n"
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nprintf '"+strings.ReplaceAll(help, "\n", "\\n")+"' >&2\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var script bytes.Buffer
	if err := Completion(&script, "bash", "fleetctl", []string{"devices", "device", "cve", "token"}, map[string][]string{"device": {"revoke", "delete"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c.bash"), script.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"dev"}, "device devices"},
		{[]string{""}, "cve device devices token"},
		{[]string{"device", "re"}, "revoke"},
		{[]string{"cve", "--j"}, "--json"},
		{[]string{"cve", "-"}, "--json --server"},
	} {
		words := append([]string{prog}, c.words...)
		sh := `source ` + filepath.Join(dir, "c.bash") + `; COMP_WORDS=(` + quoteAll(words) + `); COMP_CWORD=` + strconv.Itoa(len(words)-1) + `; _fleetctl; echo "${COMPREPLY[*]}"`
		out, err := exec.Command("bash", "-c", sh).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != c.want {
			t.Errorf("completing %q: %q, want %q", c.words, got, c.want)
		}
	}
}

func TestCompletionShells(t *testing.T) {
	var b bytes.Buffer
	if err := Completion(&b, "fish", "rpmfleet", []string{"cve", "device"}, map[string][]string{"device": {"revoke"}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`complete -c rpmfleet -n __fish_use_subcommand -f -a "cve device"`, `'__fish_seen_subcommand_from device' -f -a "revoke"`} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("fish script lacks %q:\n%s", s, b.String())
		}
	}
	b.Reset()
	if err := Completion(&b, "zsh", "rpmfleet", []string{"cve"}, nil); err != nil || !strings.HasPrefix(b.String(), "autoload -U +X bashcompinit && bashcompinit\n") {
		t.Errorf("zsh script: %v\n%s", err, b.String())
	}
	if err := Completion(&b, "tcsh", "rpmfleet", nil, nil); !errors.Is(err, ErrShell) {
		t.Errorf("tcsh: %v, want ErrShell", err)
	}
}

func quoteAll(ws []string) string {
	var q []string
	for _, w := range ws {
		q = append(q, "'"+w+"'")
	}
	return strings.Join(q, " ")
}
