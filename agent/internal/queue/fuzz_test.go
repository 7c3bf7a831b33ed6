package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzDecodeRecord: no entry file panics the parser, an error names the
// file, and an accepted entry's payload matches its checksum and its
// name.
func FuzzDecodeRecord(f *testing.F) {
	dir := f.TempDir()
	q, err := Open(dir, Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer q.Close()
	for _, k := range []Kind{KindCycle, KindDelta, KindFull} {
		if _, err := q.Enqueue(k, []byte(`{"inventory":{"kind":"delta"}}`)); err != nil {
			f.Fatal(err)
		}
	}
	addSeeds := func(kinds ...Kind) {
		for _, e := range q.entries {
			if slices.Contains(kinds, e.kind) {
				b, err := os.ReadFile(filepath.Join(dir, e.name()))
				if err != nil {
					f.Fatal(err)
				}
				f.Add(e.name(), b)
			}
		}
	}
	addSeeds(KindCycle, KindDelta, KindFull)
	q.mu.Lock()
	err = q.collapse()
	q.mu.Unlock()
	if err != nil {
		f.Fatal(err)
	}
	addSeeds(KindResync)
	f.Add("00000000000000000001-cycle.json", []byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, name string, b []byte) {
		rec, err := decodeRecord(name, b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), name+": ") {
				t.Fatalf("error %q does not name the file %q", err, name)
			}
			return
		}
		sum := sha256.Sum256(rec.Payload)
		if hex.EncodeToString(sum[:]) != rec.SHA256 || !strings.HasSuffix(name, "-"+string(rec.Kind)+".json") {
			t.Fatalf("accepted %q as %+v", name, rec)
		}
	})
}
