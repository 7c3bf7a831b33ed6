package rpmdb

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadHeader puts one fuzzed header blob into a sqlite rpm database
// and reads it: Read must return packages or an error, never panic or
// allocate without bound. Seeds are real headers from the AL2023 database.
// Under -fuzz it runs at about one input a second (the fuzzer's coverage
// bookkeeping over the whole sqlite engine); FuzzParseHeader fuzzes the
// header reader alone at full speed.
func FuzzReadHeader(f *testing.F) {
	src := unpack(f, "rpmdb/al2023-sqlite/rpmdb.sqlite.gz", "rpmdb.sqlite")
	db, err := sql.Open("sqlite", "file:"+src+"?mode=ro")
	if err != nil {
		f.Fatal(err)
	}
	rows, err := db.Query("SELECT blob FROM Packages WHERE hnum IN (1, 5, 40) ")
	if err != nil {
		f.Fatal(err)
	}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	rows.Close()
	db.Close()
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, blob []byte) {
		// Not t.TempDir: fuzz subtest names hold '#', which a sqlite
		// URI reads as the start of a fragment.
		dir, err := os.MkdirTemp("", "rpmfleet-fuzz-rpmdb-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "rpmdb.sqlite")
		db, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("INSERT INTO Packages (blob) VALUES (?)", blob); err != nil {
			t.Fatal(err)
		}
		db.Close()
		pkgs, err := Read(path)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not marked ErrCorrupt: %v", err)
			}
			return
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.Arch == "" {
				t.Fatalf("accepted a package without name, version or arch: %+v", p)
			}
		}
	})
}
