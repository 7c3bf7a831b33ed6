package repo

// A kept copy of a repository's metadata, for an update that must run
// while the repository cannot be reached (the agent's download mode
// prefetches, the maintenance window applies):
//
//	<cache dir>/kept/repomd.xml       the exact bytes Metadata read and checked
//	<cache dir>/kept/repomd.xml.asc   its signature, when the repository signs
//	<cache dir>/kept/sha256-<hex>-primary.xml.gz, ...-updateinfo.xml.gz
//	<cache dir>/kept/kept.json        where it came from and when
//
// Nothing here is trusted for being on disk: UseKept checks the copy as
// Metadata checks a fetched one (the signature against the keyring, each
// file's digest and size against repomd.xml, before its first byte is
// read), and refuses a copy older than the bound it is given. The folder
// is 0700 and its files 0600, written durably (pkg/durable).

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/durable"
)

// Kept copy errors.
var (
	// ErrNoKept: there is no kept copy of the repository's metadata.
	ErrNoKept = errors.New("repo: no kept copy of the metadata")
	// ErrKeptTooOld: the kept copy is older than the bound given, or
	// dated in the future.
	ErrKeptTooOld = errors.New("repo: kept copy of the metadata too old")
)

const keptDirName = "kept"

// keptInfo is kept.json.
type keptInfo struct {
	// Base is the mirror the copy was read from, for PackageURL.
	Base string `json:"base"`
	// Fetched is when Metadata read the copy's repomd.xml.
	Fetched time.Time `json:"fetched"`
	// Signed: the copy had a checked signature, so a copy without one
	// is refused even where RequireSignature is off.
	Signed bool `json:"signed"`
}

// maxKeptInfoSize bounds a kept.json read.
const maxKeptInfoSize = 64 << 10

func (r *Repo) keptDir() string { return filepath.Join(r.cacheDir, keptDirName) }

// Keep writes a copy of the repomd.xml Metadata last read (with its
// signature) and of the metadata files of the given types it lists
// ("primary", "updateinfo"; a type it does not list is skipped) into the
// cache dir's kept/ folder, replacing the copy there. Only an http(s)
// repository with a CacheDir keeps a copy; Keep does nothing for others.
// fetched is the time recorded as the copy's age.
func (r *Repo) Keep(ctx context.Context, fetched time.Time, types ...string) error {
	if r.cacheDir == "" || r.base == nil || r.offline {
		return nil
	}
	r.mu.Lock()
	m := r.repomd
	r.mu.Unlock()
	if m == nil || m.raw == nil {
		return fmt.Errorf("repo: keep %s: no repomd.xml read yet", r)
	}
	dir := r.keptDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("repo: keep: %w", err)
	}
	keep := map[string]bool{"kept.json": true, "repomd.xml": true, "repomd.xml.asc": true}
	for _, t := range types {
		d, ok := m.Get(t)
		if !ok {
			continue
		}
		// Through the cache: downloaded and checked now if need be.
		rc, _, err := r.openRaw(ctx, d)
		if err != nil {
			return fmt.Errorf("repo: keep %s: %w", r, err)
		}
		name := cacheName(d)
		err = durable.Write(filepath.Join(dir, name), 0o600, func(w io.Writer) error {
			_, err := io.Copy(w, rc)
			return err
		})
		rc.Close()
		if err != nil {
			return fmt.Errorf("repo: keep %s: %w", r, err)
		}
		keep[name] = true
	}
	if m.sig != nil {
		if err := durable.WriteFile(filepath.Join(dir, "repomd.xml.asc"), m.sig, 0o600); err != nil {
			return fmt.Errorf("repo: keep: %w", err)
		}
	} else if err := durable.Remove(filepath.Join(dir, "repomd.xml.asc")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("repo: keep: %w", err)
	}
	if err := durable.WriteFile(filepath.Join(dir, "repomd.xml"), m.raw, 0o600); err != nil {
		return fmt.Errorf("repo: keep: %w", err)
	}
	info, err := json.Marshal(keptInfo{Base: r.base.String(), Fetched: fetched.UTC(), Signed: m.sig != nil})
	if err != nil {
		return err
	}
	if err := durable.WriteFile(filepath.Join(dir, "kept.json"), info, 0o600); err != nil {
		return fmt.Errorf("repo: keep: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("repo: keep: %w", err)
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// UseKept makes the kept copy (Keep) the repository's metadata, checked as
// Metadata checks a fetched copy: repomd.xml against its signature and
// the keyring (a signature is required when RequireSignature is set or the
// copy was signed when kept), and every metadata file against repomd.xml
// as it is opened. From then on the Repo reads only the kept files and
// downloads no metadata. A copy whose age (now less the time Keep
// recorded) is above maxAge, or that is dated more than 5 minutes after
// now, is refused with ErrKeptTooOld; no copy is ErrNoKept. It returns the
// copy's age.
func (r *Repo) UseKept(maxAge time.Duration, now time.Time) (time.Duration, error) {
	if r.cacheDir == "" {
		return 0, fmt.Errorf("%w: %s has no cache dir", ErrNoKept, r)
	}
	dir := r.keptDir()
	rawInfo, err := readSmall(filepath.Join(dir, "kept.json"), maxKeptInfoSize)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s has none in %s", ErrNoKept, r, dir)
	}
	if err != nil {
		return 0, err
	}
	var info keptInfo
	if err := json.Unmarshal(rawInfo, &info); err != nil {
		return 0, fmt.Errorf("repo: %s: %w", filepath.Join(dir, "kept.json"), err)
	}
	age := now.Sub(info.Fetched)
	if age > maxAge {
		return age, fmt.Errorf("%w: the copy of %s in %s was fetched %s ago (at %s), more than the %s allowed",
			ErrKeptTooOld, r, dir, age.Round(time.Second), info.Fetched.Format(time.RFC3339), maxAge)
	}
	if age < -5*time.Minute {
		return age, fmt.Errorf("%w: the copy of %s in %s is dated %s, in the future", ErrKeptTooOld, r, dir, info.Fetched.Format(time.RFC3339))
	}
	base, err := httpBase(info.Base)
	if err != nil {
		return age, fmt.Errorf("repo: %s: base: %w", filepath.Join(dir, "kept.json"), err)
	}
	name := filepath.Join(dir, "repomd.xml")
	raw, err := readSmall(name, maxRepomdSize)
	if err != nil {
		return age, err
	}
	if r.keyring != nil {
		sigName := name + ".asc"
		sig, err := readSmall(sigName, maxSignatureSize)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if r.requireSig || info.Signed {
				return age, fmt.Errorf("%w: the kept copy of %s has no repomd.xml.asc", ErrNoSignature, r)
			}
		case err != nil:
			return age, err
		default:
			if err := r.checkSignature(raw, sig, sigName, name); err != nil {
				return age, err
			}
		}
	}
	m, err := ParseRepomd(bytes.NewReader(raw))
	if err != nil {
		return age, fmt.Errorf("%s: %w", name, err)
	}
	r.mu.Lock()
	r.repomd, r.base, r.spares, r.cacheDir, r.offline = m, base, nil, dir, true
	r.mu.Unlock()
	return age, nil
}

// readSmall reads a regular file of at most limit bytes.
func readSmall(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("repo: %s is %v, not a regular file", name, fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("repo: %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("repo: %s: larger than %d bytes", name, limit)
	}
	return b, nil
}

// Unreachable reports whether err, from Metadata, says only that the
// repository could not be reached: a connection refused or reset, a name
// that does not resolve, a timeout. An answer that came but was wrong (an
// HTTP error status, a bad signature, a digest or metalink mismatch, a
// TLS certificate that does not verify, a repomd.xml that does not parse)
// is not: where Metadata tried several mirrors, every one must have been
// unreachable.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) {
		return false
	}
	return unreachable(err)
}

func unreachable(err error) bool {
	switch e := err.(type) {
	case *net.OpError, *net.DNSError:
		return true
	case interface{ Unwrap() []error }:
		// mirrorsError: ErrNoMirror, then each mirror's error.
		n := 0
		for _, x := range e.Unwrap() {
			if x == ErrNoMirror {
				continue
			}
			if !unreachable(x) {
				return false
			}
			n++
		}
		return n > 0
	}
	if err == context.DeadlineExceeded {
		return true
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	if u := errors.Unwrap(err); u != nil {
		return unreachable(u)
	}
	return false
}
