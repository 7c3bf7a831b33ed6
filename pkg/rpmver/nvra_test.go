package rpmver

import "testing"

// TestNVRA: the rpm -qa form never writes an epoch, 0 or not.
func TestNVRA(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"openssl-libs-1:3.0.7-16.el9_2.aarch64", "openssl-libs-3.0.7-16.el9_2.aarch64"},
		{"bash-0:5.1.8-6.el9_1.x86_64", "bash-5.1.8-6.el9_1.x86_64"},
		{"tzdata-2023c-1.el9.noarch", "tzdata-2023c-1.el9.noarch"},
	} {
		n, err := ParseNEVRA(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.NVRA(); got != c.want {
			t.Errorf("ParseNEVRA(%q).NVRA() = %q, want %q", c.in, got, c.want)
		}
	}
}
