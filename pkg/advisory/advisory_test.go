package advisory

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestBoundDescription: a description is kept as written but for its
// surrounding space, Windows line ends, and what a text column refuses;
// past MaxDescription it is cut on a character boundary with a closing
// line naming its size, and never passes MaxDescription.
func TestBoundDescription(t *testing.T) {
	long := strings.Repeat("é", MaxDescription) // two bytes each: 32 KiB
	for _, tt := range []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"trimmed", "\n  A fix.\n\n", "A fix."},
		{"paragraphs kept", "One.\n\n* two\n* three", "One.\n\n* two\n* three"},
		{"windows line ends", "One.\r\n\r\nTwo.", "One.\n\nTwo."},
		{"escape codes kept for the printer to escape", "a\x1b[2Jb", "a\x1b[2Jb"},
		{"invalid UTF-8 and NUL", "a\xffb\x00c", "a\uFFFDb\uFFFDc"},
		{"at the limit", strings.Repeat("d", MaxDescription), strings.Repeat("d", MaxDescription)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := BoundDescription(tt.in); got != tt.want {
				t.Errorf("BoundDescription(%.40q) = %.40q, want %.40q", tt.in, got, tt.want)
			}
		})
	}
	for _, in := range []string{strings.Repeat("d", MaxDescription+1), long, "x" + long, strings.Repeat("word ", 50000)} {
		got := BoundDescription(in)
		tail := fmt.Sprintf("\n[description truncated: %d bytes]", len(strings.TrimSpace(in)))
		if len(got) > MaxDescription || !strings.HasSuffix(got, tail) || !utf8.ValidString(got) {
			t.Errorf("a %d-byte description kept as %d bytes ending %q; want at most %d, valid UTF-8, ending %q",
				len(in), len(got), got[max(0, len(got)-40):], MaxDescription, tail)
		}
		if kept := strings.TrimSuffix(got, tail); !strings.HasPrefix(in, kept) || len(kept) < MaxDescription-len(tail)-8 {
			t.Errorf("a %d-byte description kept %d bytes of its start; want all that fits", len(in), len(kept))
		}
	}
}
