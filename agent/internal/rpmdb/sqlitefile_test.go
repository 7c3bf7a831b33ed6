package rpmdb

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/agent/internal/rpmdb/sqlitefile"
	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
)

// row is one (hnum, blob) row of a Packages table.
type row struct {
	hnum int64
	blob []byte
}

// engineRows reads Packages with the real SQLite engine (modernc). The
// database is opened read-write: that is how sqlite recovers a
// write-ahead log left without its -shm index, so callers pass a copy
// when the original must stay untouched.
func engineRows(t *testing.T, path string) []row {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT hnum, blob FROM Packages ORDER BY hnum")
	if err != nil {
		t.Fatalf("sqlite %s: %v", path, err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.hnum, &r.blob); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ownRows reads Packages with sqlitefile.Blobs.
func ownRows(t *testing.T, path string) []row {
	t.Helper()
	var out []row
	err := sqlitefile.Blobs(path, "Packages", func(hnum int64, blob []byte) error {
		out = append(out, row{hnum, bytes.Clone(blob)})
		return nil
	})
	if err != nil {
		t.Fatalf("sqlitefile.Blobs: %v", err)
	}
	return out
}

// sameRows fails unless both sequences hold the same (hnum, blob) pairs in
// the same order.
func sameRows(t *testing.T, got, want []row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, sqlite reads %d", len(got), len(want))
	}
	for i := range got {
		if got[i].hnum != want[i].hnum || !bytes.Equal(got[i].blob, want[i].blob) {
			t.Fatalf("row %d: hnum %d (%d bytes), sqlite reads hnum %d (%d bytes)",
				i, got[i].hnum, len(got[i].blob), want[i].hnum, len(want[i].blob))
		}
	}
}

// copyDB copies path and, when present, path-wal into a fresh folder.
func copyDB(t testing.TB, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "rpmdb.sqlite")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// bigStubs are 1,000 stubs: most small, some with a 20 KB summary and some
// with 150 long file names, so their headers need overflow pages (and
// chains of several) in rpm's 4 KiB pages.
func bigStubs() []rpmtest.Package {
	var pkgs []rpmtest.Package
	for i := range 1000 {
		p := rpmtest.Package{Name: fmt.Sprintf("fleetstub%04d", i), Version: "1.0", Release: "1.el9", Arch: "aarch64"}
		switch i % 100 {
		case 7:
			p.Summary = strings.Repeat(fmt.Sprintf("long summary %d ", i), 1200)
		case 42:
			p.Files = map[string]string{}
			for j := range 150 {
				p.Files[fmt.Sprintf("/usr/share/fleetstub%04d/%s-%03d.txt", i, strings.Repeat("very-long-directory-entry-name", 3), j)] = ""
			}
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// bigDB is the rpmdb.sqlite of a device root with bigStubs, written by
// the real rpm.
func bigDB(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := rpmtest.NewDevRoot(root, nil, bigStubs()); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, rpmtest.DBPath, "rpmdb.sqlite")
}

// TestSQLiteFileSameAsSQLite reads every sqlite rpm database the tests
// have with both the file-format reader and the real SQLite engine, and
// requires the same (hnum, blob) rows in the same order: two real
// databases from other distributions, and databases the real rpm wrote
// (the 179-package RHEL 9 manifest, and 1,000 stubs with headers large
// enough to need overflow chains and a b-tree with interior pages).
func TestSQLiteFileSameAsSQLite(t *testing.T) {
	tests := []struct {
		name string
		path func(t *testing.T) string
	}{
		{"al2023", func(t *testing.T) string { return unpack(t, "rpmdb/al2023-sqlite/rpmdb.sqlite.gz", "rpmdb.sqlite") }},
		{"cbl-mariner2", func(t *testing.T) string {
			return unpack(t, "rpmdb/cbl-mariner2-sqlite/rpmdb.sqlite.gz", "rpmdb.sqlite")
		}},
		{"rpm-written ubi9 manifest", func(t *testing.T) string {
			stubs, err := rpmtest.ReadManifest(filepath.Join(fixtures(t), "installed-inventory", "claircore-ubi9", "ubi9_ubi-aarch64-rpm-manifest.tsv"))
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			if err := rpmtest.NewDevRoot(root, nil, stubs); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(root, rpmtest.DBPath, "rpmdb.sqlite")
		}},
		{"rpm-written 1000 stubs with overflow", bigDB},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path(t)
			got := ownRows(t, path)
			sameRows(t, got, engineRows(t, copyDB(t, path)))
			if len(got) == 0 {
				t.Fatal("no rows")
			}
			if strings.HasPrefix(tc.name, "rpm-written 1000") {
				checkBigShape(t, path, got)
			}
		})
	}
}

// checkBigShape proves the 1,000-stub database exercises what it is meant
// to: a Packages root that is an interior page, and rows whose payload
// spills into overflow chains of more than one page.
func checkBigShape(t *testing.T, path string, rows []row) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps, root := layout(t, path)
	if b[(root-1)*ps] != 0x05 {
		t.Errorf("Packages root page %d has type 0x%02x, want an interior page (0x05)", root, b[(root-1)*ps])
	}
	longest := 0
	for _, r := range rows {
		longest = max(longest, len(r.blob))
	}
	if longest < 3*ps {
		t.Errorf("longest header is %d bytes: no overflow chain of 3+ pages (page size %d)", longest, ps)
	}
	pkgs, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 1000 {
		t.Errorf("Read: %d packages, want 1000", len(pkgs))
	}
	sameAsGoRPMDB(t, path, pkgs)
}

// crash runs stmts on a WAL-mode copy of the database at src with
// checkpoints off, each statement its own transaction, and copies the
// database and its log while the writer still holds them (a power cut
// before rpm's checkpoint). It returns the crashed copy.
func crash(t testing.TB, src string, stmts ...string) string {
	t.Helper()
	live := copyDB(t, src)
	db, err := sql.Open("sqlite", "file:"+live)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, stmt := range append([]string{"PRAGMA journal_mode=WAL", "PRAGMA wal_autocheckpoint=0"}, stmts...) {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	crashed := copyDB(t, live)
	if fi, err := os.Stat(crashed + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no write-ahead log to test with: %v", err)
	}
	return crashed
}

// hnums lists the rows' hnum values.
func hnums(rows []row) map[int64]bool {
	m := map[int64]bool{}
	for _, r := range rows {
		m[r.hnum] = true
	}
	return m
}

// TestSQLiteFileWAL reads databases whose latest transactions are only in
// the write-ahead log, as a power cut before the checkpoint leaves them,
// and requires what SQLite itself recovers from the same files: committed
// transactions count, a torn last frame drops only its own transaction
// (no error), a frame with a bad checksum ends the log there, and a log in
// big-endian checksum order reads the same.
func TestSQLiteFileWAL(t *testing.T) {
	base := filepath.Join(t.TempDir(), "rpmdb.sqlite")
	// An rpm-written database (rpm checkpointed it on exit).
	root := t.TempDir()
	if err := rpmtest.NewDevRoot(root, nil, bigStubs()[:60]); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, rpmtest.DBPath, "rpmdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base, b, 0o644); err != nil {
		t.Fatal(err)
	}
	before := ownRows(t, base)
	// Transaction 1 erases one package and copies a large header (an
	// overflow chain) to a new row; transaction 2 erases another.
	crashed := crash(t, base,
		"DELETE FROM Packages WHERE hnum = 3",
		"INSERT INTO Packages (hnum, blob) SELECT 5000, blob FROM Packages WHERE hnum = 8",
		"DELETE FROM Packages WHERE hnum = 20")
	walSize := func(path string) int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}

	t.Run("committed", func(t *testing.T) {
		got := ownRows(t, crashed)
		sameRows(t, got, engineRows(t, copyDB(t, crashed)))
		h := hnums(got)
		if h[3] || h[20] || !h[5000] || len(got) != len(before)-1 {
			t.Errorf("log not applied: hnum 3 %v, 20 %v, 5000 %v, %d rows (before %d)", h[3], h[20], h[5000], len(got), len(before))
		}
		pkgs, err := Read(crashed)
		if err != nil {
			t.Fatal(err)
		}
		if len(pkgs) != len(got) {
			t.Errorf("Read: %d packages, want %d", len(pkgs), len(got))
		}
	})

	t.Run("torn last frame", func(t *testing.T) {
		torn := copyDB(t, crashed)
		if err := os.Truncate(torn+"-wal", walSize(torn)-100); err != nil {
			t.Fatal(err)
		}
		got := ownRows(t, torn)
		sameRows(t, got, engineRows(t, copyDB(t, torn)))
		if h := hnums(got); h[3] || !h[20] || !h[5000] {
			t.Errorf("want transactions before the torn one only: hnum 3 %v, 20 %v, 5000 %v", h[3], h[20], h[5000])
		}
	})

	t.Run("bad checksum in the first frame", func(t *testing.T) {
		bad := copyDB(t, crashed)
		w, err := os.ReadFile(bad + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		w[32+24+50] ^= 0xff // a byte of the first frame's page (after the log and frame headers)
		if err := os.WriteFile(bad+"-wal", w, 0o644); err != nil {
			t.Fatal(err)
		}
		got := ownRows(t, bad)
		sameRows(t, got, engineRows(t, copyDB(t, bad)))
		sameRows(t, got, before)
	})

	t.Run("big-endian checksums", func(t *testing.T) {
		be := copyDB(t, crashed)
		w, err := os.ReadFile(be + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		if binary.BigEndian.Uint32(w) != 0x377f0682 {
			t.Fatalf("log magic %#x, want the little-endian one this machine writes", binary.BigEndian.Uint32(w))
		}
		resum(t, w, binary.BigEndian)
		if err := os.WriteFile(be+"-wal", w, 0o644); err != nil {
			t.Fatal(err)
		}
		got := ownRows(t, be)
		sameRows(t, got, engineRows(t, copyDB(t, be)))
		sameRows(t, got, ownRows(t, crashed))
	})
}

// resum rewrites a write-ahead log's magic and every checksum for the
// given word order, as a big-endian machine would have written it.
func resum(t *testing.T, w []byte, order binary.ByteOrder) {
	t.Helper()
	magic := uint32(0x377f0682)
	if order == binary.BigEndian {
		magic = 0x377f0683
	}
	// SQLite's checksum: two running sums over pairs of 32-bit words.
	sum := func(b []byte, s0, s1 uint32) (uint32, uint32) {
		for i := 0; i+8 <= len(b); i += 8 {
			s0 += order.Uint32(b[i:]) + s1
			s1 += order.Uint32(b[i+4:]) + s0
		}
		return s0, s1
	}
	const walHeaderLen, walFrameHeaderLen = 32, 24
	binary.BigEndian.PutUint32(w, magic)
	s0, s1 := sum(w[:24], 0, 0)
	binary.BigEndian.PutUint32(w[24:], s0)
	binary.BigEndian.PutUint32(w[28:], s1)
	ps := int(binary.BigEndian.Uint32(w[8:]))
	frames := 0
	for off := walHeaderLen; off+walFrameHeaderLen+ps <= len(w); off += walFrameHeaderLen + ps {
		s0, s1 = sum(w[off:off+8], s0, s1)
		s0, s1 = sum(w[off+walFrameHeaderLen:off+walFrameHeaderLen+ps], s0, s1)
		binary.BigEndian.PutUint32(w[off+16:], s0)
		binary.BigEndian.PutUint32(w[off+20:], s1)
		frames++
	}
	if frames == 0 {
		t.Fatal("log has no frames")
	}
}

// TestSQLiteFileCorrupt damages a real database in the ways a bad disk
// would, and requires an ErrCorrupt naming the file and, where one is at
// fault, the page.
func TestSQLiteFileCorrupt(t *testing.T) {
	good, err := os.ReadFile(unpack(t, "rpmdb/al2023-sqlite/rpmdb.sqlite.gz", "rpmdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	ps, root := layout(t, unpack(t, "rpmdb/al2023-sqlite/rpmdb.sqlite.gz", "rpmdb.sqlite"))
	rootOff := int(root-1) * ps
	tests := []struct {
		name   string
		change func(b []byte) []byte
		want   string
	}{
		{"page size 3000", func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:], 3000); return b }, "offset 16: page size 3000"},
		{"UTF-16 text", func(b []byte) []byte { binary.BigEndian.PutUint32(b[56:], 2); return b }, "text encoding 2"},
		{"payload fractions", func(b []byte) []byte { b[21] = 128; return b }, "offsets 21-23"},
		{"header claims more pages than the file", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[28:], 1<<20)
			return b
		}, "offset 28"},
		{"root page of Packages has a bad type", func(b []byte) []byte { b[rootOff] = 0x0a; return b }, fmt.Sprintf("page %d: page type 0x0a", root)},
		{"b-tree loops back to its root", func(b []byte) []byte {
			if b[rootOff] != 0x05 {
				t.Fatalf("root page type 0x%02x, want interior", b[rootOff])
			}
			binary.BigEndian.PutUint32(b[rootOff+8:], uint32(root)) // right-most child = itself
			return b
		}, fmt.Sprintf("page %d: page is used twice", root)},
		{"child page out of range", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[rootOff+8:], 1<<30)
			return b
		}, "page number 1073741824 out of range"},
		{"cell count overflows the page", func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[rootOff+3:], 0xffff)
			return b
		}, "65535 cells do not fit"},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }, "offset 28"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rpmdb.sqlite")
			if err := os.WriteFile(path, tc.change(bytes.Clone(good)), 0o644); err != nil {
				t.Fatal(err)
			}
			pkgs, err := Read(path)
			if err == nil {
				t.Fatalf("Read = %d packages, want an error", len(pkgs))
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant ErrCorrupt naming %s and saying %q", err, path, tc.want)
			}
		})
	}
}

// layout asks SQLite for the page size and the Packages root page.
func layout(t *testing.T, path string) (pageSize, root int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT rootpage FROM sqlite_schema WHERE type = 'table' AND name = 'Packages'").Scan(&root); err != nil {
		t.Fatal(err)
	}
	return pageSize, root
}

var update = flag.Bool("update", false, "rewrite sqlitefile/testdata from the AL2023 fixture with the real SQLite engine")

// seedDir holds the small real databases package sqlitefile tests and
// fuzzes with; its tests do not link an SQL engine, so they are made here.
const seedDir = "sqlitefile/testdata"

// TestSQLiteFileSeeds (re)writes, with -update, the small databases in
// sqlitefile/testdata: two real AL2023 headers in a table with 512-byte
// pages (so interior pages and overflow chains), and the same after two
// transactions left only in the write-ahead log. It always holds
// sqlitefile to SQLite's answer on them.
func TestSQLiteFileSeeds(t *testing.T) {
	if *update {
		src := unpack(t, "rpmdb/al2023-sqlite/rpmdb.sqlite.gz", "rpmdb.sqlite")
		small := filepath.Join(t.TempDir(), "rpmdb.sqlite")
		db, err := sql.Open("sqlite", "file:"+small)
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		for _, stmt := range []string{
			"PRAGMA page_size=512",
			"CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
			"ATTACH DATABASE 'file:" + src + "?mode=ro' AS src",
			"INSERT INTO Packages SELECT hnum, blob FROM src.Packages WHERE hnum IN (5, 103)",
			"DETACH DATABASE src",
		} {
			if _, err := db.Exec(stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		db.Close()
		crashed := crash(t, small,
			"DELETE FROM Packages WHERE hnum = 103",
			"INSERT INTO Packages (hnum, blob) SELECT 9, blob FROM Packages WHERE hnum = 5")
		for src, dst := range map[string]string{
			small: "small.sqlite", crashed: "wal.sqlite", crashed + "-wal": "wal.sqlite-wal",
		} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(seedDir, dst), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"small.sqlite", "wal.sqlite"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(seedDir, name)
			sameRows(t, ownRows(t, path), engineRows(t, copyDB(t, path)))
		})
	}
}
