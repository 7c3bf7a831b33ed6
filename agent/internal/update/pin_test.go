package update

import (
	"errors"
	"testing"
)

// TestPin: a signed plan's digests go onto the planned packages; a plan
// that pins another version of a package than the repositories offer is a
// verification failure, not a silent install of something else.
func TestPin(t *testing.T) {
	planned := func() []Package {
		return []Package{
			{Name: "openssl-libs", Arch: "aarch64", New: Artifact{NEVRA: "openssl-libs-1:3.0.7-16.el9_2.aarch64"}},
			{Name: "bash", Arch: "aarch64", New: Artifact{NEVRA: "bash-5.1.8-9.el9.aarch64"}},
		}
	}
	tests := []struct {
		name    string
		pinned  map[string]string
		want    []string // PinnedSHA256 per package
		wantErr error
	}{
		{"nothing pinned", nil, []string{"", ""}, nil},
		{"one pinned, upper case", map[string]string{"openssl-libs-1:3.0.7-16.el9_2.aarch64": "ABCD"}, []string{"abcd", ""}, nil},
		{"another version pinned", map[string]string{"bash-5.1.8-10.el9.aarch64": "ab"}, nil, ErrVerify},
		{"unreadable pin", map[string]string{"not a nevra": "ab"}, nil, ErrVerify},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs := planned()
			err := pin(pkgs, tt.pinned)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("pin = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			for i, p := range pkgs {
				if p.New.PinnedSHA256 != tt.want[i] {
					t.Errorf("%s pinned %q, want %q", p.Name, p.New.PinnedSHA256, tt.want[i])
				}
			}
		})
	}
}
