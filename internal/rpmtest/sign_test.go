package rpmtest

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

func mustTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: run make deps", tool)
		}
	}
}

// TestNewKey makes both kinds of key and reads them back with gpg; a second
// key of the same kind and name is the same key, imported, not regenerated.
func TestNewKey(t *testing.T) {
	mustTools(t, "gpg", "gpgconf")
	for _, tc := range []struct {
		kind KeyKind
		algo string // as gpg --show-keys prints it
	}{{KeyRSA4096, "rsa4096"}, {KeyEd25519, "ed25519"}} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			k := NewKey(t, tc.kind, "rpmtest-"+tc.kind.String())
			if !regexp.MustCompile(`^[0-9A-F]{40}$`).MatchString(k.Fingerprint) || !strings.HasSuffix(k.Fingerprint, k.KeyID) || len(k.KeyID) != 16 {
				t.Fatalf("fingerprint %q, key id %q", k.Fingerprint, k.KeyID)
			}
			out, err := exec.Command("gpg", "--batch", "--homedir", t.TempDir(), "--show-keys", "--with-colons", k.PublicKeyFile).CombinedOutput()
			if err != nil {
				t.Fatalf("gpg --show-keys %s: %v: %s", k.PublicKeyFile, err, out)
			}
			show, _ := exec.Command("gpg", "--batch", "--homedir", t.TempDir(), "--show-keys", k.PublicKeyFile).CombinedOutput()
			if !strings.Contains(string(out), "fpr:::::::::"+k.Fingerprint+":") || !strings.Contains(string(show), tc.algo) || !strings.Contains(string(out), k.UserID) {
				t.Errorf("public key file does not hold %s %s %q:\n%s%s", tc.algo, k.Fingerprint, k.UserID, out, show)
			}
			start := time.Now()
			again := NewKey(t, tc.kind, "rpmtest-"+tc.kind.String())
			t.Logf("second key in %v", time.Since(start))
			if again.Fingerprint != k.Fingerprint || again.Home == k.Home {
				t.Errorf("second key %s in %s, want the same key %s in a new home", again.Fingerprint, again.Home, k.Fingerprint)
			}
			if tc.kind == KeyEd25519 { // cheap to generate
				other := NewKey(t, tc.kind, "rpmtest-other-"+tc.kind.String())
				if other.Fingerprint == k.Fingerprint {
					t.Errorf("two names gave the same key %s", k.Fingerprint)
				}
			}
		})
	}
}

// TestSign signs built stubs with both key kinds, header-only and v3-style,
// and asks the real rpmkeys what it sees: the right signatures by the right
// key, OK with the key imported and NOKEY without it.
func TestSign(t *testing.T) {
	mustTools(t, "gpg", "gpgconf", "rpmsign", "rpmkeys", "rpmbuild")
	rsa := NewKey(t, KeyRSA4096, "rpmtest-rsa4096")
	ed := NewKey(t, KeyEd25519, "rpmtest-ed25519")
	for _, tc := range []struct {
		name string
		key  *Key
		sign func(*Key, ...string) error
		want []string // rpmkeys -Kv lines
	}{
		{"RSA header-only", rsa, Sign, []string{"Header V4 RSA/SHA512 Signature, key ID " + strings.ToLower(rsa.KeyID[8:]) + ": OK"}},
		{"EdDSA header-only", ed, Sign, []string{"Header V4 EdDSA/SHA256 Signature, key ID " + strings.ToLower(ed.KeyID[8:]) + ": OK"}},
		{"RSA v3", rsa, SignV3, []string{"Header V4 RSA/SHA512 Signature, key ID " + strings.ToLower(rsa.KeyID[8:]) + ": OK", "\n    V4 RSA/SHA512 Signature, key ID " + strings.ToLower(rsa.KeyID[8:]) + ": OK"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			paths, err := Build(dir, Package{Name: "signed", Version: "1.0", Release: "1", Arch: "noarch", Files: map[string]string{"/etc/signed.conf": "x=1\n"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.sign(tc.key, paths...); err != nil {
				t.Fatal(err)
			}
			db := t.TempDir()
			nokey, _ := exec.Command("rpmkeys", "--dbpath", db, "-Kv", paths[0]).CombinedOutput()
			if !strings.Contains(string(nokey), "NOKEY") {
				t.Errorf("without the key rpmkeys says:\n%s", nokey)
			}
			if out, err := exec.Command("rpmkeys", "--dbpath", db, "--import", tc.key.PublicKeyFile).CombinedOutput(); err != nil {
				t.Fatalf("rpmkeys --import: %v: %s", err, out)
			}
			out, err := exec.Command("rpmkeys", "--dbpath", db, "-Kv", paths[0]).CombinedOutput()
			if err != nil {
				t.Fatalf("rpmkeys -Kv: %v: %s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("rpmkeys -Kv does not say %q:\n%s", w, out)
				}
			}
			if tc.name != "RSA v3" && strings.Contains(string(out), "\n    V4 ") {
				t.Errorf("header-only signing added a header+payload signature:\n%s", out)
			}
		})
	}
}
