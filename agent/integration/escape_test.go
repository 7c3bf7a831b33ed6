package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckEscapesWhatSourcesSay: an advisory's id, title and package
// fields come from a repository or a file someone else wrote. check's
// table shows them escaped, so a title holding ESC[2J (clear the screen),
// a newline that forges a row, or U+202E (right-to-left override) cannot
// drive the admin's terminal.
func TestCheckEscapesWhatSourcesSay(t *testing.T) {
	root := manifestRoot(t, ubi9Manifest, alma9Release)
	// OSV is JSON, which may carry any character (XML 1.0 refuses ESC
	// even as a character reference).
	src := filepath.Join(t.TempDir(), "advisory.json")
	title := "Important: openssl \x1b[2J\x1b[Hupdate\nALSA-FAKE:1  security  Critical  all is well \u202eevil"
	obj, err := json.Marshal(map[string]any{
		"id":      "ALSA-2099:0001",
		"summary": title,
		"affected": []any{map[string]any{
			"package": map[string]any{"ecosystem": "AlmaLinux:9", "name": "openssl-libs"},
			"ranges": []any{map[string]any{"type": "ECOSYSTEM", "events": []any{
				map[string]any{"introduced": "0"}, map[string]any{"fixed": "1:3.9.0-1.el9"}}}},
		}},
		"related":   []string{"CVE-2099-0001"},
		"published": "2099-01-01T00:00:00Z",
		"modified":  "2099-01-01T00:00:00Z",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runAgent(t, "check", "--root", root, "--advisories", src)
	if r.code != 100 {
		t.Fatalf("exit %d, want 100; stderr:\n%s", r.code, r.stderr)
	}
	if strings.ContainsAny(r.stdout, "\x1b\u202e") {
		t.Errorf("check printed a raw escape or override:\n%q", r.stdout)
	}
	for _, want := range []string{`\x1b[2J`, `\x0a`, `\u202e`, "ALSA-2099:0001"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "\nALSA-FAKE:1") {
		t.Errorf("the title's newline forged a row:\n%s", r.stdout)
	}
}
