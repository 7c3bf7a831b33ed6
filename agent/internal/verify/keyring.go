package verify

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// Keyring is the set of pinned OpenPGP public keys that may vouch for a package.
type Keyring struct {
	entities openpgp.EntityList
}

// ErrNoKeys is returned by LoadKeyring when given no key file: an agent with
// nothing pinned could install nothing, and should say so at start.
var ErrNoKeys = errors.New("verify: no OpenPGP key files to pin")

const armorBegin = "-----BEGIN PGP PUBLIC KEY BLOCK-----"

// LoadKeyring reads armored OpenPGP public keys, as distributions ship them in
// RPM-GPG-KEY-* files. A file may hold several armored blocks (AlmaLinux 8's
// holds its old and new keys) and a block several keys; all are pinned. A file
// with no readable key is an error: a pin that silently pins nothing would
// make every package fail with an unknown key and hide the real cause.
func LoadKeyring(paths ...string) (*Keyring, error) {
	if len(paths) == 0 {
		return nil, ErrNoKeys
	}
	kr := &Keyring{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load keyring: %w", err)
		}
		s, off, n := string(data), 0, 0
		for {
			i := strings.Index(s[off:], armorBegin)
			if i < 0 {
				break
			}
			start := off + i
			end := len(s)
			if j := strings.Index(s[start+len(armorBegin):], armorBegin); j >= 0 {
				end = start + len(armorBegin) + j
			}
			off = end
			n++
			line := 1 + strings.Count(s[:start], "\n")
			ab, err := armor.Decode(strings.NewReader(s[start:end]))
			if err != nil {
				return nil, fmt.Errorf("load keyring %s: armored block %d at line %d: %w", p, n, line, err)
			}
			el, err := openpgp.ReadKeyRing(ab.Body)
			if err != nil {
				return nil, fmt.Errorf("load keyring %s: armored block %d at line %d: %w", p, n, line, err)
			}
			kr.entities = append(kr.entities, el...)
		}
		if n == 0 {
			return nil, fmt.Errorf("load keyring %s: no %q block", p, armorBegin)
		}
	}
	return kr, nil
}

// Fingerprints lists the pinned primary keys' fingerprints, upper-case hex.
func (k *Keyring) Fingerprints() []string {
	if k == nil {
		return nil
	}
	var fps []string
	for _, e := range k.entities {
		fps = append(fps, fmt.Sprintf("%X", e.PrimaryKey.Fingerprint))
	}
	return fps
}

func (k *Keyring) keysByID(id uint64) []openpgp.Key {
	if k == nil {
		return nil
	}
	return k.entities.KeysById(id)
}
