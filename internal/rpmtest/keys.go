package rpmtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// KeyKind is the algorithm of a throwaway signing key.
type KeyKind int

const (
	// KeyRSA4096 is an RSA-4096 key, what EL distributions sign with.
	KeyRSA4096 KeyKind = iota + 1
	// KeyEd25519 is an EdDSA key on Curve25519 (rpm stores its signatures
	// in RPMSIGTAG_DSA).
	KeyEd25519
)

func (k KeyKind) String() string {
	switch k {
	case KeyRSA4096:
		return "rsa4096"
	case KeyEd25519:
		return "ed25519"
	}
	return fmt.Sprintf("KeyKind(%d)", int(k))
}

// Key is a throwaway OpenPGP signing key in its own GNUPGHOME, without a
// passphrase.
type Key struct {
	Kind KeyKind
	// UserID is "NAME <NAME@rpmfleet.test>".
	UserID string
	// Home is the GNUPGHOME holding the secret key (rpmsign's _gpg_path).
	Home string
	// PublicKeyFile is the armored public key, an RPM-GPG-KEY-* file.
	PublicKeyFile string
	// Fingerprint is 40 upper-case hex digits; KeyID its last 16.
	Fingerprint, KeyID string
}

// generated caches each generated key's armored secret key by kind and name:
// RSA-4096 generation takes one to ten seconds on a busy machine, importing
// takes milliseconds. The keys are also kept in the stub cache folder (see
// CacheEnv), so a machine generates each test key once.
var (
	mu        sync.Mutex // guards generated
	generated = map[string][]byte{}
)

func cachedKey(cacheKey string) ([]byte, bool) {
	mu.Lock()
	defer mu.Unlock()
	if b, ok := generated[cacheKey]; ok {
		return b, true
	}
	dir, err := cacheDir()
	if err != nil {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(dir, "keys", strings.ReplaceAll(cacheKey, "/", "-")+".asc"))
	if err != nil || !bytes.Contains(b, []byte("PGP PRIVATE KEY BLOCK")) {
		return nil, false
	}
	generated[cacheKey] = b
	return b, true
}

func storeKey(cacheKey string, secret []byte) {
	mu.Lock()
	defer mu.Unlock()
	generated[cacheKey] = secret
	dir, err := cacheDir()
	if err != nil {
		return
	}
	dir = filepath.Join(dir, "keys")
	if os.MkdirAll(dir, 0o700) != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(secret)
	if tmp.Close() == nil && werr == nil {
		os.Rename(tmp.Name(), filepath.Join(dir, strings.ReplaceAll(cacheKey, "/", "-")+".asc"))
	}
}

// NewKey returns a signing key of the given kind whose user ID is built from
// name. The first call for a kind and name generates it with gpg
// --quick-gen-key; later calls, in this process or (through the stub cache
// folder) later ones, import the same secret key into a fresh GNUPGHOME, so
// tests stay independent and fast. The GNUPGHOME is short (gpg's
// agent socket lives in it) and removed, its gpg-agent stopped, when t ends.
func NewKey(t testing.TB, kind KeyKind, name string) *Key {
	t.Helper()
	k, err := newKey(kind, name)
	if k != nil {
		t.Cleanup(func() { k.remove() })
	}
	if err != nil {
		t.Fatalf("rpmtest: new %s key %q: %v (run make deps)", kind, name, err)
	}
	return k
}

func newKey(kind KeyKind, name string) (*Key, error) {
	algo := kind.String()
	if kind != KeyRSA4096 && kind != KeyEd25519 {
		return nil, fmt.Errorf("unknown key kind %d", int(kind))
	}
	if strings.ContainsAny(name, "<>\n\"'") || name == "" {
		return nil, fmt.Errorf("bad key name %q", name)
	}
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		return nil, err
	}
	k := &Key{Kind: kind, UserID: name + " <" + name + "@rpmfleet.test>", Home: home}
	if err := os.Chmod(home, 0o700); err != nil {
		return k, err
	}
	cacheKey := algo + "/" + name
	secret, ok := cachedKey(cacheKey)
	if ok {
		if out, err := k.gpg(secret, true, "--import"); err != nil {
			return k, fmt.Errorf("gpg --import: %w: %s", err, out)
		}
	} else {
		if out, err := k.gpg(nil, true, "--quick-gen-key", k.UserID, algo, "sign", "never"); err != nil {
			return k, fmt.Errorf("gpg --quick-gen-key: %w: %s", err, out)
		}
	}
	out, err := k.gpg(nil, false, "--with-colons", "--list-secret-keys")
	if err != nil {
		return k, fmt.Errorf("gpg --list-secret-keys: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			k.Fingerprint = f[9]
			break
		}
	}
	if len(k.Fingerprint) != 40 {
		return k, fmt.Errorf("no fingerprint in gpg --list-secret-keys output: %s", out)
	}
	k.KeyID = k.Fingerprint[24:]
	if !ok {
		sec, err := k.gpg(nil, false, "--armor", "--export-secret-keys", k.Fingerprint)
		if err != nil {
			return k, fmt.Errorf("gpg --export-secret-keys: %w", err)
		}
		storeKey(cacheKey, sec)
	}
	pub, err := k.gpg(nil, false, "--armor", "--export", k.Fingerprint)
	if err != nil {
		return k, fmt.Errorf("gpg --export: %w", err)
	}
	k.PublicKeyFile = filepath.Join(home, "RPM-GPG-KEY-"+name)
	if err := os.WriteFile(k.PublicKeyFile, pub, 0o644); err != nil {
		return k, err
	}
	return k, k.stopAgent()
}

// gpg runs gpg non-interactively in the key's home, bounded by
// toolTimeout, with stdin on its standard input (see runTool).
func (k *Key) gpg(stdin []byte, combined bool, args ...string) ([]byte, error) {
	return runTool(toolTimeout, stdin, combined, "gpg", append([]string{"--homedir", k.Home, "--batch", "--no-tty",
		"--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
}

// stopAgent stops the gpg-agent that gpg starts on demand for the home, so
// no agent outlives the test.
func (k *Key) stopAgent() error {
	if out, err := runTool(30*time.Second, nil, true, "gpgconf", "--homedir", k.Home, "--kill", "gpg-agent"); err != nil {
		return fmt.Errorf("gpgconf --kill gpg-agent: %w: %s", err, out)
	}
	return nil
}

func (k *Key) remove() {
	k.stopAgent()
	os.RemoveAll(k.Home)
}
