package verify

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// The RPM file format (rpm's lib/rpmlead.c, lib/header.c, and
// https://rpm-software-management.github.io/rpm/manual/format_v4.html):
//
//	lead              96 bytes, magic ed ab ee db
//	signature header  header structure, padded with zeros to 8 bytes
//	main header       header structure (the part the signature vouches for)
//	payload           compressed cpio archive, to the end of the file
//
// A header structure is an 8-byte magic (8e ad e8 01 and 4 reserved bytes),
// a big-endian index count and data size, the index (16 bytes per entry: tag,
// type, offset, count) and the data store.

const (
	leadSize        = 96
	headerPreamble  = 16
	indexEntrySize  = 16
	maxIndexEntries = 0xffff     // rpm's hdrchkTags
	maxDataSize     = 0x0fffffff // rpm's hdrchkData (256 MiB)
	sigTypeHeader   = 5          // RPMSIGTYPE_HEADERSIG in the lead
)

var (
	leadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	headerMagic = []byte{0x8e, 0xad, 0xe8, 0x01}
)

// Header data types (rpmTagType).
const (
	typeNull        = 0
	typeChar        = 1
	typeInt8        = 2
	typeInt16       = 3
	typeInt32       = 4
	typeInt64       = 5
	typeString      = 6
	typeBin         = 7
	typeStringArray = 8
	typeI18NString  = 9
)

var typeSize = [...]int64{typeNull: 0, typeChar: 1, typeInt8: 1, typeInt16: 2, typeInt32: 4, typeInt64: 8, typeString: 1, typeBin: 1, typeStringArray: 1, typeI18NString: 1}

type entry struct {
	tag    int32
	typ    uint32
	offset int32
	count  uint32
}

// header is one header structure as read from the file.
type header struct {
	what    string // "signature header" or "header", for messages
	fileOff int64  // offset of its magic in the file
	raw     []byte // the whole structure, magic to end of data: what digests cover
	data    []byte // the data store, a suffix of raw
	entries []entry
}

// readLead reads and checks the 96-byte lead.
func readLead(r io.Reader) error {
	var lead [leadSize]byte
	if _, err := io.ReadFull(r, lead[:]); err != nil {
		return malformed(err, "lead: file shorter than the %d-byte lead", leadSize)
	}
	if !bytes.Equal(lead[:4], leadMagic) {
		return malformed(nil, "lead: magic at offset 0 is % x, want % x (not an RPM package)", lead[:4], leadMagic)
	}
	if major := lead[4]; major < 3 || major > 4 {
		return malformed(nil, "lead: format version %d at offset 4 is not supported (want 3 or 4)", major)
	}
	if st := binary.BigEndian.Uint16(lead[78:80]); st != sigTypeHeader {
		return malformed(nil, "lead: signature type %d at offset 78 is not supported (want %d, a header-style signature)", st, sigTypeHeader)
	}
	return nil
}

// readHeader reads one header structure starting at file offset off. left is
// how many bytes the file has from off on: sizes claimed by the preamble are
// checked against it before anything is allocated, so a hostile size cannot
// make us allocate more than the file holds.
func readHeader(r io.Reader, what string, off, left int64) (*header, error) {
	var pre [headerPreamble]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, malformed(err, "%s at offset %d: truncated preamble", what, off)
	}
	if !bytes.Equal(pre[:4], headerMagic) {
		return nil, malformed(nil, "%s at offset %d: magic is % x, want % x", what, off, pre[:4], headerMagic)
	}
	nindex := binary.BigEndian.Uint32(pre[8:12])
	dsize := binary.BigEndian.Uint32(pre[12:16])
	if nindex < 1 || nindex > maxIndexEntries {
		return nil, malformed(nil, "%s at offset %d: index count %d out of range 1..%d", what, off+8, nindex, maxIndexEntries)
	}
	if dsize > maxDataSize {
		return nil, malformed(nil, "%s at offset %d: data size %d exceeds %d", what, off+12, dsize, maxDataSize)
	}
	total := int64(headerPreamble) + int64(nindex)*indexEntrySize + int64(dsize)
	if total > left {
		return nil, malformed(nil, "%s at offset %d: claims %d bytes (%d index entries, %d data bytes) but only %d remain in the file",
			what, off, total, nindex, dsize, left)
	}
	raw := make([]byte, total)
	copy(raw, pre[:])
	if _, err := io.ReadFull(r, raw[headerPreamble:]); err != nil {
		return nil, malformed(err, "%s at offset %d: truncated", what, off)
	}
	h := &header{what: what, fileOff: off, raw: raw, data: raw[headerPreamble+int64(nindex)*indexEntrySize:]}
	h.entries = make([]entry, nindex)
	for i := range h.entries {
		b := raw[headerPreamble+i*indexEntrySize:]
		e := entry{
			tag:    int32(binary.BigEndian.Uint32(b[0:4])),
			typ:    binary.BigEndian.Uint32(b[4:8]),
			offset: int32(binary.BigEndian.Uint32(b[8:12])),
			count:  binary.BigEndian.Uint32(b[12:16]),
		}
		at := off + headerPreamble + int64(i)*indexEntrySize
		if e.typ > typeI18NString {
			return nil, malformed(nil, "%s index entry %d (tag %d) at offset %d: unknown type %d", what, i, e.tag, at, e.typ)
		}
		if e.offset < 0 || int64(e.offset) > int64(dsize) {
			return nil, malformed(nil, "%s index entry %d (tag %d) at offset %d: data offset %d outside the %d-byte data store", what, i, e.tag, at, e.offset, dsize)
		}
		if end := int64(e.offset) + int64(e.count)*typeSize[e.typ]; end > int64(dsize) {
			return nil, malformed(nil, "%s index entry %d (tag %d) at offset %d: %d items of type %d from data offset %d run past the %d-byte data store",
				what, i, e.tag, at, e.count, e.typ, e.offset, dsize)
		}
		h.entries[i] = e
	}
	return h, nil
}

func (h *header) find(tag int32) (entry, bool) {
	for _, e := range h.entries {
		if e.tag == tag {
			return e, true
		}
	}
	return entry{}, false
}

func (h *header) bad(e entry, format string, args ...any) error {
	return malformed(nil, "%s tag %d: %s", h.what, e.tag, fmt.Sprintf(format, args...))
}

// strings returns the strings of a STRING, STRING_ARRAY or I18NSTRING entry.
func (h *header) strs(e entry) ([]string, error) {
	if e.typ != typeString && e.typ != typeStringArray && e.typ != typeI18NString {
		return nil, h.bad(e, "type %d is not a string type", e.typ)
	}
	n := e.count
	if e.typ == typeString {
		n = 1
	}
	if n > uint32(len(h.data)) {
		return nil, h.bad(e, "count %d exceeds the data store", e.count)
	}
	var out []string
	p := int(e.offset)
	for range n {
		i := bytes.IndexByte(h.data[p:], 0)
		if i < 0 {
			return nil, h.bad(e, "string at data offset %d is not NUL-terminated", p)
		}
		out = append(out, string(h.data[p:p+i]))
		p += i + 1
	}
	return out, nil
}

// str returns a tag's single string; ok is false when the tag is absent.
func (h *header) str(tag int32) (s string, ok bool, err error) {
	e, ok := h.find(tag)
	if !ok {
		return "", false, nil
	}
	ss, err := h.strs(e)
	if err != nil {
		return "", true, err
	}
	if len(ss) == 0 {
		return "", true, h.bad(e, "no string")
	}
	return ss[0], true, nil
}

// int returns a tag's first INT32 or INT64 value.
func (h *header) integer(tag int32) (v int64, ok bool, err error) {
	e, ok := h.find(tag)
	if !ok {
		return 0, false, nil
	}
	if e.count < 1 {
		return 0, true, h.bad(e, "no value")
	}
	switch e.typ {
	case typeInt32:
		return int64(int32(binary.BigEndian.Uint32(h.data[e.offset:]))), true, nil
	case typeInt64:
		return int64(binary.BigEndian.Uint64(h.data[e.offset:])), true, nil
	}
	return 0, true, h.bad(e, "type %d is not an integer type", e.typ)
}

// bin returns a BIN tag's bytes.
func (h *header) bin(tag int32) (b []byte, ok bool, err error) {
	e, ok := h.find(tag)
	if !ok {
		return nil, false, nil
	}
	if e.typ != typeBin {
		return nil, true, h.bad(e, "type %d is not BIN", e.typ)
	}
	return h.data[e.offset : int64(e.offset)+int64(e.count)], true, nil
}

func malformed(err error, format string, args ...any) *Error {
	return &Error{Kind: Malformed, Detail: fmt.Sprintf(format, args...), Err: err}
}
