package compressed

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
