package repo

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemVarsAgreesWithDnf: the variables of a root's etc/yum/vars and
// etc/dnf/vars, read by SystemVars and by the real dnf's
// Substitutions.update_from_etc with dnf's own varsdir, are the same
// (etc/dnf/vars wins a name both set; a link to a file counts); and
// $releasever comes from os-release unless a file sets it.
func TestSystemVarsAgreesWithDnf(t *testing.T) {
	t.Parallel()
	need(t, "dnf")
	root := t.TempDir()
	files := map[string]string{
		"etc/yum/vars/contentdir": "from-yum\n",
		"etc/dnf/vars/contentdir": "almalinux\n",
		"etc/yum/vars/yumonly":    "y\n",
		"etc/dnf/vars/infra":      "stock\nsecond line ignored\n",
		"etc/os-release":          "NAME=\"AlmaLinux\"\nID=\"almalinux\"\nVERSION_ID=\"9.4\"\n",
		"srv/sigcontent":          "linked\n",
	}
	for p, b := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, full, []byte(b))
	}
	if err := os.Symlink(filepath.Join(root, "srv/sigcontent"), filepath.Join(root, "etc/dnf/vars/sigcontentdir")); err != nil {
		t.Fatal(err)
	}
	got, err := SystemVars(root)
	if err != nil {
		t.Fatal(err)
	}

	dnfPath, _ := exec.LookPath("dnf")
	head, _, _ := strings.Cut(string(readFile(t, dnfPath)), "\n")
	python := strings.TrimSpace(strings.TrimPrefix(head, "#!"))
	script := `
import json, sys, dnf
from dnf.conf.substitutions import Substitutions
b = dnf.Base()
varsdir = list(b.conf.varsdir)
s = Substitutions()
before = dict(s)
s.update_from_etc(sys.argv[1], varsdir=varsdir)
print(json.dumps({k: v for k, v in s.items() if before.get(k) != v}))
`
	out, err := exec.Command(python, "-c", script, root).Output()
	if err != nil {
		t.Fatalf("dnf's python: %v", err)
	}
	var want map[string]string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(want) != 4 {
		t.Fatalf("dnf read %v: the test expects four variables", want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("$%s: ours %q, dnf %q", k, got[k], v)
		}
	}
	if got["releasever"] != "9" || got["basearch"] == "" || got["arch"] == "" {
		t.Errorf("releasever %q basearch %q arch %q", got["releasever"], got["basearch"], got["arch"])
	}
	writeFile(t, filepath.Join(root, "etc/dnf/vars/releasever"), []byte("9.4\n"))
	if got, _ := SystemVars(root); got["releasever"] != "9.4" {
		t.Errorf("releasever from etc/dnf/vars: %q", got["releasever"])
	}
}

// TestReadVarsFIFO: a FIFO planted in etc/dnf/vars is not read (a plain
// open would block the agent for good).
func TestReadVarsFIFO(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "infra"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "contentdir"), []byte("almalinux\n"))
	done := make(chan map[string]string, 1)
	go func() {
		v, err := ReadVars(dir)
		if err != nil {
			t.Error(err)
		}
		done <- v
	}()
	select {
	case v := <-done:
		if _, ok := v["infra"]; ok || v["contentdir"] != "almalinux" {
			t.Errorf("vars %v", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadVars blocked on a FIFO")
	}
}
