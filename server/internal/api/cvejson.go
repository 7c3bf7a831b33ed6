package api

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// appendCVE appends resp as encoding/json's Encoder writes it (HTML-safe
// escaping, a newline at the end), byte for byte. The answer for a CVE
// that half of a 10,000-device fleet is exposed to is about 2.7 MB, and
// encoding/json's reflection took about a third of the time to answer
// it; the fields are a fixed few strings, so they are written directly.
// TestAppendCVE holds the two equal.
func appendCVE(b []byte, resp *protocol.CVEResponse) []byte {
	b = append(b, `{"cve":`...)
	b = appendString(b, resp.CVE)
	b = append(b, `,"exposed":[`...)
	for i := range resp.Exposed {
		e := &resp.Exposed[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"device":`...)
		b = appendString(b, e.Device)
		b = append(b, `,"advisory":`...)
		b = appendString(b, e.Advisory)
		b = append(b, `,"package":`...)
		b = appendString(b, e.Package)
		b = append(b, `,"installed":`...)
		b = appendString(b, e.Installed)
		b = append(b, `,"fixed":`...)
		b = appendString(b, e.Fixed)
		b = append(b, '}')
	}
	b = append(b, `],"patched":[`...)
	for i := range resp.Patched {
		p := &resp.Patched[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"device":`...)
		b = appendString(b, p.Device)
		b = append(b, `,"advisory":`...)
		b = appendString(b, p.Advisory)
		b = append(b, '}')
	}
	b = append(b, ']')
	if resp.Next != "" {
		b = append(b, `,"next":`...)
		b = appendString(b, resp.Next)
	}
	return append(b, "}\n"...)
}

// appendString appends s as a JSON string. Printable ASCII other than
// the characters encoding/json escapes is copied; any other string goes
// through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
