package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
)

// How a repository of a .repo file finds its mirrors, as dnf (librepo)
// does: the baseurl= bases first, in order; then the mirrors of the
// metalink= document, by preference, or else those of the mirrorlist=
// list, in order. A mirrorlist= URL that answers a metalink document is
// read as one (dnf does the same). Metadata tries them one by one; a
// package's download goes from the mirror in use on to the ones after it
// (PackageURLs).
//
// Outside input and what it can do. The mirror list and the metalink come
// from the network: each is fetched within the fetch timeout, capped at
// 1 MiB, and only its http and https URLs are used (a list cannot point
// the agent at local files), at most 64 of them. The metalink is what
// makes an untrusted mirror usable: with one, a repomd.xml is accepted
// only if its size and digests match one the metalink lists, so a mirror
// that serves an old (replayed) or altered repomd.xml is skipped, and
// everything below repomd.xml is then checked against it as always. A
// metalink that cannot be fetched or read fails the repository, even when
// it has baseurls: going on without it would drop that check. A mirror
// list that cannot be fetched only loses its mirrors.

// ErrNoMirror is returned (wrapped, with each mirror's error) when no
// mirror of a repository served a usable repomd.xml.
var ErrNoMirror = errors.New("repo: no usable mirror")

// NewFromConfig returns the repository a .repo file section defines: its
// baseurl= bases, and its mirrorlist= or metalink=, with opts.Vars filling
// the variables of the URLs a mirror list returns. It does not touch the
// network or the disk; Metadata does.
func NewFromConfig(c Config, opts Options) (*Repo, error) {
	r, err := newRepo(opts)
	if err != nil {
		return nil, err
	}
	r.id = c.ID
	where := func(key, v string) error {
		return fmt.Errorf("%w: %s: line %d: repository %q: %s=%q", ErrRepoConfig, c.File, c.Line, c.ID, key, v)
	}
	for _, b := range c.BaseURLs {
		if strings.Contains(b, "$") {
			return nil, fmt.Errorf("%w has a variable this agent cannot fill", where("baseurl", b))
		}
		u, err := url.Parse(b)
		if err == nil && (u.Scheme == "file" || u.Scheme == "") && len(c.BaseURLs) == 1 && c.MirrorList == "" && c.Metalink == "" {
			// A local repository, read as New reads it.
			local, err := New(b, opts)
			if err != nil {
				return nil, err
			}
			local.id = c.ID
			return local, nil
		}
		hb, err := httpBase(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", where("baseurl", b), err)
		}
		r.bases = append(r.bases, hb)
	}
	if len(r.bases) == 1 {
		r.base = r.bases[0]
	}
	for _, l := range []struct {
		key string
		v   string
		to  *string
	}{{"metalink", c.Metalink, &r.metalink}, {"mirrorlist", c.MirrorList, &r.mirrorList}} {
		if l.v == "" {
			continue
		}
		if strings.Contains(l.v, "$") {
			return nil, fmt.Errorf("%w has a variable this agent cannot fill", where(l.key, l.v))
		}
		u, err := url.Parse(l.v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
			return nil, fmt.Errorf("%w is not an http, https or file URL", where(l.key, l.v))
		}
		*l.to = l.v
	}
	if len(r.bases) == 0 && r.metalink == "" && r.mirrorList == "" {
		return nil, fmt.Errorf("%w: %s: line %d: repository %q has no baseurl, mirrorlist or metalink", ErrRepoConfig, c.File, c.Line, c.ID)
	}
	return r, nil
}

// skippedMirror is a mirror not used, and why.
type skippedMirror struct {
	mirror string
	err    error
}

// mirrorsError is Metadata's error when no mirror served a usable
// repomd.xml.
type mirrorsError struct {
	repo    string
	skipped []skippedMirror
}

func (e *mirrorsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s: %d tried", ErrNoMirror, e.repo, len(e.skipped))
	for _, s := range e.skipped {
		fmt.Fprintf(&b, "; %s: %v", s.mirror, s.err)
	}
	return b.String()
}

func (e *mirrorsError) Unwrap() []error {
	errs := []error{ErrNoMirror}
	for _, s := range e.skipped {
		errs = append(errs, s.err)
	}
	return errs
}

// mirrorSource is what Metadata tries.
type mirrorSource struct {
	bases    []*url.URL
	metalink *Metalink
	// skipped are mirrors (or a mirror list) already given up.
	skipped []skippedMirror
}

// mirrors resolves the repository's mirrors: its bases, then the
// metalink's or the mirror list's.
func (r *Repo) mirrors(ctx context.Context) (*mirrorSource, error) {
	src := &mirrorSource{bases: append([]*url.URL(nil), r.bases...)}
	seen := map[string]bool{}
	for _, b := range src.bases {
		seen[b.String()] = true
	}
	add := func(raw string) {
		if len(src.bases) >= len(r.bases)+maxMirrors {
			return
		}
		s := expand(raw, r.vars)
		if strings.Contains(s, "$") {
			src.skipped = append(src.skipped, skippedMirror{mirror: s, err: errors.New("has a variable this agent cannot fill")})
			return
		}
		u, err := httpBase(s)
		if err != nil {
			src.skipped = append(src.skipped, skippedMirror{mirror: s, err: err})
			return
		}
		if !seen[u.String()] {
			seen[u.String()] = true
			src.bases = append(src.bases, u)
		}
	}
	list, listURL := r.metalink, r.metalink
	if list == "" {
		list, listURL = r.mirrorList, r.mirrorList
	}
	if list == "" {
		return src, nil
	}
	body, err := r.getList(ctx, listURL)
	if err == nil {
		if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '<' {
			// A metalink, whether metalink= or mirrorlist= named it.
			var ml *Metalink
			if ml, err = ParseMetalink(bytes.NewReader(body)); err == nil {
				src.metalink = ml
				for _, b := range ml.Bases() {
					add(b)
				}
			}
		} else if r.metalink != "" {
			err = fmt.Errorf("%w: metalink: not an XML document", ErrMirrorList)
		} else {
			var urls []string
			if urls, err = ParseMirrorList(bytes.NewReader(body)); err == nil {
				for _, u := range urls {
					add(u)
				}
			}
		}
	}
	if err != nil {
		err = fmt.Errorf("repo: %s: %s: %w", r.id, listURL, err)
		if r.metalink != "" || len(r.bases) == 0 {
			return nil, err
		}
		src.skipped = append(src.skipped, skippedMirror{mirror: listURL, err: err})
	}
	if len(src.bases) == 0 {
		return nil, &mirrorsError{repo: r.String(), skipped: append(src.skipped, skippedMirror{mirror: listURL, err: fmt.Errorf("%w: lists no http or https mirror", ErrMirrorList)})}
	}
	return src, nil
}

// getList fetches a mirror list or metalink: within the fetch timeout, at
// most maxMirrorListSize bytes, 200 OK only.
func (r *Repo) getList(ctx context.Context, raw string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	var body io.ReadCloser
	if u.Scheme == "file" {
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, err
		}
		body = f
	} else if body, err = r.get(ctx, raw); err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, maxMirrorListSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMirrorListSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMirrorList, maxMirrorListSize)
	}
	return b, nil
}
