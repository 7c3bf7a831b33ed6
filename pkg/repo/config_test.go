package repo

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// repoFiles are .repo files as distributions and admins write them,
// quirks included.
var repoFiles = map[string]string{
	"almalinux-baseos.repo": `# almalinux-baseos.repo
#
# The mirrorlist system uses the connecting IP address of the client and the
# update status of each mirror to pick current mirrors that are geographically
# close to the client.

[baseos]
name=AlmaLinux $releasever - BaseOS
mirrorlist=https://mirrors.almalinux.org/mirrorlist/$releasever/baseos
# baseurl=https://repo.almalinux.org/almalinux/$releasever/BaseOS/$basearch/os/
enabled=1
gpgcheck=1
countme=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-9
metadata_expire=86400
enabled_metadata=1

[baseos-debuginfo]
name=AlmaLinux $releasever - BaseOS - Debug
mirrorlist=https://mirrors.almalinux.org/mirrorlist/$releasever/baseos-debug
enabled=0
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-9
`,
	"local.repo": `[local-updates]
name = Local updates for ${releasever} on $basearch
baseurl = http://updates.lan/el$releasever/$basearch/
  http://backup.lan/el${releasever}/${basearch}/,file:///srv/repo/$custom_var
	https://third.example/$unknown/${alsounknown}/
enabled = yes
gpgcheck = True
repo_gpgcheck=on
gpgkey = file:///etc/pki/rpm-gpg/RPM-GPG-KEY-local, file:///etc/pki/rpm-gpg/RPM-GPG-KEY-local-2
  https://keys.lan/key3
; a comment in the ini style

[no-name]
baseurl=https://repo.example/$basearch
enabled=off
gpgcheck=no
`,
	"z-metalink.repo": `[epel]
name=Extra Packages for Enterprise Linux $releasever - $basearch
metalink=https://mirrors.fedoraproject.org/metalink?repo=epel-$releasever&arch=$basearch&infra=$infra&content=$contentdir
enabled=1
gpgcheck=1
repo_gpgcheck=0
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-$releasever
`,
}

// dnfConfigs asks the real dnf (its Python API, without touching the
// network) how it reads the .repo files in dir.
func dnfConfigs(t *testing.T, dir string, vars map[string]string) []Config {
	t.Helper()
	need(t, "dnf")
	dnfPath, _ := exec.LookPath("dnf")
	head, _, _ := strings.Cut(string(readFile(t, dnfPath)), "\n")
	python := strings.TrimSpace(strings.TrimPrefix(head, "#!"))
	if python == "" || strings.Contains(python, " ") {
		t.Fatalf("cannot tell dnf's python from %q", head)
	}
	varsJSON, _ := json.Marshal(vars)
	script := `
import json, sys, dnf
b = dnf.Base()
b.conf.reposdir = [sys.argv[1]]
for k, v in json.loads(sys.argv[2]).items():
    b.conf.substitutions[k] = v
b.read_all_repos()
out = []
for r in sorted(b.repos.all(), key=lambda r: r.id):
    out.append({"ID": r.id, "Name": r.name, "BaseURLs": list(r.baseurl) or None,
        "MirrorList": r.mirrorlist or "", "Metalink": r.metalink or "",
        "GPGKeys": list(r.gpgkey) or None, "GPGCheck": bool(r.gpgcheck),
        "RepoGPGCheck": bool(r.repo_gpgcheck), "Enabled": bool(r.enabled)})
print(json.dumps(out))
`
	out, err := exec.Command(python, "-c", script, dir, string(varsJSON)).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("dnf's python (%s): %v\n%s\n(run make deps)", python, err, stderr)
	}
	var cs []Config
	if err := json.Unmarshal(out, &cs); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return cs
}

// TestConfigAgreesWithDnf: the same .repo files read by LoadConfigDir and
// by dnf give the same repositories.
func TestConfigAgreesWithDnf(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, body := range repoFiles {
		writeFile(t, filepath.Join(dir, name), []byte(body))
	}
	varsDir := filepath.Join(t.TempDir(), "vars")
	if err := os.MkdirAll(varsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(varsDir, "custom_var"), []byte("from-vars-dir\nignored second line\n"))
	writeFile(t, filepath.Join(varsDir, "infra"), []byte("stock\n"))
	vars, err := ReadVars(varsDir)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"custom_var": "from-vars-dir", "infra": "stock"}; !reflect.DeepEqual(vars, want) {
		t.Fatalf("ReadVars: %v, want %v", vars, want)
	}
	vars["releasever"] = "9"
	vars["basearch"] = "aarch64"

	got, err := LoadConfigDir(dir, vars)
	if err != nil {
		t.Fatal(err)
	}
	want := dnfConfigs(t, dir, vars)
	byID := map[string]Config{}
	for _, c := range got {
		c.File, c.Line = "", 0
		byID[c.ID] = c
	}
	if len(got) != len(want) {
		t.Errorf("%d repositories, dnf reads %d", len(got), len(want))
	}
	for _, w := range want {
		if g := byID[w.ID]; !reflect.DeepEqual(g, w) {
			t.Errorf("repository %s:\n  ours %+v\n   dnf %+v", w.ID, g, w)
		}
	}
	// And by hand, so the test says what dnf says.
	local := byID["local-updates"]
	if want := []string{"http://updates.lan/el9/aarch64/", "http://backup.lan/el9/aarch64/", "file:///srv/repo/from-vars-dir", "https://third.example/$unknown/${alsounknown}/"}; !reflect.DeepEqual(local.BaseURLs, want) {
		t.Errorf("baseurl %q", local.BaseURLs)
	}
}

func TestConfigWhereFrom(t *testing.T) {
	t.Parallel()
	cs, err := ParseConfig(strings.NewReader(repoFiles["local.repo"]), "/etc/yum.repos.d/local.repo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cs[1].ID != "no-name" || cs[1].Name != "no-name" || cs[1].Line != 13 || cs[1].File != "/etc/yum.repos.d/local.repo" {
		t.Errorf("got %+v", cs[1])
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"key outside section", "name=x\n", `x.repo: line 1: key "name" outside a [section]`},
		{"not key=value", "[a]\nbaseurl http://x\n", `x.repo: line 2: "baseurl http://x" is not key=value`},
		{"bad boolean", "[a]\n\nenabled=maybe\n", `x.repo: line 3: repository "a": enabled="maybe": not a boolean`},
		{"unclosed section", "[a\n", `x.repo: line 1: section header "[a" without ]`},
		{"continuation without key", "[a]\n\n  http://x\n", `x.repo: line 3: continuation line "http://x" without a key before it`},
		{"twice", "[a]\nname=1\n[a]\n", `x.repo: line 3: repository "a" defined twice (first at line 1)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(tt.in), "x.repo", nil)
			if !errors.Is(err, ErrRepoConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.repo"), []byte("[same]\nbaseurl=http://a/\n"))
	writeFile(t, filepath.Join(dir, "b.repo"), []byte("[same]\nbaseurl=http://b/\n"))
	if _, err := LoadConfigDir(dir, nil); err == nil || !strings.Contains(err.Error(), `repository "same" already defined in `+filepath.Join(dir, "a.repo")) {
		t.Errorf("got %v", err)
	}
}

func FuzzConfig(f *testing.F) {
	for _, body := range repoFiles {
		f.Add(body)
	}
	// The real stock files of testdata/mirrors.
	for _, p := range []string{"testdata/mirrors/almalinux-9-baseos.repo", "testdata/mirrors/epel-8.repo"} {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(raw))
	}
	f.Fuzz(func(t *testing.T, body string) {
		cs, err := ParseConfig(strings.NewReader(body), "fuzz.repo", map[string]string{"releasever": "9", "basearch": "x86_64"})
		if err != nil {
			return
		}
		for _, c := range cs {
			if c.ID == "" || c.Line < 1 {
				t.Fatalf("bad config %+v", c)
			}
		}
	})
}
