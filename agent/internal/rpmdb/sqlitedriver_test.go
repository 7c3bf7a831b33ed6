package rpmdb

// The tests compare the reader in sqlitefile.go with the real SQLite
// engine, and build damaged databases with it; go-rpmdb, the other
// reference, opens sqlite databases through this driver too. Only the
// tests link it: the agent does not.
import _ "modernc.org/sqlite"
