package rpmdb

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

// TestReadFoldsWAL reproduces a power cut after rpm committed a transaction
// but before it checkpointed the write-ahead log: the erase of one package
// is only in rpmdb.sqlite-wal. go-rpmdb alone (immutable open) still lists
// the erased package; Read must not, and must leave the device's files as
// they were.
func TestReadFoldsWAL(t *testing.T) {
	live := unpack(t, "rpmdb/al2023-sqlite/rpmdb.sqlite.gz", "rpmdb.sqlite")
	db, err := sql.Open("sqlite", "file:"+live)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	for _, stmt := range []string{"PRAGMA journal_mode=WAL", "PRAGMA wal_autocheckpoint=0", "DELETE FROM Packages WHERE hnum = 5"} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	// Power cut: copy the files while the writer still holds them open.
	dir := t.TempDir()
	crashed := filepath.Join(dir, "rpmdb.sqlite")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(live + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crashed+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	walBefore, err := os.Stat(crashed + "-wal")
	if err != nil || walBefore.Size() == 0 {
		t.Fatalf("no write-ahead log to test with: %v", err)
	}

	stale, err := list(crashed)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Read(crashed)
	if err != nil {
		t.Fatal(err)
	}
	// 103 headers = 102 packages + gpg-pubkey; one erased in the log.
	if len(stale) != 103 || len(pkgs) != 101 {
		t.Errorf("go-rpmdb alone: %d headers (want 103, the stale view); Read: %d packages (want 101)", len(stale), len(pkgs))
	}
	walAfter, err := os.Stat(crashed + "-wal")
	if err != nil || walAfter.Size() != walBefore.Size() || !walAfter.ModTime().Equal(walBefore.ModTime()) {
		t.Errorf("Read changed the device's write-ahead log: %v", err)
	}
}
