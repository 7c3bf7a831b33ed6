package osv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// TestDescriptions: with Options.Descriptions the real ALSA-2023:3722
// carries its details, as encoding/json reads them, in each release's
// advisory; without, none. A details of 200 KB laden with escape codes and
// a NUL (the real object with its details replaced) is kept bounded, with
// the escape codes as they are (printing escapes them) and the NUL made
// U+FFFD.
func TestDescriptions(t *testing.T) {
	raw, err := os.ReadFile("testdata/samples/almalinux9_ALSA-2023_3722.json")
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	details := obj["details"].(string)

	got, err := decodeAll(bytes.NewReader(raw), Options{Descriptions: true})
	if err != nil || len(got) != 1 {
		t.Fatalf("%d advisories, %v", len(got), err)
	}
	if got[0].Description != details || !strings.Contains(got[0].Description, "\n\n* openssl: Possible DoS translating ASN.1 object identifiers (CVE-2023-2650)\n") {
		t.Errorf("description %.80q..., want the details %.80q...", got[0].Description, details)
	}
	plain, err := decodeAll(bytes.NewReader(raw), Options{})
	if err != nil || len(plain) != 1 || plain[0].Description != "" {
		t.Fatalf("without Descriptions: %d advisories, %v, description %.40q; want none kept", len(plain), err, plain[0].Description)
	}
	got[0].Description = ""
	if msg := diffAdvisory(&got[0], &plain[0]); msg != "" {
		t.Errorf("Descriptions changed more than the description: %s", msg)
	}

	evil := "\x1b[2J\x1b]0;owned\x07\u202e" + strings.Repeat("A long line of prose. ", 10000) + "\x00"
	obj["details"] = evil
	big, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	got, err = decodeAll(bytes.NewReader(big), Options{Descriptions: true})
	if err != nil || len(got) != 1 {
		t.Fatalf("%d advisories, %v", len(got), err)
	}
	d := got[0].Description
	tail := fmt.Sprintf("\n[description truncated: %d bytes]", len(strings.TrimSpace(evil))+2) // the NUL became 3 bytes
	if len(d) > advisory.MaxDescription || !strings.HasPrefix(d, "\x1b[2J\x1b]0;owned\x07\u202eA long line") || !strings.HasSuffix(d, tail) {
		t.Errorf("a %d-byte details kept as %d bytes: %.40q ... %q; want at most %d, ending %q", len(evil), len(d), d, d[max(0, len(d)-50):], advisory.MaxDescription, tail)
	}
}

// TestDescriptionsCostNothingUnasked: on the real AlmaLinux 9 database the
// agent's decoder (no Descriptions) allocates less than the server's by at
// least the descriptions the server keeps: it passes details over without
// a copy.
func TestDescriptionsCostNothingUnasked(t *testing.T) {
	raw, err := os.ReadFile(fixture(t, "almalinux9.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	alloc := func(descs bool) (uint64, int, int) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d := NewDecoder(bytes.NewReader(raw), Options{Ecosystem: "AlmaLinux:9", Descriptions: descs})
		defer d.Close()
		n, count := 0, 0
		for {
			a, err := d.Next()
			if err != nil {
				break
			}
			n += len(a.Description)
			count++
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, n, count
	}
	alloc(false) // warm up
	plain, none, count := alloc(false)
	kept, n, _ := alloc(true)
	t.Logf("AlmaLinux 9, %d advisories: %d KiB allocated without descriptions, %d KiB keeping %d KiB of them", count, plain>>10, kept>>10, n>>10)
	if none != 0 || n == 0 {
		t.Fatalf("descriptions kept: %d bytes unasked, %d asked", none, n)
	}
	if kept < plain+uint64(n) {
		t.Errorf("keeping %d bytes of descriptions allocated only %d bytes more than not keeping them: the plain decoder copies them too", n, kept-plain)
	}
}
