package verify

import (
	"errors"
	"fmt"
)

// Kind classifies why a package was refused. The update cycle branches on it:
// every kind stops the cycle, but only some are worth retrying after a fresh
// download (a bad digest may be a broken transfer; an unknown key will not fix
// itself).
type Kind int

const (
	// Malformed: the file is not a well-formed RPM package (bad lead or
	// header structure, truncated, offsets out of range).
	Malformed Kind = iota + 1
	// Unsigned: the package carries no OpenPGP signature, or its payload is
	// covered by none (no payload digest in the signed header and no
	// header+payload signature).
	Unsigned
	// BadDigest: a header or payload digest, or the recorded size, does not
	// match the bytes in the file: the file was corrupted or tampered with.
	BadDigest
	// UnknownKey: the signature was made by a key that is not pinned.
	UnknownKey
	// BadSignature: a signature by a pinned key does not verify, or uses an
	// algorithm this package refuses (DSA, SHA-1, MD5).
	BadSignature
	// RejectedKey: the pinned key that made the signature is revoked, had
	// expired when the signature was made, or may not sign.
	RejectedKey
	// Mismatch: the package is genuine but not the one planned (name, epoch,
	// version, release or arch differ).
	Mismatch
)

var kindNames = map[Kind]string{
	Malformed:    "malformed package",
	Unsigned:     "unsigned package",
	BadDigest:    "bad digest",
	UnknownKey:   "unknown key",
	BadSignature: "bad signature",
	RejectedKey:  "rejected key",
	Mismatch:     "package is not the planned one",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Sentinel errors, one per Kind, for errors.Is.
var (
	ErrMalformed    = errors.New("verify: malformed package")
	ErrUnsigned     = errors.New("verify: unsigned package")
	ErrBadDigest    = errors.New("verify: bad digest")
	ErrUnknownKey   = errors.New("verify: unknown key")
	ErrBadSignature = errors.New("verify: bad signature")
	ErrRejectedKey  = errors.New("verify: rejected key")
	ErrMismatch     = errors.New("verify: package is not the planned one")
)

var sentinels = map[Kind]error{
	Malformed:    ErrMalformed,
	Unsigned:     ErrUnsigned,
	BadDigest:    ErrBadDigest,
	UnknownKey:   ErrUnknownKey,
	BadSignature: ErrBadSignature,
	RejectedKey:  ErrRejectedKey,
	Mismatch:     ErrMismatch,
}

// Error is returned by File when a package is refused. errors.Is(err,
// ErrBadDigest) and friends match on Kind.
type Error struct {
	Kind Kind
	// Path is the package file.
	Path string
	// Detail says exactly what was wrong, naming the tag, offset or field.
	Detail string
	// Err is an underlying error (an I/O error, an OpenPGP library error), or nil.
	Err error
}

func (e *Error) Error() string {
	s := "verify " + e.Path + ": " + e.Kind.String() + ": " + e.Detail
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is the sentinel for e's Kind.
func (e *Error) Is(target error) bool {
	return sentinels[e.Kind] == target
}

func (e *Error) Unwrap() error { return e.Err }
