package repo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrMirrorList is returned (wrapped) for a mirror list or metalink that
// cannot be fetched or read.
var ErrMirrorList = errors.New("repo: bad mirror list")

// maxMirrorListSize bounds a mirror list or metalink document: real ones
// are a few KB (AlmaLinux's list) to tens of KB (a MirrorManager metalink
// with a hundred mirrors and its alternates).
const maxMirrorListSize = 1 << 20

// maxMirrors is how many mirrors of one list are tried at most.
const maxMirrors = 64

// ParseMirrorList reads a mirror list as dnf does (librepo's
// lr_mirrorlist_parse_file): one base URL a line, leading and trailing
// white space dropped, blank lines and lines starting with # ignored, and
// of the rest only those that look like URLs ("scheme://...") kept. The
// URLs are returned as written: they may hold variables ($basearch in
// AlmaLinux's lists) for the caller to expand. A line longer than 64 KiB
// or input larger than 1 MiB is an error naming the line.
func ParseMirrorList(r io.Reader) ([]string, error) {
	lr := &io.LimitedReader{R: r, N: maxMirrorListSize + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 4096), 64<<10)
	var urls []string
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.Contains(line, "://") {
			urls = append(urls, line)
		}
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMirrorList, maxMirrorListSize)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line %d: longer than %d bytes", ErrMirrorList, n+1, 64<<10)
		}
		return nil, fmt.Errorf("%w: line %d: %w", ErrMirrorList, n+1, err)
	}
	return urls, nil
}
