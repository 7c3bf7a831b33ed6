package compressed

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFormats compresses one document with the real gzip, xz, zstd and bzip2
// tools and checks that each is recognized by its magic and decoded intact,
// and that a truncated copy of each fails with an error instead of a short
// read that looks complete.
func TestFormats(t *testing.T) {
	want := bytes.Repeat([]byte("<update><id>ALSA-2023:3722</id></update>\n"), 5000)
	dir := t.TempDir()
	plain := filepath.Join(dir, "doc.xml")
	if err := os.WriteFile(plain, want, 0o644); err != nil {
		t.Fatal(err)
	}
	tools := []struct {
		format Format
		cmd    []string
	}{
		{Gzip, []string{"gzip", "-c"}},
		{XZ, []string{"xz", "-c"}},
		{Zstd, []string{"zstd", "-q", "-c"}},
		{Bzip2, []string{"bzip2", "-c"}},
	}
	for _, tc := range tools {
		t.Run(string(tc.format), func(t *testing.T) {
			if _, err := exec.LookPath(tc.cmd[0]); err != nil {
				t.Fatalf("%s not installed (make deps installs it): %v", tc.cmd[0], err)
			}
			out, err := exec.Command(tc.cmd[0], append(tc.cmd[1:], plain)...).Output()
			if err != nil {
				t.Fatalf("%v: %v", tc.cmd, err)
			}
			got, f, err := readAll(out)
			if err != nil {
				t.Fatal(err)
			}
			if f != tc.format {
				t.Errorf("format = %s, want %s", f, tc.format)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("decoded %d bytes, want %d identical bytes", len(got), len(want))
			}
			_, _, err = readAll(out[:len(out)/2])
			if err == nil {
				t.Fatalf("truncated %s stream read without error", tc.format)
			}
		})
	}
	t.Run("plain", func(t *testing.T) {
		got, f, err := readAll(want)
		if err != nil || f != Plain || !bytes.Equal(got, want) {
			t.Fatalf("plain: format %s, err %v, equal %v", f, err, bytes.Equal(got, want))
		}
	})
}

func TestTruncatedGzipIsNamed(t *testing.T) {
	var buf bytes.Buffer
	cmd := exec.Command("gzip", "-c")
	cmd.Stdin = bytes.NewReader(bytes.Repeat([]byte("x"), 100000))
	cmd.Stdout = &buf
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	_, _, err := readAll(buf.Bytes()[:buf.Len()-10])
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want ErrTruncated", err)
	}
}

func readAll(b []byte) ([]byte, Format, error) {
	rc, f, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, f, err
	}
	defer rc.Close()
	out, err := io.ReadAll(rc)
	return out, f, err
}

// TestXZGuardFollowsBlocks: the guard finds every block header of a
// many-block file, as many as `xz --list` counts, so a large dictionary in
// any block is seen (the decoder allocates a dictionary per block).
func TestXZGuardFollowsBlocks(t *testing.T) {
	dir := t.TempDir()
	raw := make([]byte, 700<<10)
	for i := range raw {
		raw[i] = byte(i*7919>>3) ^ byte(i>>11) // compresses a little: LZMA chunks and stored ones
	}
	plain := filepath.Join(dir, "data")
	if err := os.WriteFile(plain, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--block-size=100KiB"}, {"-T2", "--block-size=64KiB", "--check=sha256"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if out, err := exec.Command("xz", append([]string{"-k", "-f"}, append(args, plain)...)...).CombinedOutput(); err != nil {
				t.Fatalf("xz: %v: %s", err, out)
			}
			z, err := os.ReadFile(plain + ".xz")
			if err != nil {
				t.Fatal(err)
			}
			list, err := exec.Command("xz", "--robot", "--list", "-v", plain+".xz").Output()
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Count(string(list), "\nblock\t")
			g := &xzGuard{src: bytes.NewReader(z), maxDict: MaxWindow}
			if _, err := io.Copy(io.Discard, g); err != nil {
				t.Fatal(err)
			}
			if g.blocks != want || want < 7 {
				t.Errorf("guard read %d block headers, xz --list counts %d", g.blocks, want)
			}
			if g.state != xzStreamPadding || g.skip != 0 {
				t.Errorf("guard ended in state %d with %d bytes to skip, want after the stream footer", g.state, g.skip)
			}
		})
	}
}

// TestXZCorruptChunkRefused: a stream whose LZMA2 chunk is followed by an
// invalid control byte, with no check, which the Go xz decoder alone reads
// as empty without an error (found by FuzzNewReader), is refused.
func TestXZCorruptChunkRefused(t *testing.T) {
	data := []byte("\xfd7zXZ\x00\x00\x00\xff\x12\xd9A\x02\x00!\x01\x16\x00\x00\x00t/\xe5\xa3\xe000\x00\x010\x0000")
	_, _, err := readAll(data)
	if err == nil || err.Error() != "xz: invalid LZMA2 chunk control byte 0x30" {
		t.Fatalf("err = %v, want the chunk refused", err)
	}
}
