package verify

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"encoding"
	"encoding/binary"
	"fmt"
	"hash"
	"math/big"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	_ "crypto/sha256" // register SHA-224/256 for crypto.Hash.New
	_ "crypto/sha512" // register SHA-384/512 for crypto.Hash.New
)

// pgpSig is one OpenPGP signature packet from the signature header, with the
// running hash of the bytes it covers.
type pgpSig struct {
	tag      int32 // signature header tag it came from
	covers   string
	version  int
	pubAlgo  packet.PublicKeyAlgorithm
	hashAlgo crypto.Hash
	keyID    uint64
	created  time.Time

	v4 *packet.Signature
	// v3 fields (RFC 4880 section 5.2.2); go-crypto parses only v4 and later.
	v3SigType byte
	v3Time    [4]byte
	v3Hash16  [2]byte
	v3MPIs    [][]byte

	h hash.Hash
}

// OpenPGP hash algorithm ids (RFC 4880 section 9.4), also used by
// RPMTAG_PAYLOADDIGESTALGO.
var hashByID = map[uint8]crypto.Hash{
	1: crypto.MD5, 2: crypto.SHA1, 3: crypto.RIPEMD160,
	8: crypto.SHA256, 9: crypto.SHA384, 10: crypto.SHA512, 11: crypto.SHA224,
}

// acceptedHash: the SHA-2 family only. MD5 is broken and SHA-1 signatures
// are forgeable by chosen-prefix collision (SHAmbles, 2020); EL9's DEFAULT
// crypto policy refuses them too. Header SHA-1 digests, which only guard
// against corruption next to a SHA-2 signature, are still checked.
func acceptedHash(h crypto.Hash) bool {
	switch h {
	case crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512:
		return true
	}
	return false
}

func algoName(a packet.PublicKeyAlgorithm) string {
	switch a {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		return "RSA"
	case packet.PubKeyAlgoDSA:
		return "DSA"
	case packet.PubKeyAlgoECDSA:
		return "ECDSA"
	case packet.PubKeyAlgoEdDSA:
		return "EdDSA"
	case packet.PubKeyAlgoEd25519:
		return "Ed25519"
	case packet.PubKeyAlgoEd448:
		return "Ed448"
	}
	return fmt.Sprintf("algorithm %d", a)
}

func hashName(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return "SHA1"
	case crypto.SHA224:
		return "SHA224"
	case crypto.SHA256:
		return "SHA256"
	case crypto.SHA384:
		return "SHA384"
	case crypto.SHA512:
		return "SHA512"
	case crypto.MD5:
		return "MD5"
	}
	return h.String()
}

func (s *pgpSig) String() string {
	return fmt.Sprintf("tag %d (V%d %s/%s %s signature, key ID %016X)", s.tag, s.version, algoName(s.pubAlgo), hashName(s.hashAlgo), s.covers, s.keyID)
}

// parseSig parses the OpenPGP signature packet stored in a signature header
// tag. Structural problems are BadSignature: the package is not malformed as
// an RPM, but the signature cannot be checked, so it vouches for nothing.
func parseSig(tag int32, covers string, blob []byte) (*pgpSig, error) {
	bad := func(format string, args ...any) error {
		return &Error{Kind: BadSignature, Detail: fmt.Sprintf("signature header tag %d: ", tag) + fmt.Sprintf(format, args...)}
	}
	body, err := packetBody(blob)
	if err != nil {
		return nil, bad("%v", err)
	}
	s := &pgpSig{tag: tag, covers: covers, version: int(body[0])}
	switch s.version {
	case 3:
		// version, hashed length (5), type, time(4), key id(8), pk algo, hash algo, hash16(2), MPIs
		if len(body) < 19 || body[1] != 5 {
			return nil, bad("truncated V3 signature packet")
		}
		s.v3SigType = body[2]
		copy(s.v3Time[:], body[3:7])
		s.created = time.Unix(int64(binary.BigEndian.Uint32(body[3:7])), 0)
		s.keyID = binary.BigEndian.Uint64(body[7:15])
		s.pubAlgo = packet.PublicKeyAlgorithm(body[15])
		h, ok := hashByID[body[16]]
		if !ok {
			return nil, bad("unknown hash algorithm %d", body[16])
		}
		s.hashAlgo = h
		copy(s.v3Hash16[:], body[17:19])
		rest := body[19:]
		for len(rest) > 0 {
			if len(rest) < 2 {
				return nil, bad("truncated MPI in V3 signature packet")
			}
			n := (int(binary.BigEndian.Uint16(rest)) + 7) / 8
			if len(rest) < 2+n {
				return nil, bad("truncated MPI in V3 signature packet")
			}
			s.v3MPIs = append(s.v3MPIs, rest[2:2+n])
			rest = rest[2+n:]
		}
		if s.v3SigType != 0 {
			return nil, bad("V3 signature type %#x is not a binary document signature", s.v3SigType)
		}
	case 4:
		p, err := packet.Read(bytes.NewReader(blob))
		if err != nil {
			return nil, bad("read V4 signature packet: %v", err)
		}
		sig, ok := p.(*packet.Signature)
		if !ok {
			return nil, bad("packet is %T, not a signature", p)
		}
		s.v4 = sig
		s.pubAlgo = sig.PubKeyAlgo
		s.hashAlgo = sig.Hash
		s.created = sig.CreationTime
		switch {
		case sig.IssuerKeyId != nil:
			s.keyID = *sig.IssuerKeyId
		case len(sig.IssuerFingerprint) >= 8:
			s.keyID = binary.BigEndian.Uint64(sig.IssuerFingerprint[len(sig.IssuerFingerprint)-8:])
		default:
			return nil, bad("V4 signature names no issuer key")
		}
		if sig.SigType != packet.SigTypeBinary {
			return nil, bad("signature type %#x is not a binary document signature", sig.SigType)
		}
	default:
		return nil, bad("signature packet version %d is not supported (want 3 or 4)", s.version)
	}
	if !acceptedHash(s.hashAlgo) {
		return nil, &Error{Kind: BadSignature, Detail: s.String() + ": hash algorithm refused (only SHA-2 is accepted)"}
	}
	switch s.pubAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly, packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoEd25519, packet.PubKeyAlgoEd448, packet.PubKeyAlgoECDSA:
	default:
		return nil, &Error{Kind: BadSignature, Detail: s.String() + ": public key algorithm refused (DSA and others are not accepted)"}
	}
	if s.version == 3 && s.pubAlgo != packet.PubKeyAlgoRSA && s.pubAlgo != packet.PubKeyAlgoRSASignOnly {
		return nil, &Error{Kind: BadSignature, Detail: s.String() + ": V3 signatures are accepted only with RSA"}
	}
	s.h = s.hashAlgo.New()
	return s, nil
}

// packetBody returns the body of the single signature packet (tag 2) in blob,
// in old or new packet format (RFC 4880 section 4.2).
func packetBody(b []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("OpenPGP packet of %d bytes", len(b))
	}
	ctb := b[0]
	if ctb&0x80 == 0 {
		return nil, fmt.Errorf("first byte %#x is not an OpenPGP packet tag", ctb)
	}
	var tag byte
	var n, hl int
	if ctb&0x40 != 0 {
		tag = ctb & 0x3f
		switch l := b[1]; {
		case l < 192:
			n, hl = int(l), 2
		case l < 224:
			if len(b) < 3 {
				return nil, fmt.Errorf("truncated packet length")
			}
			n, hl = (int(l)-192)<<8+int(b[2])+192, 3
		case l == 255:
			if len(b) < 6 {
				return nil, fmt.Errorf("truncated packet length")
			}
			n, hl = int(binary.BigEndian.Uint32(b[2:6])), 6
		default:
			return nil, fmt.Errorf("partial-length packets are not accepted")
		}
	} else {
		tag = (ctb >> 2) & 0x0f
		switch ctb & 3 {
		case 0:
			n, hl = int(b[1]), 2
		case 1:
			if len(b) < 3 {
				return nil, fmt.Errorf("truncated packet length")
			}
			n, hl = int(binary.BigEndian.Uint16(b[1:3])), 3
		case 2:
			if len(b) < 5 {
				return nil, fmt.Errorf("truncated packet length")
			}
			n, hl = int(binary.BigEndian.Uint32(b[1:5])), 5
		case 3:
			n, hl = len(b)-1, 1
		}
	}
	if tag != 2 {
		return nil, fmt.Errorf("OpenPGP packet tag %d is not a signature (2)", tag)
	}
	if n < 1 || n > len(b)-hl {
		return nil, fmt.Errorf("OpenPGP packet length %d does not fit in %d bytes", n, len(b))
	}
	return b[hl : hl+n], nil
}

// check verifies the signature, whose hash has been fed all the bytes it
// covers, against the pinned keys. now is the time revocations are judged at.
func (s *pgpSig) check(keys *Keyring, now time.Time) (*Signature, error) {
	cands := keys.keysByID(s.keyID)
	if len(cands) == 0 {
		return nil, &Error{Kind: UnknownKey, Detail: fmt.Sprintf("%s: key %016X is not pinned (pinned: %v)", s, s.keyID, keys.Fingerprints())}
	}
	var firstErr error
	for _, k := range cands {
		h, err := cloneHash(s.hashAlgo, s.h)
		if err != nil {
			return nil, err
		}
		if err := s.checkKey(k, h, now); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		return &Signature{
			Tag:         int(s.tag),
			Covers:      s.covers,
			Version:     s.version,
			Algorithm:   algoName(s.pubAlgo),
			Hash:        hashName(s.hashAlgo),
			KeyID:       fmt.Sprintf("%016X", s.keyID),
			Fingerprint: fmt.Sprintf("%X", k.Entity.PrimaryKey.Fingerprint),
			Created:     s.created,
		}, nil
	}
	return nil, firstErr
}

func (s *pgpSig) checkKey(k openpgp.Key, h hash.Hash, now time.Time) error {
	fp := fmt.Sprintf("%X", k.PublicKey.Fingerprint)
	rejected := func(why string) error {
		return &Error{Kind: RejectedKey, Detail: fmt.Sprintf("%s: pinned key %s %s", s, fp, why)}
	}
	if k.Revoked(now) || k.Entity.Revoked(now) {
		return rejected("is revoked")
	}
	if k.SelfSignature != nil && k.SelfSignature.FlagsValid && !k.SelfSignature.FlagSign {
		return rejected("is not allowed to sign (key flags)")
	}
	if k.SelfSignature != nil && k.PublicKey.KeyExpired(k.SelfSignature, s.created) {
		return rejected(fmt.Sprintf("was not valid (expired or not yet created) when the signature was made on %s", s.created.UTC().Format(time.RFC3339)))
	}
	if k.PublicKey != k.Entity.PrimaryKey {
		if ps, _ := k.Entity.PrimarySelfSignature(); ps != nil && k.Entity.PrimaryKey.KeyExpired(ps, s.created) {
			return rejected(fmt.Sprintf("belongs to a primary key that was not valid when the signature was made on %s", s.created.UTC().Format(time.RFC3339)))
		}
	}
	badSig := func(err error) error {
		return &Error{Kind: BadSignature, Detail: fmt.Sprintf("%s: does not verify with pinned key %s", s, fp), Err: err}
	}
	if s.v4 != nil {
		if err := k.PublicKey.VerifySignature(h, s.v4); err != nil {
			return badSig(err)
		}
		return nil
	}
	// V3: the hash covers the data, then the signature type and time.
	h.Write([]byte{s.v3SigType})
	h.Write(s.v3Time[:])
	digest := h.Sum(nil)
	if digest[0] != s.v3Hash16[0] || digest[1] != s.v3Hash16[1] {
		return badSig(fmt.Errorf("hash prefix %x, signature says %x", digest[:2], s.v3Hash16))
	}
	pub, ok := k.PublicKey.PublicKey.(*rsa.PublicKey)
	if !ok || len(s.v3MPIs) != 1 {
		return badSig(fmt.Errorf("V3 signature needs an RSA key and one MPI"))
	}
	v := new(big.Int).SetBytes(s.v3MPIs[0])
	if v.BitLen() > pub.Size()*8 {
		return badSig(fmt.Errorf("RSA signature longer than the key"))
	}
	sig := v.FillBytes(make([]byte, pub.Size()))
	if err := rsa.VerifyPKCS1v15(pub, s.hashAlgo, digest, sig); err != nil {
		return badSig(err)
	}
	return nil
}

// cloneHash copies h's state so that each candidate key gets its own hash.
func cloneHash(algo crypto.Hash, h hash.Hash) (hash.Hash, error) {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, fmt.Errorf("verify: hash %T cannot be cloned", h)
	}
	state, err := m.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("clone hash: %w", err)
	}
	n := algo.New()
	if err := n.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("clone hash: %w", err)
	}
	return n, nil
}
