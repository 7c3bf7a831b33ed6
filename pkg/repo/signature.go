package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// Signature errors.
var (
	// ErrBadSignature: repomd.xml.asc does not verify against the keyring
	// (a bad signature, or one made by a key not in it).
	ErrBadSignature = errors.New("repo: bad repomd.xml signature")
	// ErrNoSignature: Options.RequireSignature is set and the repository
	// has no repomd.xml.asc.
	ErrNoSignature = errors.New("repo: repomd.xml is not signed")
)

// verifySignature checks repomd.xml (raw) against repodata/repomd.xml.asc
// of the same base with the keyring, and returns the signature (nil when
// the repository has none and none is required).
func (r *Repo) verifySignature(ctx context.Context, base *url.URL, raw []byte, repomdName string) ([]byte, error) {
	asc, name, err := r.fetchFrom(ctx, base, "repodata/repomd.xml.asc")
	if errors.Is(err, os.ErrNotExist) {
		if r.requireSig {
			return nil, fmt.Errorf("%w: %s has no repomd.xml.asc", ErrNoSignature, r)
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer asc.Close()
	sig, err := io.ReadAll(io.LimitReader(asc, maxSignatureSize))
	if err != nil {
		return nil, fmt.Errorf("repo: %s: %w", name, err)
	}
	return sig, r.checkSignature(raw, sig, name, repomdName)
}

// maxSignatureSize bounds a repomd.xml.asc read.
const maxSignatureSize = 1 << 20

// checkSignature checks a detached armored signature of repomd.xml (raw)
// against the keyring.
func (r *Repo) checkSignature(raw, sig []byte, name, repomdName string) error {
	if _, err := openpgp.CheckArmoredDetachedSignature(r.keyring, bytes.NewReader(raw), bytes.NewReader(sig), nil); err != nil {
		return fmt.Errorf("%w: %s does not verify %s: %w", ErrBadSignature, name, repomdName, err)
	}
	return nil
}

// LoadKeyring reads armored OpenPGP public key files (RPM-GPG-KEY-*) into
// one keyring for Options.Keyring; nil when files is empty.
func LoadKeyring(files []string) (openpgp.EntityList, error) {
	var ring openpgp.EntityList
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("repo: read key: %w", err)
		}
		el, err := openpgp.ReadArmoredKeyRing(io.LimitReader(fh, 1<<20))
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("repo: read key %s: %w", f, err)
		}
		ring = append(ring, el...)
	}
	return ring, nil
}
