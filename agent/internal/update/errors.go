package update

import (
	"errors"
	"fmt"
)

// Classes of failure, matched by errors.Is on an *Error. Each stops the
// cycle; only Retryable ones are worth a new cycle soon.
var (
	ErrDownload   = errors.New("update: download failed")
	ErrChecksum   = errors.New("update: package does not match its repository metadata")
	ErrVerify     = errors.New("update: package refused by signature check")
	ErrPreflight  = errors.New("update: pre-flight check failed")
	ErrApply      = errors.New("update: rpm transaction failed")
	ErrHealth     = errors.New("update: health check failed")
	ErrRollback   = errors.New("update: rollback failed")
	ErrNoRollback = errors.New("update: previous version not in any repository")
	ErrPlan       = errors.New("update: cannot plan")
)

// Error is a failed step of a cycle.
type Error struct {
	// Class is one of the sentinels above.
	Class error
	// Retryable is set when the same cycle may succeed later (a mirror that
	// was down, a cut transfer); not for a bad signature or a missing
	// dependency.
	Retryable bool
	Err       error
}

func (e *Error) Error() string { return e.Err.Error() }

func (e *Error) Unwrap() []error { return []error{e.Class, e.Err} }

func stepErr(class error, retryable bool, format string, args ...any) *Error {
	return &Error{Class: class, Retryable: retryable, Err: fmt.Errorf(format, args...)}
}

// className names the class for the journal.
func className(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{
		{ErrDownload, "download"}, {ErrChecksum, "checksum"}, {ErrVerify, "verify"},
		{ErrPreflight, "preflight"}, {ErrApply, "apply"}, {ErrHealth, "health"},
		{ErrRollback, "rollback"}, {ErrNoRollback, "no-rollback"}, {ErrPlan, "plan"},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "other"
}
