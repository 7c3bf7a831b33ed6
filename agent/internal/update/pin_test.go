package update

import (
	"errors"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

func key(t *testing.T, s string) rpmver.Key {
	t.Helper()
	n, err := rpmver.ParseNEVRA(s)
	if err != nil {
		t.Fatal(err)
	}
	return n.Key()
}

// TestPin: a signed plan's digests go onto the planned packages; a plan
// that pins another version of a package than the repositories offer is a
// verification failure, not a silent install of something else.
func TestPin(t *testing.T) {
	t.Parallel()
	planned := func() []Package {
		return []Package{
			{Name: "openssl-libs", Arch: "aarch64", New: Artifact{NEVRA: "openssl-libs-1:3.0.7-16.el9_2.aarch64"}},
			{Name: "bash", Arch: "aarch64", New: Artifact{NEVRA: "bash-5.1.8-9.el9.aarch64"}},
		}
	}
	tests := []struct {
		name    string
		pins    map[rpmver.Key]string
		want    []string // PinnedSHA256 per package
		wantErr error
	}{
		{"nothing pinned", nil, []string{"", ""}, nil},
		{"one pinned, upper case", map[rpmver.Key]string{key(t, "openssl-libs-1:3.0.7-16.el9_2.aarch64"): "ABCD"}, []string{"abcd", ""}, nil},
		{"epoch 0 pins the build without one", map[rpmver.Key]string{key(t, "bash-0:5.1.8-9.el9.aarch64"): "ef"}, []string{"", "ef"}, nil},
		{"another version pinned", map[rpmver.Key]string{key(t, "bash-5.1.8-10.el9.aarch64"): "ab"}, nil, ErrVerify},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs := planned()
			err := pin(pkgs, tt.pins)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("pin = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrVerify) {
					t.Errorf("pin = %v, want it classed ErrVerify", err)
				}
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

// TestInstalledName: the installed build's name is name-From.arch byte for
// byte, with or without an epoch, as the messages that name it always
// wrote it.
func TestInstalledName(t *testing.T) {
	t.Parallel()
	for _, p := range []Package{
		{Name: "openssl-libs", Arch: "aarch64", From: "1:3.0.1-23.el9_0"},
		{Name: "bash", Arch: "x86_64", From: "5.1.8-6.el9_1"},
		{Name: "python3.11-pip", Arch: "noarch", From: "22.3.1-4.el9"},
	} {
		if got, want := p.installedName(), p.Name+"-"+p.From+"."+p.Arch; got != want {
			t.Errorf("installedName = %q, want %q", got, want)
		}
	}
}
