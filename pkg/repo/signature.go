package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
// with the keyring.
func (r *Repo) verifySignature(ctx context.Context, raw []byte, repomdName string) error {
	asc, name, err := r.fetch(ctx, "repodata/repomd.xml.asc")
	if errors.Is(err, os.ErrNotExist) {
		if r.requireSig {
			return fmt.Errorf("%w: %s has no repomd.xml.asc", ErrNoSignature, r)
		}
		return nil
	}
	if err != nil {
		return err
	}
	defer asc.Close()
	sig, err := io.ReadAll(io.LimitReader(asc, 1<<20))
	if err != nil {
		return fmt.Errorf("repo: %s: %w", name, err)
	}
	if _, err := openpgp.CheckArmoredDetachedSignature(r.keyring, bytes.NewReader(raw), bytes.NewReader(sig), nil); err != nil {
		return fmt.Errorf("%w: %s does not verify %s: %w", ErrBadSignature, name, repomdName, err)
	}
	return nil
}
