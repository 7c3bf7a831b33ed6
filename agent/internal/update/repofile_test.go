package update

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

var repoVars = map[string]string{"$basearch": "aarch64", "$releasever": "9"}

func TestParseRepoFile(t *testing.T) {
	const almalinux = `# AlmaLinux 9 BaseOS, as shipped, with a baseurl added
[baseos]
name=AlmaLinux $releasever - BaseOS
mirrorlist=https://mirrors.almalinux.org/mirrorlist/$releasever/baseos
baseurl=https://repo.almalinux.org/almalinux/$releasever/BaseOS/$basearch/os/
enabled=1
gpgcheck=1
countme=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-9
       file:///etc/pki/rpm-gpg/RPM-GPG-KEY-extra

[baseos-debuginfo]
baseurl=https://vault.almalinux.org/$releasever/BaseOS/debug/$basearch/
enabled=0

[mirrors-only]
mirrorlist=https://example.org/mirrorlist
`
	got, err := ParseRepoFile("almalinux-baseos.repo", strings.NewReader(almalinux), repoVars)
	if err != nil {
		t.Fatal(err)
	}
	want := []RepoConfig{{ID: "baseos", BaseURL: "https://repo.almalinux.org/almalinux/9/BaseOS/aarch64/os/", GPGCheck: true,
		GPGKeys: []string{"/etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-9", "/etc/pki/rpm-gpg/RPM-GPG-KEY-extra"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParseRepoFileErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"key before section", "baseurl=http://x/\n", "x.repo:1: \"baseurl=http://x/\" before any [section]"},
		{"not key=value", "[a]\nbaseurl http://x/\n", "x.repo:2: \"baseurl http://x/\" is not key=value"},
		{"bad header", "[a\n", "x.repo:1: section header"},
		{"network key", "[a]\nbaseurl=http://x/\ngpgkey=https://x/key\n", "gpgkey \"https://x/key\" is not a file:// URL"},
		{"unknown variable", "[a]\nbaseurl=http://x/$contentdir/\n", "variable this agent does not know"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRepoFile("x.repo", strings.NewReader(tt.in), repoVars)
			if !errors.Is(err, ErrRepoFile) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrRepoFile with %q", err, tt.want)
			}
		})
	}
}

func FuzzParseRepoFile(f *testing.F) {
	f.Add("[a]\nbaseurl=http://x/$basearch/\ngpgkey=file:///k\n  file:///k2\nenabled=1\n")
	f.Add("[a\n")
	f.Add("; c\n[b]\nenabled=0\n")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseRepoFile("fuzz.repo", strings.NewReader(s), repoVars)
		if err != nil {
			if !errors.Is(err, ErrRepoFile) && !strings.Contains(err.Error(), "fuzz.repo") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, r := range rs {
			if r.BaseURL == "" {
				t.Fatalf("repository without a baseurl: %+v", r)
			}
		}
	})
}
