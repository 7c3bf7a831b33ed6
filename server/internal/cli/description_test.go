package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/api"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// descriptionServer starts a real API over a SQLite file and returns a
// function running a CLI command against it, with its exit code, stdout
// and stderr.
func descriptionServer(t *testing.T) func(args ...string) (int, string, string) {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := fleet.New(ctx, st, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: "t", Role: protocol.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(svc, api.Options{TempDir: t.TempDir()}))
	t.Cleanup(srv.Close)
	return func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		code := commands[args[0]].run(context.Background(), e, append(args[1:], "--server", srv.URL, "--token", admin.Token, "--utc"))
		return code, out.String(), errb.String()
	}
}

// descriptionBlocks returns the lines of each "Description:" block of an
// advisory's output, without their indent.
func descriptionBlocks(out string) [][]string {
	var blocks [][]string
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case l == "  Description:":
			blocks = append(blocks, nil)
			in = true
		case in && (l == "" || strings.HasPrefix(l, "    ")):
			blocks[len(blocks)-1] = append(blocks[len(blocks)-1], strings.TrimPrefix(l, "    "))
		default:
			in = false
		}
	}
	for i, b := range blocks { // a blank line before the next block is not the description's
		for len(b) > 0 && b[len(b)-1] == "" {
			b = b[:len(b)-1]
		}
		blocks[i] = b
	}
	return blocks
}

// checkBlock holds a printed description to the one it shows: the same
// words in the same order, a blank line per paragraph break, every line
// within 80 columns but for a word longer than the width.
func checkBlock(t *testing.T, what string, lines []string, want string) {
	t.Helper()
	if got, w := strings.Fields(strings.Join(lines, "\n")), strings.Fields(want); strings.Join(got, " ") != strings.Join(w, " ") {
		t.Errorf("%s: printed description has %d words, the advisory's %d:\n%s", what, len(got), len(w), strings.Join(lines, "\n"))
	}
	blank := 0
	for _, l := range lines {
		if l == "" {
			blank++
		}
		if n := utf8.RuneCountInString(l); n > descriptionWidth && strings.Contains(strings.TrimSpace(l), " ") {
			t.Errorf("%s: a line of %d characters: %q", what, n, l)
		}
	}
	if paras := strings.Count(want, "\n\n"); blank != paras {
		t.Errorf("%s: %d blank lines, want one per paragraph break (%d)", what, blank, paras)
	}
}

// TestAdvisoryDescription: the real ALSA-2023:3722, imported with
// "rpmfleet import" (an upload through the API), is shown by "rpmfleet
// advisory" with its description in a Description block, wrapped as dnf
// updateinfo info wraps it, and whole in --json; importing the same file
// again changes nothing.
func TestAdvisoryDescription(t *testing.T) {
	cli := descriptionServer(t)
	path := fixtures.Path(t, "almalinux-osv/samples/almalinux9_ALSA-2023_3722.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct{ Details string }
	if err := json.Unmarshal(raw, &obj); err != nil || !strings.HasPrefix(obj.Details, "OpenSSL is a toolkit") {
		t.Fatalf("the sample's details %.40q, %v", obj.Details, err)
	}
	for i, want := range []int{1, 0} {
		code, out, errs := cli("import", path, "--json")
		var resp protocol.ImportResponse
		if code != ExitOK || json.Unmarshal([]byte(out), &resp) != nil || resp.Advisories != 1 || resp.Changed != want {
			t.Fatalf("import %d: exit %d, %s%s; want 1 advisory, %d changed", i+1, code, out, errs, want)
		}
	}

	code, out, errs := cli("advisory", "ALSA-2023:3722")
	if code != ExitOK {
		t.Fatalf("advisory: exit %d\n%s%s", code, out, errs)
	}
	t.Logf("rpmfleet advisory ALSA-2023:3722:\n%s", out)
	blocks := descriptionBlocks(out)
	if len(blocks) != 1 || !strings.Contains(out, "\n  Description:\n    OpenSSL is a toolkit that implements the Secure Sockets Layer (SSL) and\n") ||
		!strings.Contains(out, "\n    * openssl: Possible DoS translating ASN.1 object identifiers (CVE-2023-2650)\n") ||
		!strings.Contains(out, "\n    * openssl: Denial of service by excessive resource usage in verifying X509\n      policy constraints (CVE-2023-0464)\n") {
		t.Fatalf("advisory output:\n%s\nwant one Description block, wrapped, its bullets on lines of their own and their continuations under their text", out)
	}
	checkBlock(t, "ALSA-2023:3722", blocks[0], obj.Details)
	// dnf's order: the description, then packages and references.
	if d, p, r := strings.Index(out, "  Description:"), strings.Index(out, "  Packages:"), strings.Index(out, "  References:"); !(d < p && p < r) {
		t.Errorf("Description at %d, Packages at %d, References at %d; want that order", d, p, r)
	}

	_, out, _ = cli("advisory", "ALSA-2023:3722", "--json")
	var a protocol.AdvisoryStatus
	if err := json.Unmarshal([]byte(out), &a); err != nil || len(a.Releases) != 1 || a.Releases[0].Description != obj.Details {
		t.Fatalf("advisory --json: %v, releases %d; want the details whole:\n%s", err, len(a.Releases), out)
	}
}

// TestAdvisoryDescriptionPerRelease: the real ALSA-2024:0265 covers
// AlmaLinux 8 and 9; each release's block shows that release's
// description, under its release line.
func TestAdvisoryDescriptionPerRelease(t *testing.T) {
	cli := descriptionServer(t)
	if code, out, errs := cli("import", fixtures.Path(t, "almalinux-osv/samples/almalinux9_ALSA-2024_0265.json")); code != ExitOK {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	_, out, _ := cli("advisory", "ALSA-2024:0265")
	r8, r9, d := strings.Index(out, "  Release AlmaLinux:8"), strings.Index(out, "  Release AlmaLinux:9"), strings.Index(out, "  Description:")
	d2 := strings.LastIndex(out, "  Description:")
	if len(descriptionBlocks(out)) != 2 || !(r8 < d && d < r9 && r9 < d2) {
		t.Fatalf("advisory output:\n%s\nwant a Description block under each release", out)
	}
}

// TestAdvisoryDescriptionUpdateinfo: the real EPEL 4 updateinfo.xml
// (422 updates), imported with "rpmfleet import", shows a short description
// whole and its longest, 18 KB (FEDORA-EPEL-2011-3177, cobbler), cut to 16
// KiB with a closing line saying how long it was.
func TestAdvisoryDescriptionUpdateinfo(t *testing.T) {
	cli := descriptionServer(t)
	path := fixtures.Path(t, "updateinfo/fedora-epel-historical/epel-4-SRPMS-updateinfo.xml.gz")
	if code, out, errs := cli("import", path); code != ExitOK {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Updates []struct {
			ID          string `xml:"id"`
			Description string `xml:"description"`
		} `xml:"update"`
	}
	if err := xml.NewDecoder(zr).Decode(&doc); err != nil || len(doc.Updates) != 422 {
		t.Fatalf("%d updates, %v", len(doc.Updates), err)
	}
	want := map[string]string{}
	for _, u := range doc.Updates {
		want[strings.TrimSpace(u.ID)] = strings.TrimSpace(u.Description)
	}

	const long = "FEDORA-EPEL-2011-3177"
	_, out, _ := cli("advisory", long, "--json")
	var a protocol.AdvisoryStatus
	if err := json.Unmarshal([]byte(out), &a); err != nil || len(a.Releases) != 1 {
		t.Fatalf("advisory --json: %v:\n%s", err, out)
	}
	tail := fmt.Sprintf("\n[description truncated: %d bytes]", len(want[long]))
	if got := a.Releases[0].Description; len(want[long]) != 18184 || len(got) > advisory.MaxDescription ||
		!strings.HasSuffix(got, tail) || !strings.HasPrefix(want[long], strings.TrimSuffix(got, tail)) {
		t.Errorf("%s: a %d-byte description shown as %d bytes ending %q; want its start, at most %d bytes, ending %q",
			long, len(want[long]), len(got), got[max(0, len(got)-60):], advisory.MaxDescription, tail)
	}
	_, out, _ = cli("advisory", long)
	if !strings.Contains(out, "\n    [description truncated: 18184 bytes]\n") {
		t.Errorf("the text output does not say the description was cut:\n%s", out[max(0, len(out)-400):])
	}

	const short = "FEDORA-EPEL-2012-0619"
	_, out, _ = cli("advisory", short)
	blocks := descriptionBlocks(out)
	if want[short] == "" || len(blocks) != 1 {
		t.Fatalf("%s: %d Description blocks for %.40q:\n%s", short, len(blocks), want[short], out)
	}
	checkBlock(t, short, blocks[0], want[short])
}

// TestAdvisoryDescriptionEscaped: a description laden with escape
// sequences (clear screen, retitle the terminal, a bell, a right-to-left
// override) and a NUL, in the real ALSA-2023:3722 with its details
// replaced, comes out of "rpmfleet advisory" as visible escapes and never
// raw, in text and in --json, and bounded to 16 KiB.
func TestAdvisoryDescriptionEscaped(t *testing.T) {
	cli := descriptionServer(t)
	raw, err := os.ReadFile(fixtures.Path(t, "almalinux-osv/samples/almalinux9_ALSA-2023_3722.json"))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	obj["details"] = "Fixes\x1b[2J\x1b]0;owned\x07 \u202eevil\u202c\x00 everything.\n\n" + strings.Repeat("Padding prose. ", 3000)
	evil, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "evil.json")
	if err := os.WriteFile(path, evil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := cli("import", path); code != ExitOK {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	_, out, _ := cli("advisory", "ALSA-2023:3722")
	if strings.ContainsAny(out, "\x1b\x07\x00\u202e\u202c") {
		t.Errorf("raw control or format characters in the output:\n%q", out)
	}
	if !strings.Contains(out, "\n    Fixes\\x1b[2J\\x1b]0;owned\\x07 \\u202eevil\\u202c\uFFFD everything.\n") ||
		!strings.Contains(out, "\n    [description truncated: ") {
		t.Errorf("the description is not shown escaped and cut:\n%.600s", out)
	}
	_, out, _ = cli("advisory", "ALSA-2023:3722", "--json")
	if strings.ContainsAny(out, "\x1b\x07\x00\u202e\u202c") {
		t.Errorf("raw control or format characters in the JSON output:\n%q", out)
	}
	var a protocol.AdvisoryStatus
	if err := json.Unmarshal([]byte(out), &a); err != nil || len(a.Releases) != 1 {
		t.Fatalf("advisory --json: %v", err)
	}
	if d := a.Releases[0].Description; len(d) > advisory.MaxDescription || !strings.HasPrefix(d, "Fixes\x1b[2J\x1b]0;owned\x07 \u202eevil\u202c\uFFFD everything.") {
		t.Errorf("JSON description of %d bytes: %.60q; want the text as imported (escaped only in transit), at most %d bytes", len(d), d, advisory.MaxDescription)
	}
}
