package repo

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// gpgKey makes a throwaway signing key with the real gpg (algo: "ed25519"
// or "rsa3072") in its own home, and returns a function that signs a file
// (writing file.asc) and the exported public key.
func gpgKey(t *testing.T, algo string) (sign func(path string), public []byte) {
	t.Helper()
	need(t, "gpg")
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stop the agent gpg started for this home, then remove it.
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		os.RemoveAll(home)
	})
	gpg := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	uid := "rpmfleet test " + algo + " <repo@rpmfleet.test>"
	gpg("--quick-generate-key", uid, algo, "sign", "never")
	public = gpg("--armor", "--export", uid)
	return func(path string) { gpg("--yes", "--armor", "--detach-sign", "-o", path+".asc", path) }, public
}

func keyring(t *testing.T, armored []byte) openpgp.EntityList {
	t.Helper()
	el, err := openpgp.ReadArmoredKeyRing(strings.NewReader(string(armored)))
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func TestSignature(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sign, pub := gpgKey(t, "ed25519")
	signRSA, pubRSA := gpgKey(t, "rsa3072")
	_, otherPub := gpgKey(t, "ed25519")

	tests := []struct {
		name    string
		prepare func(t *testing.T, repomd string)
		keys    []byte
		require bool
		wantErr error
	}{
		{"ed25519 signature verifies", func(t *testing.T, p string) { sign(p) }, pub, true, nil},
		{"rsa signature verifies", func(t *testing.T, p string) { signRSA(p) }, pubRSA, true, nil},
		{"signed by a key not pinned", func(t *testing.T, p string) { sign(p) }, otherPub, false, ErrBadSignature},
		{"repomd.xml changed after signing", func(t *testing.T, p string) {
			sign(p)
			raw := readFile(t, p)
			writeFile(t, p, append(raw, "\n<!-- -->\n"...))
		}, pub, false, ErrBadSignature},
		{"no signature, not required", func(t *testing.T, p string) {}, pub, false, nil},
		{"no signature, required", func(t *testing.T, p string) {}, pub, true, ErrNoSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := makeRepo(t, "gz", true)
			tt.prepare(t, filepath.Join(dir, "repodata", "repomd.xml"))
			srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
			defer srv.Close()
			for _, base := range []string{dir, srv.URL} {
				r, err := New(base, Options{HTTPClient: srv.Client(), Keyring: keyring(t, tt.keys), RequireSignature: tt.require})
				if err != nil {
					t.Fatal(err)
				}
				m, err := r.Metadata(ctx)
				if tt.wantErr == nil {
					if err != nil {
						t.Fatalf("%s: %v", base, err)
					}
					if _, ok := m.Get("primary"); !ok {
						t.Errorf("%s: no primary", base)
					}
					continue
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("%s: got %v, want %v", base, err, tt.wantErr)
				}
				if tt.wantErr == ErrBadSignature && !strings.Contains(err.Error(), "repomd.xml.asc does not verify") {
					t.Errorf("%s: error %q does not name the signature file", base, err)
				}
			}
		})
	}
}

// TestYummyBadSignature: the real repomd.xml.asc of the yummy fixture does
// not verify (gpg --verify says BAD signature: the file was edited after
// signing), and a key that made it is pinned.
func TestYummyBadSignature(t *testing.T) {
	t.Parallel()
	r, err := New("testdata/yummy", Options{Keyring: keyring(t, readFile(t, "testdata/yummy/gpgkey.pub"))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Metadata(context.Background())
	if !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v, want ErrBadSignature", err)
	}
	// Without a keyring the signature is not looked at.
	r, _ = New("testdata/yummy", Options{})
	if _, err := r.Metadata(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRequireSignatureNeedsKeyring(t *testing.T) {
	t.Parallel()
	_, err := New("testdata/yummy", Options{RequireSignature: true})
	if err == nil || err.Error() != "repo: RequireSignature without a Keyring" {
		t.Fatalf("New with RequireSignature and no Keyring: err = %v, want repo: RequireSignature without a Keyring", err)
	}
}
