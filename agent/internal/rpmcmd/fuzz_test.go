package rpmcmd

import (
	"strings"
	"testing"
)

// FuzzCleanOutput: CleanOutput only drops lines, and only Debian's two
// notices; it is idempotent, and never drops an "error:" line.
func FuzzCleanOutput(f *testing.F) {
	f.Add("rpm: RPM should not be used directly install RPM packages, use Alien instead!\nrpm: However assuming you know what you are doing...\nerror: Failed dependencies:\n\tfoo is needed by bar\n")
	f.Add("Preparing...\nUpdating / installing...\n")
	f.Fuzz(func(t *testing.T, out string) {
		got := CleanOutput(out)
		if CleanOutput(got) != got {
			t.Fatalf("not idempotent on %q", out)
		}
		rest := strings.SplitAfter(out, "\n")
		for _, l := range strings.SplitAfter(got, "\n") {
			if l == "" {
				continue
			}
			// Each kept line is the next line of the input kept in order.
			for len(rest) > 0 && rest[0] != l {
				if d := strings.TrimSpace(rest[0]); !strings.HasPrefix(d, "rpm: ") {
					t.Fatalf("dropped %q from %q", rest[0], out)
				}
				rest = rest[1:]
			}
			if len(rest) == 0 {
				t.Fatalf("%q is not a line of the input %q", l, out)
			}
			rest = rest[1:]
		}
		for _, l := range rest {
			if strings.Contains(l, "error:") && !strings.HasPrefix(strings.TrimSpace(l), "rpm: ") {
				t.Fatalf("dropped %q", l)
			}
		}
	})
}
