package cli

import (
	"bytes"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// What the CLI prints from the server is text devices chose (names, host
// names, kernel and version strings, package names and versions) or that
// came from imported repositories (advisory titles). A device enrolled by
// an older server, before names were checked, may hold escape sequences
// that would clear an admin's screen, retitle the terminal or forge a
// table row, or a right-to-left override that turns a line around. So
// every such string goes through show in tables and messages, and --json
// output through jsonEscaper: control and format characters come out as
// visible escapes (\x1b, \u202e), never raw.

// show is a server-given string as it may be printed.
func show(s string) string { return protocol.Escape(s) }

// jsonEscaper writes JSON with every non-ASCII character a terminal would
// act on rather than show (format characters such as U+202E, line
// separators, invalid code points) written as a \u escape. encoding/json
// already escapes control characters below U+0020 and U+2028/U+2029, and
// outside strings JSON holds only ASCII, so the output is the same JSON
// value.
type jsonEscaper struct{ w io.Writer }

func (j jsonEscaper) Write(p []byte) (int, error) {
	clean := true
	for _, r := range string(p) {
		if r >= utf8.RuneSelf && protocol.Escape(string(r)) != string(r) {
			clean = false
			break
		}
	}
	if clean {
		return j.w.Write(p)
	}
	var b bytes.Buffer
	for _, r := range string(p) {
		if r < utf8.RuneSelf || protocol.Escape(string(r)) == string(r) {
			b.WriteRune(r)
			continue
		}
		if r > 0xffff {
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			continue
		}
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	if _, err := j.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}
