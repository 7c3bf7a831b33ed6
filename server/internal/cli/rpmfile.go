package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cavaliergopher/rpm"
	"github.com/rpmfleet/rpmfleet/pkg/filekind"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"golang.org/x/sys/unix"
)

// Reading the RPM files of a bundle's folder, bounded (see bundle.go's
// threat model): the headers are checked here before
// github.com/cavaliergopher/rpm decodes them.

// rpmFile is one RPM file of the folder as its headers and bytes say.
type rpmFile struct {
	path  string
	nevra rpmver.NEVRA
	size  int64
}

// listRPMs lists the folder's *.rpm files, refusing what is not a regular
// file and more files than lim allows.
func listRPMs(dir string, lim bundleLimits) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	var files []string
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".rpm") {
			continue
		}
		p := filepath.Join(dir, de.Name())
		if !de.Type().IsRegular() {
			return nil, fmt.Errorf("%w: %s is %s, not a regular file", ErrBundleInput, p, filekind.Name(de.Type()))
		}
		if files = append(files, p); len(files) > lim.files {
			return nil, fmt.Errorf("%w: %s holds more than %d RPM files", ErrBundleInput, dir, lim.files)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: %s holds no .rpm file", ErrBundleInput, dir)
	}
	slices.Sort(files)
	return files, nil
}

// copyRPM reads path's headers (bounded), checks it is a signed binary RPM,
// and copies it into dir, returning the SHA-256 of the bytes copied.
func copyRPM(path, dir string, lim bundleLimits) (rpmFile, string, error) {
	rf := rpmFile{path: path}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return rf, "", fmt.Errorf("%w: %s: %w", ErrBundleInput, path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return rf, "", fmt.Errorf("bundle: %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return rf, "", fmt.Errorf("%w: %s is %s, not a regular file", ErrBundleInput, path, filekind.Name(fi.Mode()))
	}
	if rf.size = fi.Size(); rf.size > lim.fileBytes {
		return rf, "", fmt.Errorf("%w: %s is %d bytes, more than the %d an RPM may have here", ErrBundleInput, path, rf.size, lim.fileBytes)
	}
	head, err := readRPMHeaders(io.LimitReader(f, rf.size), lim)
	if err != nil {
		return rf, "", fmt.Errorf("%w: %s: %w", ErrBundleInput, path, err)
	}
	p, err := rpm.Read(bytes.NewReader(head))
	if err != nil {
		return rf, "", fmt.Errorf("%w: %s: %w", ErrBundleInput, path, err)
	}
	if p.Lead.Type != 0 || p.SourceRPM() == "" {
		return rf, "", fmt.Errorf("%w: %s is a source RPM; a bundle carries binary packages", ErrBundleInput, path)
	}
	if !signed(p) {
		return rf, "", fmt.Errorf("%w: %s is not signed: no agent installs an unsigned package (rpmsign --addsign it with the key devices pin)", ErrBundleInput, path)
	}
	rf.nevra = packageNEVRA(p)
	if _, err := rpmver.ParseNEVRA(rf.nevra.String()); err != nil || rf.nevra.Version == "" || rf.nevra.Release == "" {
		return rf, "", fmt.Errorf("%w: %s: header names %q: not a package name, version, release and arch", ErrBundleInput, path, rf.nevra.String())
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return rf, "", fmt.Errorf("bundle: %s: %w", path, err)
	}
	out, err := os.OpenFile(filepath.Join(dir, rf.nevra.Filename()), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return rf, "", fmt.Errorf("bundle: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(f, rf.size))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rf, "", fmt.Errorf("bundle: copy %s: %w", path, err)
	}
	if n != rf.size {
		return rf, "", fmt.Errorf("%w: %s changed while it was copied (%d bytes, then %d)", ErrBundleInput, path, rf.size, n)
	}
	rf.path = filepath.Join(dir, rf.nevra.Filename())
	return rf, hex.EncodeToString(h.Sum(nil)), nil
}

// packageNEVRA is what p's header names; the epoch is "" when the header
// has none.
func packageNEVRA(p *rpm.Package) rpmver.NEVRA {
	n := rpmver.NEVRA{Name: p.Name(), EVR: rpmver.EVR{Version: p.Version(), Release: p.Release()}, Arch: p.Architecture()}
	if p.Header.GetTag(1003) != nil { // RPMTAG_EPOCH
		n.Epoch = fmt.Sprint(p.Epoch())
	}
	return n
}

// signed reports whether the signature header holds an OpenPGP signature
// (RPMSIGTAG_DSA 267, RSA 268, PGP 1002, GPG 1005).
func signed(p *rpm.Package) bool {
	for _, tag := range []int{267, 268, 1002, 1005} {
		if t := p.Signature.GetTag(tag); t != nil && len(t.Bytes()) > 0 {
			return true
		}
	}
	return false
}

// rpmLead is the size of an RPM file's lead; rpm ignores all of it but the
// magic.
const rpmLead = 96

// readRPMHeaders reads an RPM's lead and its signature and main headers,
// checking each against lim before holding it, and returns those bytes:
// what rpm.Read then decodes.
func readRPMHeaders(r io.Reader, lim bundleLimits) ([]byte, error) {
	buf := make([]byte, rpmLead, rpmLead+2*16)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("lead: %w", noEOF(err))
	}
	if !bytes.Equal(buf[:4], []byte{0xed, 0xab, 0xee, 0xdb}) {
		return nil, errors.New("not an RPM file (no lead magic)")
	}
	for _, which := range []string{"signature header", "header"} {
		hdr, err := readRPMHeader(r, which, lim)
		if err != nil {
			return nil, err
		}
		buf = append(buf, hdr...)
		if which == "signature header" {
			if pad := (8 - len(hdr)%8) % 8; pad > 0 {
				p := make([]byte, pad)
				if _, err := io.ReadFull(r, p); err != nil {
					return nil, fmt.Errorf("%s padding: %w", which, noEOF(err))
				}
				buf = append(buf, p...)
			}
		}
	}
	return buf, nil
}

// readRPMHeader reads one header structure (magic, counts, index, store) and
// checks it: at most lim.headerTags entries and lim.headerData bytes, each
// entry of a known type with its data inside the store, entries after the
// region tag in increasing order without overlap (as rpm's own
// hdrblobVerifyInfo requires), and strings terminated inside the store.
func readRPMHeader(r io.Reader, which string, lim bundleLimits) ([]byte, error) {
	intro := make([]byte, 16)
	if _, err := io.ReadFull(r, intro); err != nil {
		return nil, fmt.Errorf("%s: %w", which, noEOF(err))
	}
	if !bytes.Equal(intro[:3], []byte{0x8e, 0xad, 0xe8}) {
		return nil, fmt.Errorf("%s: no header magic", which)
	}
	il := binary.BigEndian.Uint32(intro[8:12])
	dl := binary.BigEndian.Uint32(intro[12:16])
	if il < 1 || il > uint32(lim.headerTags) {
		return nil, fmt.Errorf("%s declares %d entries, more than the %d allowed (or none)", which, il, lim.headerTags)
	}
	if dl > uint32(lim.headerData) {
		return nil, fmt.Errorf("%s declares %d bytes of data, more than the %d allowed", which, dl, lim.headerData)
	}
	body := make([]byte, 16+int(il)*16+int(dl))
	copy(body, intro)
	if _, err := io.ReadFull(r, body[16:]); err != nil {
		return nil, fmt.Errorf("%s: %w", which, noEOF(err))
	}
	index, store := body[16:16+int(il)*16], body[16+int(il)*16:]
	end := int64(0)
	for i := range int(il) {
		e := index[i*16 : i*16+16]
		tag := binary.BigEndian.Uint32(e[0:4])
		typ := binary.BigEndian.Uint32(e[4:8])
		off := int64(binary.BigEndian.Uint32(e[8:12]))
		count := int64(binary.BigEndian.Uint32(e[12:16]))
		if count < 1 || off >= int64(dl) {
			return nil, fmt.Errorf("%s entry %d (tag %d): offset %d, count %d: outside its %d bytes of data", which, i, tag, off, count, dl)
		}
		var size int64
		switch typ {
		case 0: // NULL
		case 1, 2, 7: // CHAR, INT8, BIN
			size = count
		case 3:
			size = 2 * count
		case 4:
			size = 4 * count
		case 5:
			size = 8 * count
		case 6, 8, 9: // STRING, STRING_ARRAY, I18NSTRING
			if typ == 6 && count != 1 {
				return nil, fmt.Errorf("%s entry %d (tag %d): a string with count %d", which, i, tag, count)
			}
			if off < end && i > 0 {
				break // refused below, before a scan that overlap makes long
			}
			o := off
			for range count {
				nul := bytes.IndexByte(store[o:], 0)
				if nul < 0 {
					return nil, fmt.Errorf("%s entry %d (tag %d): string not terminated inside the header", which, i, tag)
				}
				o += int64(nul) + 1
			}
			size = o - off
		default:
			return nil, fmt.Errorf("%s entry %d (tag %d): unknown type %d", which, i, tag, typ)
		}
		if off+size > int64(dl) {
			return nil, fmt.Errorf("%s entry %d (tag %d): %d bytes at offset %d: past its %d bytes of data", which, i, tag, size, off, dl)
		}
		if i == 0 && tag >= 61 && tag <= 63 {
			continue // the region tag: its trailer sits at the end
		}
		if off < end {
			return nil, fmt.Errorf("%s entry %d (tag %d): offset %d overlaps the entry before it", which, i, tag, off)
		}
		end = off + size
	}
	return body, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
