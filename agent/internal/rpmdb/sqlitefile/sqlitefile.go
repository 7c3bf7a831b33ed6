// Package sqlitefile reads the rows of one rowid table of an SQLite 3
// database, and of its write-ahead log, straight from the file format
// (https://www.sqlite.org/fileformat2.html), without an SQL engine. It
// exists so that the agent can read EL9's rpmdb.sqlite (Packages: hnum
// INTEGER PRIMARY KEY, blob BLOB) without linking modernc.org/sqlite, the
// largest part of the agent binary (issue 6's size budget) and of its
// peak memory.
//
// Threat model: the files come from a device's disk and may be damaged by
// a power cut, a full disk or a bad sector, or crafted; they are never
// trusted. The package reads, never writes or locks, and does only what
// the agent needs: the database header, the schema table on page 1, table
// b-tree pages (interior and leaf), overflow chains and records, and the
// committed frames of the write-ahead log (salts matched and checksum
// chain verified; a torn or stale frame ends the log, as in SQLite). Every
// offset and length is bounds-checked, every page number must lie inside
// the database, each page may be used once (so a corrupt b-tree or
// overflow chain cannot loop), the tree depth is limited, an overflow
// chain is exactly as long as its payload size says, and memory grows
// only with the bytes really read. Faults wrap ErrCorrupt and name the
// file and the page; nothing panics (FuzzBlobs).
package sqlitefile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

const (
	sqliteMagic     = "SQLite format 3\x00"
	sqliteHeaderLen = 100
	// maxTreeDepth is sqlite's own cursor depth limit (BTCURSOR_MAX_DEPTH).
	maxTreeDepth = 20
	// maxPayload bounds one record: rpm's largest header (headerMaxbytes,
	// 256 MiB) plus room for the record header.
	maxPayload = 256<<20 + 64

	walHeaderLen      = 32
	walFrameHeaderLen = 24
	walMagicLE        = 0x377f0682
	walMagicBE        = 0x377f0683
	walVersion        = 3007000
)

// B-tree page types.
const (
	pageTableInterior = 0x05
	pageTableLeaf     = 0x0d
)

// ErrCorrupt is wrapped by every error about the content of the files.
var ErrCorrupt = errors.New("sqlitefile: corrupt database")

// sqliteFile is an open database: the main file and, when the
// write-ahead log holds committed frames, the log's latest committed frame
// for each page.
type sqliteFile struct {
	name     string
	db       io.ReaderAt
	dbSize   int64
	wal      io.ReaderAt
	walPages map[uint32]int64 // page number -> offset of its page image in the log
	pageSize int
	usable   int    // page size less the reserved bytes at the end of each page
	pages    uint32 // database size in pages
	visited  map[uint32]bool
	free     [][]byte // page buffers to reuse
	buf      []byte   // the last overflowing payload's buffer, to reuse
}

// corrupt wraps ErrCorrupt with the file, the page (0: none) and what was wrong.
func (s *sqliteFile) corrupt(page uint32, format string, args ...any) error {
	where := ""
	if page != 0 {
		where = fmt.Sprintf(" page %d:", page)
	}
	return fmt.Errorf("%w: %s:%s %s", ErrCorrupt, s.name, where, fmt.Sprintf(format, args...))
}

// Blobs calls fn, in rowid order, with the rowid and blob of every row of
// table in the database at path, as it stands after the committed
// transactions of its write-ahead log path-wal, if there is one. The
// table must be a rowid table of an INTEGER PRIMARY KEY and a BLOB (as
// rpm's Packages). blob is valid only during the call; an error from fn
// ends the walk and is returned as it is.
func Blobs(path, table string, fn func(rowid int64, blob []byte) error) error {
	name := path
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sqlitefile: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("sqlitefile: %w", err)
	}
	var (
		wal     io.ReaderAt
		walSize int64
	)
	if w, err := os.Open(path + "-wal"); err == nil {
		defer w.Close()
		wfi, err := w.Stat()
		if err != nil {
			return fmt.Errorf("sqlitefile: write-ahead log: %w", err)
		}
		wal, walSize = w, wfi.Size()
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sqlitefile: write-ahead log: %w", err)
	}
	return BlobsFrom(name, f, fi.Size(), wal, walSize, table, fn)
}

// BlobsFrom is Blobs over readers: db of dbSize bytes and wal of walSize
// bytes (nil when there is no log). name is what errors call the database.
func BlobsFrom(name string, db io.ReaderAt, dbSize int64, wal io.ReaderAt, walSize int64, table string, fn func(rowid int64, blob []byte) error) error {
	s := &sqliteFile{name: name, db: db, dbSize: dbSize, visited: map[uint32]bool{}}
	if err := s.open(wal, walSize); err != nil {
		return err
	}
	root, err := s.tableRoot(table)
	if err != nil {
		return err
	}
	// The schema tree and the Packages tree are disjoint; start afresh so
	// only pages used twice within the walk count as corruption.
	s.visited = map[uint32]bool{}
	return s.walk(root, 0, func(page uint32, rowid int64, payload []byte) error {
		blob, err := blobRow(payload)
		if err != nil {
			return s.corrupt(page, "%s row %d: %v", table, rowid, err)
		}
		return fn(rowid, blob)
	})
}

// open reads the database header, then the write-ahead log, then the
// header again as the log may hold a newer page 1.
func (s *sqliteFile) open(wal io.ReaderAt, walSize int64) error {
	var h [sqliteHeaderLen]byte
	if s.dbSize < sqliteHeaderLen {
		return s.corrupt(0, "file is %d bytes, shorter than the %d-byte database header", s.dbSize, sqliteHeaderLen)
	}
	if _, err := s.db.ReadAt(h[:], 0); err != nil {
		return fmt.Errorf("sqlitefile: %s: %w", s.name, err)
	}
	if string(h[:16]) != sqliteMagic {
		return s.corrupt(0, "header: bad magic %q", h[:16])
	}
	ps := int(binary.BigEndian.Uint16(h[16:]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps > 65536 || ps&(ps-1) != 0 {
		return s.corrupt(0, "header offset 16: page size %d is not a power of two from 512 to 65536", ps)
	}
	s.pageSize = ps
	if err := s.readWAL(wal, walSize); err != nil {
		return err
	}
	// Page 1, possibly from the log, holds the current header.
	if s.walPages == nil {
		s.pages = 1 // enough to read page 1; set from the header below
	}
	p1, err := s.page(1)
	if err != nil {
		return err
	}
	copy(h[:], p1)
	s.release(p1)
	if string(h[:16]) != sqliteMagic {
		return s.corrupt(1, "header: bad magic %q", h[:16])
	}
	if ps2 := int(binary.BigEndian.Uint16(h[16:])); ps2 != ps && !(ps2 == 1 && ps == 65536) {
		return s.corrupt(1, "header offset 16: page size %d in the log, %d in the file", ps2, ps)
	}
	if h[21] != 64 || h[22] != 32 || h[23] != 32 {
		return s.corrupt(1, "header offsets 21-23: payload fractions %d, %d, %d (want 64, 32, 32)", h[21], h[22], h[23])
	}
	s.usable = ps - int(h[20])
	if s.usable < 480 {
		return s.corrupt(1, "header offset 20: %d reserved bytes leave %d usable of %d (want at least 480)", h[20], s.usable, ps)
	}
	if enc := binary.BigEndian.Uint32(h[56:]); enc != 1 {
		return s.corrupt(1, "header offset 56: text encoding %d (only 1, UTF-8, is supported)", enc)
	}
	switch {
	case s.walPages != nil:
		// set by the log's last commit
	case binary.BigEndian.Uint32(h[28:]) != 0 && binary.BigEndian.Uint32(h[24:]) == binary.BigEndian.Uint32(h[92:]):
		s.pages = binary.BigEndian.Uint32(h[28:])
	default:
		s.pages = uint32(min(s.dbSize/int64(ps), 1<<32-1))
	}
	if s.walPages == nil && int64(s.pages)*int64(ps) > s.dbSize {
		return s.corrupt(0, "header offset 28: %d pages of %d bytes, but the file is %d bytes", s.pages, ps, s.dbSize)
	}
	if s.pages == 0 {
		return s.corrupt(0, "database has no pages")
	}
	return nil
}

// readWAL finds the committed frames of the write-ahead log: frames whose
// salts match the log header and whose checksum chain holds, up to the
// last commit frame. A log with a bad header is ignored, as sqlite does; a
// torn or stale frame ends the log.
func (s *sqliteFile) readWAL(wal io.ReaderAt, size int64) error {
	if wal == nil || size < walHeaderLen {
		return nil
	}
	var h [walHeaderLen]byte
	if _, err := wal.ReadAt(h[:], 0); err != nil {
		return fmt.Errorf("sqlitefile: %s: write-ahead log: %w", s.name, err)
	}
	magic := binary.BigEndian.Uint32(h[0:])
	if (magic != walMagicLE && magic != walMagicBE) || binary.BigEndian.Uint32(h[4:]) != walVersion {
		return nil
	}
	var order binary.ByteOrder = binary.LittleEndian
	if magic&1 == 1 {
		order = binary.BigEndian
	}
	s0, s1 := walChecksum(order, h[:24], 0, 0)
	if s0 != binary.BigEndian.Uint32(h[24:]) || s1 != binary.BigEndian.Uint32(h[28:]) {
		return nil
	}
	if ps := int(binary.BigEndian.Uint32(h[8:])); ps != s.pageSize {
		return s.corrupt(0, "write-ahead log header offset 8: page size %d, database has %d", ps, s.pageSize)
	}
	salt1, salt2 := binary.BigEndian.Uint32(h[16:]), binary.BigEndian.Uint32(h[20:])

	frameLen := int64(walFrameHeaderLen + s.pageSize)
	frame := make([]byte, frameLen)
	pending := map[uint32]int64{}
	var committed map[uint32]int64
	var commitPages uint32
	for off := int64(walHeaderLen); off+frameLen <= size; off += frameLen {
		if _, err := wal.ReadAt(frame, off); err != nil {
			return fmt.Errorf("sqlitefile: %s: write-ahead log offset %d: %w", s.name, off, err)
		}
		pgno := binary.BigEndian.Uint32(frame[0:])
		if pgno == 0 || binary.BigEndian.Uint32(frame[8:]) != salt1 || binary.BigEndian.Uint32(frame[12:]) != salt2 {
			break
		}
		n0, n1 := walChecksum(order, frame[:8], s0, s1)
		n0, n1 = walChecksum(order, frame[walFrameHeaderLen:], n0, n1)
		if n0 != binary.BigEndian.Uint32(frame[16:]) || n1 != binary.BigEndian.Uint32(frame[20:]) {
			break
		}
		s0, s1 = n0, n1
		pending[pgno] = off + walFrameHeaderLen
		if dbPages := binary.BigEndian.Uint32(frame[4:]); dbPages != 0 {
			committed = make(map[uint32]int64, len(pending))
			for k, v := range pending {
				committed[k] = v
			}
			commitPages = dbPages
		}
	}
	if committed == nil {
		return nil
	}
	s.wal, s.walPages, s.pages = wal, committed, commitPages
	return nil
}

// walChecksum continues sqlite's write-ahead log checksum (s0, s1) over b,
// a whole number of 8-byte units, reading words in order.
func walChecksum(order binary.ByteOrder, b []byte, s0, s1 uint32) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s0 += order.Uint32(b[i:]) + s1
		s1 += order.Uint32(b[i+4:]) + s0
	}
	return s0, s1
}

// page reads page n, from the log when it holds a committed image of it.
func (s *sqliteFile) page(n uint32) ([]byte, error) {
	if n == 0 || n > s.pages {
		return nil, s.corrupt(0, "page number %d out of range 1-%d", n, s.pages)
	}
	var b []byte
	if k := len(s.free); k > 0 {
		b, s.free = s.free[k-1], s.free[:k-1]
	} else {
		b = make([]byte, s.pageSize)
	}
	if off, ok := s.walPages[n]; ok {
		if _, err := s.wal.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("%w: %s: page %d from the write-ahead log: %w", ErrCorrupt, s.name, n, err)
		}
		return b, nil
	}
	off := int64(n-1) * int64(s.pageSize)
	if off+int64(s.pageSize) > s.dbSize {
		return nil, s.corrupt(n, "page lies beyond the end of the %d-byte file", s.dbSize)
	}
	if _, err := s.db.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("%w: %s: page %d: %w", ErrCorrupt, s.name, n, err)
	}
	return b, nil
}

// release returns a page read by page for reuse: the walk holds one page
// per tree level, so a handful of buffers serve the whole file.
func (s *sqliteFile) release(b []byte) {
	s.free = append(s.free, b)
}

// visit marks page n used, refusing a page used before.
func (s *sqliteFile) visit(n uint32) error {
	if s.visited[n] {
		return s.corrupt(n, "page is used twice (a loop in the b-tree or an overflow chain)")
	}
	s.visited[n] = true
	return nil
}

// tableRoot finds the root page of table in the schema table on page 1.
func (s *sqliteFile) tableRoot(table string) (uint32, error) {
	var root uint32
	err := s.walk(1, 0, func(page uint32, rowid int64, payload []byte) error {
		cols, err := record(payload)
		if err != nil {
			return s.corrupt(page, "schema row %d: %v", rowid, err)
		}
		if len(cols) < 4 || string(cols[0].text) != "table" || string(cols[1].text) != table {
			return nil
		}
		if cols[3].kind != colInt || cols[3].i <= 0 || cols[3].i > int64(s.pages) {
			return s.corrupt(page, "schema row %d: %s has root page %d, out of range 1-%d", rowid, table, cols[3].i, s.pages)
		}
		root = uint32(cols[3].i)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if root == 0 {
		return 0, s.corrupt(1, "no such table: %s", table)
	}
	return root, nil
}

// walk visits the table b-tree rooted at page n in rowid order, calling fn
// with each row's leaf page, rowid and record. The record is only valid
// during the call.
func (s *sqliteFile) walk(n uint32, depth int, fn func(page uint32, rowid int64, record []byte) error) error {
	if depth > maxTreeDepth {
		return s.corrupt(n, "b-tree deeper than %d levels", maxTreeDepth)
	}
	if err := s.visit(n); err != nil {
		return err
	}
	p, err := s.page(n)
	if err != nil {
		return err
	}
	defer s.release(p)
	hdr := 0
	if n == 1 {
		hdr = sqliteHeaderLen
	}
	if hdr+8 > s.usable {
		return s.corrupt(n, "page too small for a b-tree header")
	}
	typ := p[hdr]
	cells := int(binary.BigEndian.Uint16(p[hdr+3:]))
	ptrs := hdr + 8
	if typ == pageTableInterior {
		ptrs = hdr + 12
	}
	if ptrs+2*cells > s.usable {
		return s.corrupt(n, "%d cells do not fit in the page", cells)
	}
	switch typ {
	case pageTableInterior:
		for i := range cells {
			off := int(binary.BigEndian.Uint16(p[ptrs+2*i:]))
			if off < ptrs+2*cells || off+4 > s.usable {
				return s.corrupt(n, "cell %d at offset %d is outside the cell area", i, off)
			}
			if err := s.walk(binary.BigEndian.Uint32(p[off:]), depth+1, fn); err != nil {
				return err
			}
		}
		return s.walk(binary.BigEndian.Uint32(p[hdr+8:]), depth+1, fn)
	case pageTableLeaf:
		for i := range cells {
			off := int(binary.BigEndian.Uint16(p[ptrs+2*i:]))
			if off < ptrs+2*cells || off >= s.usable {
				return s.corrupt(n, "cell %d at offset %d is outside the cell area", i, off)
			}
			rowid, payload, err := s.leafCell(n, p[:s.usable], off)
			if err != nil {
				return fmt.Errorf("%w (cell %d)", err, i)
			}
			if err := fn(n, rowid, payload); err != nil {
				return err
			}
		}
		return nil
	default:
		return s.corrupt(n, "page type 0x%02x is not a table b-tree page (want 0x05 or 0x0d)", typ)
	}
}

// leafCell reads the leaf table cell at off in page p (cut to the usable
// size): its rowid and its whole payload, following the overflow chain.
func (s *sqliteFile) leafCell(n uint32, p []byte, off int) (int64, []byte, error) {
	size, k := varint(p[off:])
	if k == 0 {
		return 0, nil, s.corrupt(n, "cell at offset %d: truncated payload size", off)
	}
	off += k
	rowid, k := varint(p[off:])
	if k == 0 {
		return 0, nil, s.corrupt(n, "cell at offset %d: truncated rowid", off)
	}
	off += k
	if size > maxPayload {
		return 0, nil, s.corrupt(n, "row %d: payload of %d bytes exceeds %d", int64(rowid), size, maxPayload)
	}
	P, U := int(size), s.usable
	local := P
	if P > U-35 {
		m := ((U-12)*32/255 - 23)
		local = m + (P-m)%(U-4)
		if local > U-35 {
			local = m
		}
	}
	if off+local > len(p) {
		return 0, nil, s.corrupt(n, "row %d: %d local payload bytes at offset %d run past the page", int64(rowid), local, off)
	}
	if local == P {
		return int64(rowid), p[off : off+P], nil
	}
	if off+local+4 > len(p) {
		return 0, nil, s.corrupt(n, "row %d: overflow pointer runs past the page", int64(rowid))
	}
	if need := (P - local + U - 5) / (U - 4); need > int(s.pages) {
		return 0, nil, s.corrupt(n, "row %d: payload of %d bytes needs %d overflow pages, more than the database's %d pages", int64(rowid), P, need, s.pages)
	}
	// Grow with what the chain really holds, not what the size claims,
	// reusing one buffer for all rows (the payload is valid only during
	// the caller's callback).
	payload := append(s.buf[:0], p[off:off+local]...)
	defer func() { s.buf = payload[:0] }()
	next := binary.BigEndian.Uint32(p[off+local:])
	for len(payload) < P {
		if next == 0 {
			return 0, nil, s.corrupt(n, "row %d: overflow chain ends after %d of %d payload bytes", int64(rowid), len(payload), P)
		}
		if err := s.visit(next); err != nil {
			return 0, nil, err
		}
		op, err := s.page(next)
		if err != nil {
			return 0, nil, err
		}
		take := min(P-len(payload), U-4)
		payload = append(payload, op[4:4+take]...)
		next = binary.BigEndian.Uint32(op)
		s.release(op)
	}
	return int64(rowid), payload, nil
}

// varint decodes sqlite's big-endian variable-length integer at the start
// of b, returning it and its length, 0 when b is too short.
func varint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < 9; i++ {
		if i >= len(b) {
			return 0, 0
		}
		if i == 8 {
			return v<<8 | uint64(b[i]), 9
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

// Column kinds a record holds.
const (
	colNull = iota
	colInt
	colFloat
	colBlob
	colText
)

// column is one decoded record column. text holds BLOB and TEXT bytes.
type column struct {
	kind int
	i    int64
	text []byte
}

// record decodes a record: a header of serial types, then the values.
func record(b []byte) ([]column, error) {
	hsize, k := varint(b)
	if k == 0 || hsize < uint64(k) || hsize > uint64(len(b)) {
		return nil, fmt.Errorf("record header size %d does not fit in %d bytes", hsize, len(b))
	}
	types, body := b[k:hsize], b[hsize:]
	var cols []column
	for len(types) > 0 {
		t, k := varint(types)
		if k == 0 {
			return nil, fmt.Errorf("record header: truncated serial type at column %d", len(cols))
		}
		types = types[k:]
		var c column
		n := 0
		switch {
		case t == 0:
			c.kind = colNull
		case t >= 1 && t <= 6:
			n = [...]int{0, 1, 2, 3, 4, 6, 8}[t]
			c.kind = colInt
		case t == 7:
			n, c.kind = 8, colFloat
		case t == 8 || t == 9:
			c.kind, c.i = colInt, int64(t-8)
		case t >= 12:
			if (t-12)/2 > uint64(len(body)) {
				return nil, fmt.Errorf("column %d: %d bytes, only %d left in the record", len(cols), (t-12)/2, len(body))
			}
			n, c.kind = int((t-12)/2), colBlob
			if t%2 == 1 {
				c.kind = colText
			}
		default:
			return nil, fmt.Errorf("column %d: reserved serial type %d", len(cols), t)
		}
		if n > len(body) {
			return nil, fmt.Errorf("column %d: %d bytes, only %d left in the record", len(cols), n, len(body))
		}
		v := body[:n]
		body = body[n:]
		switch c.kind {
		case colInt:
			if n > 0 {
				var x int64
				if v[0]&0x80 != 0 {
					x = -1
				}
				for _, by := range v {
					x = x<<8 | int64(by)
				}
				c.i = x
			}
		case colBlob, colText:
			c.text = v
		}
		cols = append(cols, c)
	}
	return cols, nil
}

// blobRow returns the blob of a record (INTEGER PRIMARY KEY, BLOB). The
// key column is stored as NULL: the rowid is its value.
func blobRow(payload []byte) ([]byte, error) {
	cols, err := record(payload)
	if err != nil {
		return nil, err
	}
	if len(cols) != 2 {
		return nil, fmt.Errorf("%d columns, want 2 (key, blob)", len(cols))
	}
	if cols[1].kind != colBlob {
		return nil, fmt.Errorf("blob column is not a BLOB (kind %d)", cols[1].kind)
	}
	return cols[1].text, nil
}
