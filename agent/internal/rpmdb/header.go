package rpmdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/rpmfleet/rpmfleet/pkg/inventory"
)

// Header tags and types Read needs (rpm's lib/rpmtag.h).
const (
	tagName            = 1000
	tagVersion         = 1001
	tagRelease         = 1002
	tagEpoch           = 1003
	tagArch            = 1022
	tagModularityLabel = 5096

	typeInt32  = 4
	typeString = 6
)

// parseHeader reads name, epoch, version, release, arch and modularity
// label from one header blob as the database stores it: the index length
// il and data length dl (big-endian uint32), il 16-byte index entries (tag,
// type, offset, count), then dl bytes of data. Only those six tags are
// looked at, so this is a small fraction of the work of importing the whole
// header; every offset is bounds-checked. When a tag appears twice, the
// later entry wins, as rpm's header import keeps the newer copy. Missing
// tags are left empty; the caller decides what a package must have.
func parseHeader(blob []byte) (inventory.Package, error) {
	if len(blob) < 8 {
		return inventory.Package{}, fmt.Errorf("header is %d bytes", len(blob))
	}
	il := int64(binary.BigEndian.Uint32(blob))
	dl := int64(binary.BigEndian.Uint32(blob[4:]))
	if il < 1 || il > maxTags || dl > maxHeader || 8+il*headerIndex+dl > int64(len(blob)) {
		return inventory.Package{}, fmt.Errorf("header claims %d tags and %d data bytes in %d bytes", il, dl, len(blob))
	}
	index := blob[8 : 8+il*headerIndex]
	data := blob[8+il*headerIndex : 8+il*headerIndex+dl]
	var p inventory.Package
	str := func(tag, typ, off uint32) (string, error) {
		if typ != typeString {
			return "", fmt.Errorf("tag %d has type %d, want string", tag, typ)
		}
		if int64(off) >= dl {
			return "", fmt.Errorf("tag %d at offset %d past the %d data bytes", tag, off, dl)
		}
		end := bytes.IndexByte(data[off:], 0)
		if end < 0 {
			return "", fmt.Errorf("tag %d at offset %d has no terminating NUL", tag, off)
		}
		return string(data[off : int(off)+end]), nil
	}
	for i := int64(0); i < il; i++ {
		e := index[i*headerIndex:]
		tag := binary.BigEndian.Uint32(e)
		typ := binary.BigEndian.Uint32(e[4:])
		off := binary.BigEndian.Uint32(e[8:])
		count := binary.BigEndian.Uint32(e[12:])
		var err error
		switch tag {
		case tagName:
			p.Name, err = str(tag, typ, off)
		case tagVersion:
			p.Version, err = str(tag, typ, off)
		case tagRelease:
			p.Release, err = str(tag, typ, off)
		case tagArch:
			p.Arch, err = str(tag, typ, off)
		case tagModularityLabel:
			p.ModularityLabel, err = str(tag, typ, off)
		case tagEpoch:
			switch {
			case typ != typeInt32 || count < 1:
				err = fmt.Errorf("tag %d has type %d count %d, want one int32", tag, typ, count)
			case int64(off)+4 > dl:
				err = fmt.Errorf("tag %d at offset %d past the %d data bytes", tag, off, dl)
			default:
				p.Epoch = strconv.FormatUint(uint64(binary.BigEndian.Uint32(data[off:])), 10)
			}
		}
		if err != nil {
			return inventory.Package{}, err
		}
	}
	return p, nil
}
