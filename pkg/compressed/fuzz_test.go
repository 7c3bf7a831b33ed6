package compressed

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"testing"

	"github.com/ulikunitz/xz"
)

// FuzzNewReader reads arbitrary bytes as a compressed stream held to 64 KiB:
// never a panic, never more than the limit, and the xz guard never refuses
// (but for a large dictionary) a stream that the xz decoder alone and the
// reference xz both accept: a guard that lost its place in a valid file
// would.
func FuzzNewReader(f *testing.F) {
	doc := bytes.Repeat([]byte("<update><id>ALSA-2023:3722</id></update>\n"), 50)
	for _, cmd := range [][]string{
		{"gzip", "-c"}, {"xz", "-c"}, {"xz", "-c", "--check=none", "--block-size=300"}, {"xz", "-c", "--check=sha256", "-0"},
		{"zstd", "-q", "-c"}, {"bzip2", "-c"},
	} {
		c := exec.Command(cmd[0], cmd[1:]...)
		c.Stdin = bytes.NewReader(doc)
		out, err := c.Output()
		if err != nil {
			f.Fatalf("%v: %v", cmd, err)
		}
		f.Add(out)
	}
	f.Add(doc)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 64 << 10
		rc, format, err := NewReaderMax(bytes.NewReader(data), max)
		var n int64
		if err == nil {
			n, err = io.Copy(io.Discard, rc)
			rc.Close()
			if n > max {
				t.Fatalf("read %d bytes past the %d limit", n, max)
			}
		}
		if format != XZ || err == nil || errors.Is(err, ErrWindow) || errors.Is(err, ErrTooLarge) {
			return
		}
		if bigDictionary(data) {
			return // the decoder alone would allocate it
		}
		xr, xerr := xz.NewReader(bytes.NewReader(data))
		if xerr == nil {
			_, xerr = io.Copy(io.Discard, io.LimitReader(xr, max))
		}
		if xerr != nil {
			return
		}
		// The Go decoder takes some corrupt streams for empty ones (a
		// chunk it does not decode, with no check to catch it): ask the
		// reference decoder, liblzma, which is rarely needed.
		test := exec.Command("xz", "-t", "-q", "-q")
		test.Stdin = bytes.NewReader(data)
		if test.Run() == nil {
			t.Fatalf("refused (%v) a stream that xz -t accepts", err)
		}
	})
}

// bigDictionary reports whether data holds anything that could be an LZMA2
// filter asking for more than MaxWindow.
func bigDictionary(data []byte) bool {
	for i := 0; i+2 < len(data); i++ {
		if data[i] == 0x21 && data[i+1] == 0x01 {
			if d, err := lzma2Dict(data[i+2]); err != nil || d > MaxWindow {
				return true
			}
		}
	}
	return false
}
