package verify

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzFile feeds mutated real packages to the checker: it must never panic,
// every refusal must be an *Error, and nothing may be accepted unless a
// pinned key signed it.
func FuzzFile(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.rpm"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed packages in testdata: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	kr, err := LoadKeyring(td("rpm.org-rsa-2048-test.pub"), td("RPM-GPG-KEY-CentOS-7"), td("RPM-GPG-KEY-redhat9-release"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := check(bytes.NewReader(b), int64(len(b)), kr, nil)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind < Malformed || e.Kind > Mismatch || e.Detail == "" {
				t.Fatalf("refusal is not a well-formed *Error: %#v", err)
			}
			return
		}
		if len(res.Signatures) == 0 || res.Name == "" || res.Version == "" {
			t.Fatalf("accepted without a signature or a name: %+v", res)
		}
	})
}
