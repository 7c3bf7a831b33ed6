// Package verify decides whether an RPM package file may be installed.
//
// Threat model. The update agent runs as root on every device, so whatever
// it installs runs as root too. The transport is not trusted: the HTTP mirror,
// the MQTT broker, the fleet server's download path and the disk the package
// waited on may all hand us altered bytes. Only the OpenPGP public keys pinned
// in the agent's configuration (the distribution's RPM-GPG-KEY-* files, read
// with LoadKeyring) are trusted to say that a package is genuine; a key found
// inside a package, a repository or a message is never trusted. A package is
// accepted only when every check below passes, and File reads the file once,
// streaming the payload through the hashes, so that what was checked is what
// was read (the caller installs from the same file, which only root can write).
//
// What is checked, and why:
//
//   - The lead and both header structures are well formed and fit in the
//     file; sizes are checked against the file before anything is allocated.
//   - At least one OpenPGP signature is present, and every signature present
//     verifies with a pinned key: header-only signatures (RPMSIGTAG_RSA 268,
//     RPMSIGTAG_DSA 267, where rpm stores EdDSA) cover the main header bytes;
//     header+payload signatures (RPMSIGTAG_PGP 1002, RPMSIGTAG_GPG 1005, the
//     "v3" style) cover the main header and the payload. V4 packets are
//     checked with ProtonMail/go-crypto; V3 packets (old Red Hat and CentOS
//     builds) are RSA only, checked with crypto/rsa. Only SHA-2 hashes are
//     accepted, and RSA, EdDSA/Ed25519/Ed448 and ECDSA keys: DSA keys are
//     1024-bit and SHA-1 signatures are forgeable by chosen-prefix collision.
//   - The pinned key was not revoked, may sign (key flags), and had not
//     expired (nor yet to be created) when the signature was made. rpm 4.18
//     refuses to import a revoked key but checks no expiry at all. Judging
//     expiry at signing time keeps packages signed before a distribution key
//     expired, such as AlmaLinux 8's 2021 key, installable.
//   - The header digests in the signature header (RPMSIGTAG_SHA256 273,
//     RPMSIGTAG_SHA1 269) match the main header bytes; the legacy MD5 over
//     header+payload (1004) and the recorded size (1000, 270) match when
//     present. These catch corruption; they are not what makes a package
//     genuine, since the signature header itself is not signed.
//   - The payload digest (RPMTAG_PAYLOADDIGEST 5092 with
//     RPMTAG_PAYLOADDIGESTALGO 5093), computed over the compressed payload,
//     matches. It lives in the main header, which the header-only signature
//     covers, so a valid header signature plus a matching payload digest
//     makes the payload genuine too. A package whose payload is covered by
//     neither a signed payload digest nor a header+payload signature is
//     refused as Unsigned: its MD5 is in the unsigned signature header. (rpm
//     4.18 refuses it too, reporting the payload digest NOTFOUND.)
//   - When the caller says what it expects, name, epoch, version, release and
//     arch in the signed header equal the plan: a genuine but different
//     package (an old vulnerable build replayed by a mirror) is refused.
//
// Every refusal is an *Error whose Kind says which class of failure it is,
// matched by errors.Is against ErrUnsigned, ErrBadDigest and the others.
package verify

import (
	"bufio"
	"crypto"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// Signature header tags (rpm's rpmtag.h, RPMSIGTAG_*).
const (
	sigTagSize     = 1000
	sigTagLongSize = 270
	sigTagMD5      = 1004
	sigTagPGP      = 1002
	sigTagGPG      = 1005
	sigTagDSA      = 267
	sigTagRSA      = 268
	sigTagSHA1     = 269
	sigTagSHA256   = 273
)

// Main header tags (RPMTAG_*).
const (
	tagName              = 1000
	tagVersion           = 1001
	tagRelease           = 1002
	tagEpoch             = 1003
	tagArch              = 1022
	tagPayloadDigest     = 5092
	tagPayloadDigestAlgo = 5093
)

// Result describes a package that passed every check.
type Result struct {
	Path string
	// NEVRA is read from the signed header; Epoch is "" when it has none.
	rpmver.NEVRA
	// Signatures lists every signature checked, all of which verified.
	Signatures []Signature
	// HeaderSHA256 is the SHA-256 of the main header, hex.
	HeaderSHA256 string
	// PayloadDigest is the payload digest recorded in the header and
	// recomputed, hex, and PayloadDigestAlgo its hash ("SHA256"); both are
	// empty for old packages without one, whose payload a header+payload
	// signature covers instead.
	PayloadDigest     string
	PayloadDigestAlgo string
	// Size is the file's size in bytes.
	Size int64
}

// Signature is one verified OpenPGP signature.
type Signature struct {
	// Tag is the signature header tag it was stored in (268, 267, 1002, 1005).
	Tag int
	// Covers is "header" or "header+payload".
	Covers string
	// Version is the OpenPGP signature packet version, 3 or 4.
	Version int
	// Algorithm ("RSA", "EdDSA", ...) and Hash ("SHA256", ...).
	Algorithm, Hash string
	// KeyID is the issuer key ID, 16 upper-case hex digits.
	KeyID string
	// Fingerprint is the pinned primary key that vouched for the package.
	Fingerprint string
	Created     time.Time
}

// now is when revocations are judged; a seam for tests.
var now = time.Now

// File checks the RPM package at path against the pinned keys and, when want
// is not nil, against the plan: name, version, release and arch must be
// equal strings, and the epochs equal with a missing epoch taken as "0". It reads the file once, streaming the payload
// through the hashes, and holds only the headers in memory. A refused package
// yields an *Error naming the file and exactly what was wrong; failing to open
// or read the file yields the I/O error.
func File(path string, keys *Keyring, want *rpmver.NEVRA) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	res, err := check(f, st.Size(), keys, want)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Path = path
			return nil, e
		}
		return nil, fmt.Errorf("verify %s: %w", path, err)
	}
	res.Path = path
	return res, nil
}

type digestCheck struct {
	what string
	want string // hex, lower-case
	h    hash.Hash
}

func (d digestCheck) verify() error {
	got := hex.EncodeToString(d.h.Sum(nil))
	if got != d.want {
		return &Error{Kind: BadDigest, Detail: fmt.Sprintf("%s mismatch: recorded %s, computed %s", d.what, d.want, got)}
	}
	return nil
}

var copyBufs = make(chan []byte, 4)

func check(f io.Reader, size int64, keys *Keyring, want *rpmver.NEVRA) (*Result, error) {
	br := bufio.NewReaderSize(f, 32<<10)
	if err := readLead(br); err != nil {
		return nil, err
	}
	off := int64(leadSize)
	sigh, err := readHeader(br, "signature header", off, size-off)
	if err != nil {
		return nil, err
	}
	off += int64(len(sigh.raw))
	if pad := (8 - len(sigh.raw)%8) % 8; pad > 0 {
		var zero [8]byte
		if _, err := io.ReadFull(br, zero[:pad]); err != nil {
			return nil, malformed(err, "signature header padding at offset %d: truncated", off)
		}
		off += int64(pad)
	}

	// Signatures, parsed now so their hashes can be fed as the bytes go by.
	// A signature that cannot be parsed is reported after the digests, so
	// that a corrupted file is called corrupted first.
	var sigs []*pgpSig
	var sigErr error
	nsigs := 0
	for _, t := range []struct {
		tag    int32
		covers string
	}{{sigTagRSA, "header"}, {sigTagDSA, "header"}, {sigTagPGP, "header+payload"}, {sigTagGPG, "header+payload"}} {
		blob, ok, err := sigh.bin(t.tag)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		nsigs++
		s, err := parseSig(t.tag, t.covers, blob)
		if err != nil {
			if sigErr == nil {
				sigErr = err
			}
			continue
		}
		sigs = append(sigs, s)
	}

	var headerChecks, payloadChecks []digestCheck
	var md5Check *digestCheck   // checked last: the payload digest says more
	var headerOnly []hash.Hash  // hashes over the main header only
	var wholeHashes []io.Writer // hashes over main header + payload
	for _, s := range sigs {
		if s.covers == "header" {
			headerOnly = append(headerOnly, s.h)
		} else {
			wholeHashes = append(wholeHashes, s.h)
		}
	}
	sha256hex, ok, err := sigh.str(sigTagSHA256)
	if err != nil {
		return nil, err
	}
	hdrSHA256 := sha256.New()
	headerOnly = append(headerOnly, hdrSHA256)
	if ok {
		headerChecks = append(headerChecks, digestCheck{"header SHA256 digest (signature header tag 273)", strings.ToLower(sha256hex), hdrSHA256})
	}
	if sha1hex, ok, err := sigh.str(sigTagSHA1); err != nil {
		return nil, err
	} else if ok {
		h := sha1.New()
		headerOnly = append(headerOnly, h)
		headerChecks = append(headerChecks, digestCheck{"header SHA1 digest (signature header tag 269)", strings.ToLower(sha1hex), h})
	}
	if md5sum, ok, err := sigh.bin(sigTagMD5); err != nil {
		return nil, err
	} else if ok {
		h := md5.New()
		wholeHashes = append(wholeHashes, h)
		md5Check = &digestCheck{"header+payload MD5 digest (signature header tag 1004)", hex.EncodeToString(md5sum), h}
	}
	wantSize, hasSize, err := sigh.integer(sigTagLongSize)
	if err != nil {
		return nil, err
	}
	if !hasSize {
		if wantSize, hasSize, err = sigh.integer(sigTagSize); err != nil {
			return nil, err
		}
		wantSize = int64(uint32(wantSize))
	}

	hdrOff := off
	hdr, err := readHeader(br, "header", off, size-off)
	if err != nil {
		return nil, err
	}
	off += int64(len(hdr.raw))

	res := &Result{Size: size}
	if res.Name, err = requiredString(hdr, tagName, "name"); err != nil {
		return nil, err
	}
	if res.Version, err = requiredString(hdr, tagVersion, "version"); err != nil {
		return nil, err
	}
	if res.Release, err = requiredString(hdr, tagRelease, "release"); err != nil {
		return nil, err
	}
	if res.Arch, err = requiredString(hdr, tagArch, "arch"); err != nil {
		return nil, err
	}
	if epoch, ok, err := hdr.integer(tagEpoch); err != nil {
		return nil, err
	} else if ok {
		res.Epoch = strconv.FormatInt(int64(uint32(epoch)), 10)
	}

	var payloadDigest hash.Hash
	if digests, ok, err := payloadDigestTag(hdr); err != nil {
		return nil, err
	} else if ok {
		algo := crypto.SHA256 // rpm's default when the algo tag is absent
		if id, ok, err := hdr.integer(tagPayloadDigestAlgo); err != nil {
			return nil, err
		} else if ok {
			a, known := hashByID[uint8(id)]
			if !known || id < 0 || id > 255 || !acceptedHash(a) {
				return nil, &Error{Kind: BadDigest, Detail: fmt.Sprintf("header tag %d: payload digest algorithm %d is not accepted (only SHA-2)", tagPayloadDigestAlgo, id)}
			}
			algo = a
		}
		payloadDigest = algo.New()
		res.PayloadDigest = strings.ToLower(digests)
		res.PayloadDigestAlgo = hashName(algo)
		payloadChecks = append(payloadChecks, digestCheck{"payload " + hashName(algo) + " digest (header tag 5092)", res.PayloadDigest, payloadDigest})
	}

	for _, h := range headerOnly {
		h.Write(hdr.raw)
	}
	for _, w := range wholeHashes {
		w.Write(hdr.raw)
	}
	payloadWriters := wholeHashes
	if payloadDigest != nil {
		payloadWriters = append(payloadWriters, payloadDigest)
	}
	var buf []byte
	select {
	case buf = <-copyBufs:
	default:
		buf = make([]byte, 64<<10)
	}
	n, err := copyPayload(payloadWriters, br, buf)
	select {
	case copyBufs <- buf:
	default:
	}
	if err != nil {
		return nil, malformed(err, "payload at offset %d: read failed after %d bytes", off, n)
	}
	if off+n != size {
		return nil, malformed(nil, "payload at offset %d: read %d bytes, but the file has %d: it changed while being read", off, n, size-off)
	}

	if md5Check != nil {
		payloadChecks = append(payloadChecks, *md5Check)
	}
	for _, c := range headerChecks {
		if err := c.verify(); err != nil {
			return nil, err
		}
	}
	for _, c := range payloadChecks {
		if err := c.verify(); err != nil {
			return nil, err
		}
	}
	if hasSize && wantSize != size-hdrOff {
		return nil, &Error{Kind: BadDigest, Detail: fmt.Sprintf("signature header records %d bytes of header and payload, the file has %d", wantSize, size-hdrOff)}
	}
	res.HeaderSHA256 = hex.EncodeToString(hdrSHA256.Sum(nil))

	if nsigs == 0 {
		return nil, &Error{Kind: Unsigned, Detail: "no OpenPGP signature in the signature header (tags 267, 268, 1002, 1005)"}
	}
	if sigErr != nil {
		return nil, sigErr
	}
	t := now()
	payloadSigned := false
	for _, s := range sigs {
		v, err := s.check(keys, t)
		if err != nil {
			return nil, err
		}
		if s.covers != "header" {
			payloadSigned = true
		}
		res.Signatures = append(res.Signatures, *v)
	}
	if payloadDigest == nil && !payloadSigned {
		return nil, &Error{Kind: Unsigned, Detail: "the payload is covered by no signature: no payload digest in the signed header and no header+payload signature"}
	}

	if want != nil {
		if err := compare(res, want); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func copyPayload(ws []io.Writer, r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			for _, w := range ws {
				w.Write(buf[:m]) // hash writes never fail
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func requiredString(h *header, tag int32, field string) (string, error) {
	s, ok, err := h.str(tag)
	if err != nil {
		return "", err
	}
	if !ok || s == "" {
		return "", malformed(nil, "header: no %s (tag %d)", field, tag)
	}
	return s, nil
}

// payloadDigestTag returns the first payload digest (rpm records one).
func payloadDigestTag(h *header) (string, bool, error) {
	e, ok := h.find(tagPayloadDigest)
	if !ok {
		return "", false, nil
	}
	ss, err := h.strs(e)
	if err != nil {
		return "", true, err
	}
	if len(ss) == 0 || ss[0] == "" {
		return "", true, h.bad(e, "empty payload digest")
	}
	return ss[0], true, nil
}

func compare(got *Result, want *rpmver.NEVRA) error {
	epoch := func(s string) string {
		if s == "" {
			return "0"
		}
		return s
	}
	var diffs []string
	add := func(field, g, w string) {
		if g != w {
			diffs = append(diffs, fmt.Sprintf("%s is %q, the plan says %q", field, g, w))
		}
	}
	add("name", got.Name, want.Name)
	add("epoch", epoch(got.Epoch), epoch(want.Epoch))
	add("version", got.Version, want.Version)
	add("release", got.Release, want.Release)
	add("arch", got.Arch, want.Arch)
	if len(diffs) > 0 {
		return &Error{Kind: Mismatch, Detail: strings.Join(diffs, "; ")}
	}
	return nil
}
