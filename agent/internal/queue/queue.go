// Package queue is the agent's on-disk store-and-forward queue of reports:
// reports wait here while the server is unreachable and are delivered in
// order, at least once, with ids the server uses to drop duplicates.
//
// The queue is a folder with one file per report, named by a zero-padded
// sequence number and the report's kind ("00000000000000000042-cycle.json").
// A file is written by temp file, fsync, rename and fsync of the folder, so
// after a crash or power cut a report is there whole or not at all; a report
// is removed only when the server acknowledged it (Ack). Each report gets a
// random 128-bit id at Enqueue, kept across retries and restarts.
//
// The queue is bounded by a number of entries and of payload bytes. When a
// new report does not fit, queued inventory reports (deltas and full lists)
// collapse into one "full resync" marker at the place of the oldest of them:
// when the marker reaches the head, the agent sends its whole current
// inventory instead, which says everything the collapsed reports said.
// Results of update cycles are never dropped: a cycle result is always
// queued, beyond the bound if it must be, and once only cycle results (and
// the marker) remain, a new inventory report is refused with ErrFull, the
// marker making sure the change still reaches the server. Cycle results are
// one per update cycle and small, so this cannot grow without end in
// practice.
//
// On Open, temp files a crash left are removed, and an entry that does not
// read back whole (torn, bit-flipped, misnamed) is moved to bad/ with a
// .reason file beside it and a logged warning, never silently dropped.
package queue

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/statedir"
	"github.com/rpmfleet/rpmfleet/pkg/durable"
)

// Kind is what a queued report carries, which decides whether it may be
// collapsed when the queue is full.
type Kind string

// Kinds of reports.
const (
	// KindCycle is a report carrying results of update cycles (with or
	// without an inventory change). Never dropped.
	KindCycle Kind = "cycle"
	// KindDelta is a report with only an inventory change. Collapsible.
	KindDelta Kind = "delta"
	// KindFull is a report with only a full inventory. Collapsible.
	KindFull Kind = "full"
	// KindResync is the marker collapsed inventory reports leave: the
	// sender must send the whole current inventory in its place, under
	// the marker's id. Only the queue makes it; its payload is empty.
	KindResync Kind = "resync"
)

func (k Kind) collapsible() bool { return k == KindDelta || k == KindFull }

// Defaults for Options.
const (
	DefaultMaxEntries = 1000
	DefaultMaxBytes   = 32 << 20
)

// entryVersion is the version of an entry file's JSON. History:
//
//   - 1 (2026-11-25): id, kind, seq, enqueued, sha256 of the payload,
//     payload as base64.
const entryVersion = 1

// badDir is the subfolder entries that do not read back are moved to.
const badDir = "bad"

var (
	// ErrEmpty: Peek found no report.
	ErrEmpty = errors.New("queue: empty")
	// ErrNotFound: Ack of an id that is not queued (acknowledged before,
	// or collapsed into a resync marker).
	ErrNotFound = errors.New("queue: no such report")
	// ErrFull: an inventory report was refused because only cycle results
	// remain; a resync marker is queued in its place.
	ErrFull = errors.New("queue: full")
	// ErrLocked: another process has the queue open.
	ErrLocked = errors.New("queue: in use by another process")
	// ErrRejected is for send functions given to Drain: wrap it to say the
	// server refused the report for good (it will never accept it), so
	// Drain moves it to bad/ instead of retrying forever.
	ErrRejected = errors.New("queue: rejected by the server")
)

var entryName = regexp.MustCompile(`^([0-9]{20})-([a-z]+)\.json$`)

// Item is one queued report.
type Item struct {
	// ID is the report's id, the same at every delivery attempt.
	ID string
	// Kind is the report's kind.
	Kind Kind
	// Seq orders the queue.
	Seq uint64
	// Enqueued is when Enqueue wrote it.
	Enqueued time.Time
	// Payload is the report as given to Enqueue; empty for KindResync.
	Payload []byte
}

// record is an entry file's JSON.
type record struct {
	Version  int       `json:"version"`
	ID       string    `json:"id"`
	Kind     Kind      `json:"kind"`
	Seq      uint64    `json:"seq"`
	Enqueued time.Time `json:"enqueued"`
	SHA256   string    `json:"sha256"`
	Payload  []byte    `json:"payload"`
}

// entry is what the queue keeps in memory of a file: not the payload.
type entry struct {
	seq  uint64
	kind Kind
	id   string
	size int64
}

func (e entry) name() string { return fmt.Sprintf("%020d-%s.json", e.seq, e.kind) }

// Options configure a Queue. The zero value is usable.
type Options struct {
	// MaxEntries and MaxBytes bound the queue (see the package doc);
	// DefaultMaxEntries and DefaultMaxBytes when 0. MaxBytes counts
	// payload bytes.
	MaxEntries int
	MaxBytes   int64
	// Logger gets what recovery and Drain do; slog.Default when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Rand is the source of report ids; crypto/rand when nil.
	Rand io.Reader
	// Backoff paces Drain's retries.
	Backoff Backoff
}

// Queue is an open queue folder. It is safe for concurrent use.
type Queue struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File
	// notify wakes Drain when a report is queued.
	notify chan struct{}

	mu      sync.Mutex // guards entries, bytes, nextSeq and the folder's files
	entries []entry    // sorted by seq
	bytes   int64
	nextSeq uint64
}

// Open opens the queue in dir, creating it when missing, and recovers from
// a crash (see the package doc). Only one process may have a queue open:
// ErrLocked when another keeps it for statedir.LockWait.
func Open(dir string, opts Options) (*Queue, error) {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	q := &Queue{dir: dir, opts: opts, log: opts.Logger.With("component", "queue", "dir", dir), notify: make(chan struct{}, 1), nextSeq: 1}
	if err := os.MkdirAll(filepath.Join(dir, badDir), 0o700); err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	if err := statedir.Lock(lock); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open queue %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("open queue %s: lock: %w", dir, err)
	}
	q.lock = lock
	if err := q.recover(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open queue %s: %w", dir, err)
	}
	return q, nil
}

// Close releases the queue for another process.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.lock == nil {
		return nil
	}
	err := q.lock.Close()
	q.lock = nil
	return err
}

// recover reads the folder: removes temp files, moves unreadable entries
// aside, drops inventory reports a resync marker superseded, and builds the
// index.
func (q *Queue) recover() error {
	des, err := os.ReadDir(q.dir)
	if err != nil {
		return err
	}
	changed := false
	for _, de := range des {
		name := de.Name()
		switch {
		case name == ".lock" || name == badDir:
			continue
		case durable.IsTemp(name):
			if err := os.Remove(filepath.Join(q.dir, name)); err != nil {
				return fmt.Errorf("remove temp file left by a crash: %w", err)
			}
			q.log.Info("removed a temp file left by a crash", "file", name)
			changed = true
			continue
		case !entryName.MatchString(name) || !de.Type().IsRegular():
			q.log.Warn("left alone a file that is not a queue entry", "file", name)
			continue
		}
		rec, err := q.read(name)
		if err != nil {
			if err := q.moveAside(name, err.Error()); err != nil {
				return err
			}
			changed = true
			continue
		}
		q.entries = append(q.entries, entry{seq: rec.Seq, kind: rec.Kind, id: rec.ID, size: int64(len(rec.Payload))})
	}
	slices.SortFunc(q.entries, compareEntries)
	// A crash in the middle of a collapse leaves the marker and some of
	// the inventory reports it replaced: those are superseded.
	if i := slices.IndexFunc(q.entries, func(e entry) bool { return e.kind == KindResync }); i >= 0 {
		marker := q.entries[i]
		kept := q.entries[:0]
		for _, e := range q.entries {
			if (e.kind.collapsible() && e.seq <= marker.seq) || (e.kind == KindResync && e.id != marker.id) {
				if err := os.Remove(filepath.Join(q.dir, e.name())); err != nil {
					return fmt.Errorf("remove report superseded by a resync: %w", err)
				}
				q.log.Info("removed a report superseded by a resync marker", "file", e.name())
				changed = true
				continue
			}
			kept = append(kept, e)
		}
		q.entries = kept
	}
	for _, e := range q.entries {
		q.bytes += e.size
		q.nextSeq = max(q.nextSeq, e.seq+1)
	}
	if changed {
		return syncDir(q.dir)
	}
	return nil
}

func compareEntries(a, b entry) int {
	if a.seq != b.seq {
		if a.seq < b.seq {
			return -1
		}
		return 1
	}
	// A marker sorts before the report it replaced.
	switch {
	case a.kind == b.kind:
		return 0
	case a.kind == KindResync:
		return -1
	case b.kind == KindResync:
		return 1
	}
	if a.kind < b.kind {
		return -1
	}
	return 1
}

// read reads and checks the entry file name.
func (q *Queue) read(name string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(q.dir, name))
	if err != nil {
		return nil, err
	}
	return decodeRecord(name, b)
}

// decodeRecord parses and checks the entry file name holding b.
func decodeRecord(name string, b []byte) (*record, error) {
	m := entryName.FindStringSubmatch(name)
	if m == nil {
		return nil, fmt.Errorf("%s: not a queue entry name", name)
	}
	var rec record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("%s: offset %d: %w", name, dec.InputOffset(), err)
	}
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		return nil, fmt.Errorf("%s: offset %d: trailing data after the entry", name, dec.InputOffset())
	}
	seq, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: sequence number: %w", name, err)
	}
	sum := sha256.Sum256(rec.Payload)
	switch {
	case rec.Version != entryVersion:
		return nil, fmt.Errorf("%s: version %d, want %d", name, rec.Version, entryVersion)
	case rec.Seq != seq || string(rec.Kind) != m[2]:
		return nil, fmt.Errorf("%s: holds seq %d kind %q, not what its name says", name, rec.Seq, rec.Kind)
	case rec.Kind != KindCycle && !rec.Kind.collapsible() && rec.Kind != KindResync:
		return nil, fmt.Errorf("%s: unknown kind %q", name, rec.Kind)
	case rec.Kind == KindResync && len(rec.Payload) != 0:
		return nil, fmt.Errorf("%s: a resync marker with a %d-byte payload", name, len(rec.Payload))
	case len(rec.ID) != 32 || !isHex(rec.ID):
		return nil, fmt.Errorf("%s: id %q is not 32 hex digits", name, rec.ID)
	case hex.EncodeToString(sum[:]) != rec.SHA256:
		return nil, fmt.Errorf("%s: payload sha256 %x, want %s", name, sum, rec.SHA256)
	}
	return &rec, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// moveAside moves an entry that cannot be delivered to bad/, with a .reason
// file beside it, and logs why.
func (q *Queue) moveAside(name, reason string) error {
	dst := fmt.Sprintf("%s.%d", name, q.opts.Now().UnixNano())
	if err := os.Rename(filepath.Join(q.dir, name), filepath.Join(q.dir, badDir, dst)); err != nil {
		return fmt.Errorf("move %s aside: %w", name, err)
	}
	q.log.Warn("moved a report aside", "file", name, "to", filepath.Join(badDir, dst), "reason", reason)
	if err := writeFile(filepath.Join(q.dir, badDir), dst+".reason", []byte(reason+"\n")); err != nil {
		return fmt.Errorf("move %s aside: %w", name, err)
	}
	return syncDir(q.dir)
}

// Len is the number of queued reports, a resync marker included.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.entries)
}

// Bytes is the payload bytes queued.
func (q *Queue) Bytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// Enqueue queues a report of kind KindCycle, KindDelta or KindFull and
// returns its id. It returns when the report is on disk. When the queue is
// full it collapses inventory reports (see the package doc); a refused
// inventory report gets an error wrapping ErrFull.
func (q *Queue) Enqueue(kind Kind, payload []byte) (string, error) {
	if kind != KindCycle && !kind.collapsible() {
		return "", fmt.Errorf("enqueue: kind %q is not one of cycle, delta, full", kind)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	size := int64(len(payload))
	if q.full(size) {
		if err := q.collapse(); err != nil {
			return "", fmt.Errorf("enqueue %s: %w", kind, err)
		}
	}
	if q.full(size) && kind != KindCycle {
		if !slices.ContainsFunc(q.entries, func(e entry) bool { return e.kind == KindResync }) {
			if _, err := q.add(KindResync, nil); err != nil {
				return "", fmt.Errorf("enqueue %s: %w", kind, err)
			}
		}
		return "", fmt.Errorf("enqueue %s of %d bytes: %w: %d reports, %d bytes, only cycle results left; a full resync is queued instead", kind, size, ErrFull, len(q.entries), q.bytes)
	}
	if q.full(size) {
		q.log.Warn("queueing a cycle result beyond the bound", "entries", len(q.entries), "bytes", q.bytes)
	}
	id, err := q.add(kind, payload)
	if err != nil {
		return "", fmt.Errorf("enqueue %s: %w", kind, err)
	}
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return id, nil
}

// full says whether a report of size bytes does not fit. q.mu is held.
func (q *Queue) full(size int64) bool {
	return len(q.entries)+1 > q.opts.MaxEntries || q.bytes+size > q.opts.MaxBytes
}

// collapse replaces every queued inventory report with one resync marker at
// the place of the oldest of them, or of an older marker. q.mu is held.
func (q *Queue) collapse() error {
	first := slices.IndexFunc(q.entries, func(e entry) bool { return e.kind.collapsible() || e.kind == KindResync })
	if first < 0 {
		return nil
	}
	marker := q.entries[first]
	if marker.kind != KindResync {
		// The marker is written before any report it replaces is removed;
		// recover finishes a collapse a crash cut short.
		id, err := q.newID()
		if err != nil {
			return err
		}
		marker = entry{seq: marker.seq, kind: KindResync, id: id}
		if err := q.write(marker, nil); err != nil {
			return err
		}
		q.entries = slices.Insert(q.entries, first, marker)
	}
	kept := q.entries[:0]
	var removed, removedBytes int64
	for _, e := range q.entries {
		if e.kind.collapsible() || (e.kind == KindResync && e.id != marker.id) {
			if err := os.Remove(filepath.Join(q.dir, e.name())); err != nil {
				return fmt.Errorf("collapse: %w", err)
			}
			removed++
			removedBytes += e.size
			q.bytes -= e.size
			continue
		}
		kept = append(kept, e)
	}
	q.entries = kept
	if removed == 0 {
		return nil
	}
	q.log.Info("collapsed inventory reports into a full resync", "reports", removed, "bytes", removedBytes)
	return syncDir(q.dir)
}

// add writes a new entry at the tail. q.mu is held.
func (q *Queue) add(kind Kind, payload []byte) (string, error) {
	id, err := q.newID()
	if err != nil {
		return "", err
	}
	e := entry{seq: q.nextSeq, kind: kind, id: id, size: int64(len(payload))}
	if err := q.write(e, payload); err != nil {
		return "", err
	}
	q.nextSeq++
	q.entries = append(q.entries, e)
	q.bytes += e.size
	return id, nil
}

func (q *Queue) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(q.opts.Rand, b[:]); err != nil {
		return "", fmt.Errorf("new report id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// write writes e's file.
func (q *Queue) write(e entry, payload []byte) error {
	sum := sha256.Sum256(payload)
	b, err := json.Marshal(record{
		Version:  entryVersion,
		ID:       e.id,
		Kind:     e.kind,
		Seq:      e.seq,
		Enqueued: q.opts.Now().UTC(),
		SHA256:   hex.EncodeToString(sum[:]),
		Payload:  payload,
	})
	if err != nil {
		return err
	}
	return writeFile(q.dir, e.name(), b)
}

// Peek returns the oldest report, or ErrEmpty. An entry that no longer
// reads back whole is moved aside and the next one returned.
func (q *Queue) Peek() (*Item, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.entries) > 0 {
		e := q.entries[0]
		rec, err := q.read(e.name())
		if err == nil && rec.ID == e.id {
			return &Item{ID: rec.ID, Kind: rec.Kind, Seq: rec.Seq, Enqueued: rec.Enqueued, Payload: rec.Payload}, nil
		}
		if err == nil {
			err = fmt.Errorf("%s: id %s, was %s at open", e.name(), rec.ID, e.id)
		}
		if errors.Is(err, fs.ErrNotExist) {
			// Nothing left to move aside; say so rather than stall on it.
			q.log.Warn("a queued report vanished from the folder", "file", e.name(), "id", e.id)
			q.entries = q.entries[1:]
			q.bytes -= e.size
			continue
		}
		if merr := q.moveAside(e.name(), err.Error()); merr != nil {
			return nil, fmt.Errorf("peek: %w", merr)
		}
		q.entries = q.entries[1:]
		q.bytes -= e.size
	}
	return nil, ErrEmpty
}

// Ack removes the report id, which the server has acknowledged. It returns
// when the removal is on disk.
func (q *Queue) Ack(id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.IndexFunc(q.entries, func(e entry) bool { return e.id == id })
	if i < 0 {
		return fmt.Errorf("ack %s: %w", id, ErrNotFound)
	}
	e := q.entries[i]
	if err := os.Remove(filepath.Join(q.dir, e.name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ack %s: %w", id, err)
	}
	q.entries = slices.Delete(q.entries, i, i+1)
	q.bytes -= e.size
	if err := syncDir(q.dir); err != nil {
		return fmt.Errorf("ack %s: %w", id, err)
	}
	return nil
}

// reject moves the report id aside after the server refused it for good.
func (q *Queue) reject(id string, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.IndexFunc(q.entries, func(e entry) bool { return e.id == id })
	if i < 0 {
		return nil // collapsed meanwhile
	}
	e := q.entries[i]
	if err := q.moveAside(e.name(), reason); err != nil {
		return err
	}
	q.entries = slices.Delete(q.entries, i, i+1)
	q.bytes -= e.size
	return nil
}

// writeFile writes dir/name, mode 0600, through pkg/durable: temp file,
// fsync, rename and fsync of dir.
func writeFile(dir, name string, b []byte) error {
	return durable.WriteFile(filepath.Join(dir, name), b, 0o600)
}

func syncDir(dir string) error { return durable.SyncDir(dir) }
