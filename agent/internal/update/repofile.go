package update

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// ErrRepoFile is wrapped by errors reading a .repo file.
var ErrRepoFile = errors.New("update: bad .repo file")

// RepoConfig is one enabled repository of a device's /etc/yum.repos.d.
type RepoConfig struct {
	ID      string
	BaseURL string
	// GPGKeys are the key files the repository names, as paths inside
	// the root (file:// URLs only: a key fetched from the network is not a
	// pin).
	GPGKeys  []string
	GPGCheck bool
}

// ReadRepoDir reads ROOT/etc/yum.repos.d/*.repo and returns the enabled
// repositories that have a baseurl, with $basearch and $releasever
// substituted. Key paths are made absolute under root.
func ReadRepoDir(root, releasever string) ([]RepoConfig, error) {
	names, err := filepath.Glob(filepath.Join(root, "etc/yum.repos.d/*.repo"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	vars := map[string]string{"$basearch": baseArch(), "$arch": baseArch(), "$releasever": releasever}
	var out []RepoConfig
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			return nil, fmt.Errorf("read repositories: %w", err)
		}
		rs, err := ParseRepoFile(n, f, vars)
		f.Close()
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			for i, k := range r.GPGKeys {
				r.GPGKeys[i] = filepath.Join(root, k)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func baseArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "arm":
		return "armhfp"
	}
	return runtime.GOARCH
}

// ParseRepoFile reads one .repo file (dnf's INI dialect): sections, key=value
// lines, '#' and ';' comments, continuation lines starting with whitespace
// (for gpgkey lists). It returns the enabled sections that have a baseurl.
// Errors name the file and line.
func ParseRepoFile(name string, r io.Reader, vars map[string]string) ([]RepoConfig, error) {
	type section struct {
		id   string
		line int
		kv   map[string]string
	}
	var secs []*section
	var cur *section
	var lastKey string
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if (raw[0] == ' ' || raw[0] == '\t') && cur != nil && lastKey != "" {
			cur.kv[lastKey] += " " + line
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") || len(line) < 3 {
				return nil, fmt.Errorf("%w: %s:%d: section header %q is not [name]", ErrRepoFile, name, n, line)
			}
			cur = &section{id: line[1 : len(line)-1], line: n, kv: map[string]string{}}
			secs = append(secs, cur)
			lastKey = ""
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%w: %s:%d: %q is not key=value", ErrRepoFile, name, n, line)
		}
		if cur == nil {
			return nil, fmt.Errorf("%w: %s:%d: %q before any [section]", ErrRepoFile, name, n, line)
		}
		lastKey = strings.ToLower(strings.TrimSpace(k))
		cur.kv[lastKey] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out []RepoConfig
	for _, s := range secs {
		if isFalse(s.kv["enabled"]) {
			continue
		}
		base := strings.Fields(strings.ReplaceAll(s.kv["baseurl"], ",", " "))
		if len(base) == 0 {
			continue // mirrorlist/metalink only: not supported, and not guessed
		}
		rc := RepoConfig{ID: s.id, BaseURL: expand(base[0], vars), GPGCheck: !isFalse(s.kv["gpgcheck"])}
		for _, k := range strings.Fields(strings.ReplaceAll(s.kv["gpgkey"], ",", " ")) {
			k = expand(k, vars)
			p, ok := strings.CutPrefix(k, "file://")
			if !ok {
				return nil, fmt.Errorf("%w: %s:%d: [%s] gpgkey %q is not a file:// URL; only local keys are pinned", ErrRepoFile, name, s.line, s.id, k)
			}
			rc.GPGKeys = append(rc.GPGKeys, p)
		}
		if strings.Contains(rc.BaseURL, "$") {
			return nil, fmt.Errorf("%w: %s:%d: [%s] baseurl %q has a variable this agent does not know", ErrRepoFile, name, s.line, s.id, rc.BaseURL)
		}
		out = append(out, rc)
	}
	return out, nil
}

func isFalse(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "0", "false", "no", "off":
		return true
	}
	return false
}

func expand(s string, vars map[string]string) string {
	for k, v := range vars {
		s = strings.ReplaceAll(s, k, v)
	}
	return s
}
