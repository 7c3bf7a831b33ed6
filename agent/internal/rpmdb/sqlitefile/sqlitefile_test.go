package sqlitefile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The databases in testdata were written by the real SQLite engine from
// two real AL2023 rpm headers (5: 3,692 bytes, 103: gpg-pubkey, 4,224
// bytes) with 512-byte pages; wal.sqlite-wal holds two transactions
// (erase 103; copy 5 to 9) that were never checkpointed. The rpmdb
// package's TestSQLiteFileSeeds makes them (-update) and holds this
// reader to SQLite's answer on them; here they are read on their own.

type row struct {
	rowid int64
	size  int
}

func read(t *testing.T, path string) ([]row, error) {
	t.Helper()
	var rows []row
	err := Blobs(path, "Packages", func(rowid int64, blob []byte) error {
		rows = append(rows, row{rowid, len(blob)})
		return nil
	})
	return rows, err
}

// copyTo copies testdata/name, and its -wal when there is one, to dir,
// passing the log through cut.
func copyTo(t *testing.T, dir, name string, cut func([]byte) []byte) string {
	t.Helper()
	dst := filepath.Join(dir, "rpmdb.sqlite")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(filepath.Join("testdata", name+suffix))
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if suffix != "" && cut != nil {
			b = cut(b)
		}
		if err := os.WriteFile(dst+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestBlobs(t *testing.T) {
	tests := []struct {
		name string
		db   string
		cut  func([]byte) []byte
		want []row
	}{
		{"no log", "small.sqlite", nil, []row{{5, 3692}, {103, 4224}}},
		{"committed log", "wal.sqlite", nil, []row{{5, 3692}, {9, 3692}}},
		{"torn last frame drops the last transaction", "wal.sqlite", func(b []byte) []byte { return b[:len(b)-100] }, []row{{5, 3692}}},
		{"log header only", "wal.sqlite", func(b []byte) []byte { return b[:32] }, []row{{5, 3692}, {103, 4224}}},
		{"log with a bad header checksum is ignored", "wal.sqlite", func(b []byte) []byte { b[24] ^= 1; return b }, []row{{5, 3692}, {103, 4224}}},
		{"frame with other salts ends the log", "wal.sqlite", func(b []byte) []byte { b[32+8] ^= 1; return b }, []row{{5, 3692}, {103, 4224}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := read(t, copyTo(t, t.TempDir(), tc.db, tc.cut))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBlobsErrors(t *testing.T) {
	good, err := os.ReadFile("testdata/small.sqlite")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		table  string
		change func([]byte) []byte
		want   string
	}{
		{"no such table", "Basenames", nil, "page 1: no such table: Basenames"},
		{"short file", "Packages", func(b []byte) []byte { return b[:99] }, "shorter than the 100-byte database header"},
		{"bad magic", "Packages", func(b []byte) []byte { b[0] = 's'; return b }, "bad magic"},
		{"page size 513", "Packages", func(b []byte) []byte { b[16], b[17] = 2, 1; return b }, "page size 513"},
		{"UTF-16", "Packages", func(b []byte) []byte { b[59] = 3; return b }, "text encoding 3"},
		{"reserved bytes leave too little", "Packages", func(b []byte) []byte { b[20] = 40; return b }, "offset 20: 40 reserved bytes"},
		{"schema page type", "Packages", func(b []byte) []byte { b[100] = 0x0a; return b }, "page 1: page type 0x0a"},
		{"schema cell out of the page", "Packages", func(b []byte) []byte { b[108], b[109] = 0x01, 0xff; return b }, "page 1: cell at offset 512: truncated rowid (cell 0)"},
		{"truncated", "Packages", func(b []byte) []byte { return b[:len(b)-512] }, "offset 28"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(good)
			if tc.change != nil {
				b = tc.change(b)
			}
			path := filepath.Join(t.TempDir(), "rpmdb.sqlite")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			rows, err := func() ([]row, error) {
				var rows []row
				err := Blobs(path, tc.table, func(rowid int64, blob []byte) error {
					rows = append(rows, row{rowid, len(blob)})
					return nil
				})
				return rows, err
			}()
			if err == nil {
				t.Fatalf("read %v, want an error", rows)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant ErrCorrupt naming %s and saying %q", err, path, tc.want)
			}
		})
	}
}

// TestBlobsStopsOnCallbackError: an error from fn comes back as it is.
func TestBlobsStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := Blobs("testdata/small.sqlite", "Packages", func(int64, []byte) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("err = %v after %d calls, want stop after 1", err, calls)
	}
}

// FuzzBlobs feeds the reader a fuzzed database and write-ahead log: it
// must return rows or an ErrCorrupt, never panic, loop or allocate
// without bound. Seeds are the real databases in testdata.
func FuzzBlobs(f *testing.F) {
	seed := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	small, wal := seed("small.sqlite"), seed("wal.sqlite-wal")
	f.Add(small, []byte(nil))
	f.Add(seed("wal.sqlite"), wal)
	f.Add(seed("wal.sqlite"), wal[:len(wal)-7])
	f.Fuzz(func(t *testing.T, db, wal []byte) {
		var w io.ReaderAt
		if wal != nil {
			w = bytes.NewReader(wal)
		}
		total := 0
		err := BlobsFrom("fuzz.sqlite", bytes.NewReader(db), int64(len(db)), w, int64(len(wal)), "Packages", func(rowid int64, blob []byte) error {
			total += len(blob)
			return nil
		})
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error not marked ErrCorrupt: %v", err)
		}
		if total > len(db)+len(wal) {
			t.Fatalf("read %d blob bytes from %d bytes of input", total, len(db)+len(wal))
		}
	})
}
