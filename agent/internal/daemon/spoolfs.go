package daemon

// The spool's file handling. It runs in a worker goroutine, never on the
// daemon's loop, and touches no daemon state: the loop hands it one
// operation at a time and gets the answer on a channel (spool.go).
//
// Whoever can put a bundle in the spool (a person, a sync tool, a USB
// stick's contents copied with cp -a) can put anything there: links to
// /etc/shadow, FIFOs that block whoever opens them, device nodes, sparse
// files of a terabyte, a link in the place of done/ or failed/. So:
//   - the spool folder must belong to the agent's user; a mode other than
//     0700 is set to 0700 (statedir.Check), one owned by another user is
//     not read at all;
//   - every name is opened relative to an open folder (openat) with
//     O_NOFOLLOW, never through a path again, so a link swapped in between
//     is refused, not followed; files are opened O_NONBLOCK|O_NOCTTY, and
//     only after their type was read without opening them; the opened
//     file is then fstat'ed, and only a regular file is read;
//   - plan.json is read only up to notice.MaxMessageSize;
//   - repo/ is never read in place: its regular files and folders are
//     copied into a private folder of the state dir (spool-stage/repo),
//     each file exactly the size fstat gave when it was opened, up to
//     Options.SpoolMaxBytes in all, spoolMaxEntries entries and
//     spoolMaxDepth levels; anything else in it (a link, a FIFO, a device,
//     a socket) refuses the bundle. The update cycle reads only that copy;
//   - a bundle is moved with renameat, which moves a link itself, never
//     what it points at; done/ and failed/ are opened with O_NOFOLLOW, and
//     one that is not a folder of the agent's user is renamed aside
//     (.failed.not-a-folder.N) and made anew; NAME.reason is written by
//     durable.WriteFileIn in the opened folder, a temp file created with
//     O_EXCL|O_NOFOLLOW renamed over whatever has the name, so it never
//     writes through a planted link.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rpmfleet/rpmfleet/agent/internal/statedir"
	"github.com/rpmfleet/rpmfleet/pkg/durable"
	"github.com/rpmfleet/rpmfleet/pkg/filekind"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
)

// Spool layout.
const (
	bundlePlan = "plan.json"
	bundleRepo = "repo"
	spoolDone  = "done"
	spoolFail  = "failed"
	// stageDir, in the state dir, holds the private copy of the bundle
	// being applied.
	stageDir = "spool-stage"
)

// Spool limits.
const (
	// DefaultSpoolMaxBytes bounds the bytes of a bundle's repo/.
	DefaultSpoolMaxBytes int64 = 4 << 30
	// spoolMaxEntries bounds the files and folders of a bundle's repo/,
	// spoolMaxDepth how deeply its folders nest.
	spoolMaxEntries = 100_000
	spoolMaxDepth   = 16
	// spoolMaxName bounds the name a bundle keeps in done/ and failed/,
	// so that NAME.reason fits in a file name.
	spoolMaxName = 200
)

// Flags of every open in the spool.
const (
	openDir  = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	openFile = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
)

// spoolFS is the spool folder and the private stage beside it.
type spoolFS struct {
	dir      string // the spool folder
	stage    string // STATE_DIR/spool-stage
	maxBytes int64
	log      *slog.Logger
}

// taken is a complete bundle: its plan read, its repo/ copied to the stage.
type taken struct {
	name string
	msg  []byte
	repo string // the private copy of repo/
}

// moved is an entry of the spool moved to done/ or failed/, or not.
type moved struct {
	name, sub, reason string
	err               error // the move failed; the entry stays
}

// refusal is why a bundle goes to failed/.
type refusal struct{ reason string }

func (r *refusal) Error() string { return r.reason }

func refuse(format string, args ...any) error { return &refusal{fmt.Sprintf(format, args...)} }

// open opens the spool folder, creating it 0700 when missing, and checks it
// belongs to the agent's user (mode set to 0700).
func (s *spoolFS) open() (*os.File, error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	d, err := os.OpenFile(s.dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	from, changed, err := statedir.Check(d)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	if changed {
		s.log.Warn("spool folder was open to others; set to 0700", "dir", s.dir, "mode", fmt.Sprintf("%#o", from))
	}
	return d, nil
}

// take finds the first complete bundle by name (a folder holding plan.json,
// whatever plan.json is), reads its plan and copies its repo/ to the stage.
// Entries that are not bundle folders, and bundles that cannot be read, are
// moved to failed/ on the way, and listed. It returns a nil bundle when none
// is complete. The stage is emptied first: take runs only when no cycle
// reads it.
func (s *spoolFS) take() (*taken, []moved, error) {
	sp, err := s.open()
	if err != nil {
		return nil, nil, err
	}
	defer sp.Close()
	if err := os.RemoveAll(s.stage); err != nil {
		return nil, nil, fmt.Errorf("spool: empty the stage: %w", err)
	}
	des, err := sp.ReadDir(-1)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	slices.SortFunc(des, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	var ms []moved
	for _, de := range des {
		name := de.Name()
		if name == spoolDone || name == spoolFail || strings.HasPrefix(name, ".") {
			continue
		}
		if !de.IsDir() {
			ms = append(ms, s.move(sp, name, spoolFail, fmt.Sprintf("%q is %s, not a bundle folder", name, filekind.Name(de.Type()))))
			continue
		}
		t, err := s.takeOne(sp, name)
		var r *refusal
		switch {
		case errors.As(err, &r):
			ms = append(ms, s.move(sp, name, spoolFail, r.reason))
		case err != nil:
			return nil, ms, err
		case t != nil:
			return t, ms, nil
		}
	}
	return nil, ms, nil
}

// takeOne reads the bundle name: nil, nil while it has no plan.json yet.
func (s *spoolFS) takeOne(sp *os.File, name string) (*taken, error) {
	fd, err := unix.Openat(int(sp.Fd()), name, openDir, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, nil // gone meanwhile
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		// Replaced since it was listed.
		return nil, refuse("%q is %s, not a bundle folder", name, kindAt(sp, name))
	case err != nil:
		return nil, refuse("open %q: %v", name, err)
	}
	b := os.NewFile(uintptr(fd), filepath.Join(s.dir, name))
	defer b.Close()
	var st unix.Stat_t
	if err := unix.Fstatat(fd, bundlePlan, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
		return nil, nil // not complete yet
	} else if err != nil {
		return nil, refuse("%s: %v", bundlePlan, err)
	}
	msg, err := readPlan(b, &st)
	if err != nil {
		return nil, err
	}
	repo, err := s.copyRepo(b)
	if err != nil {
		os.RemoveAll(s.stage)
		return nil, err
	}
	return &taken{name: name, msg: msg, repo: repo}, nil
}

// readPlan reads plan.json of the open bundle b, whose lstat is st.
func readPlan(b *os.File, st *unix.Stat_t) ([]byte, error) {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, refuse("%s is %s, not a regular file", bundlePlan, filekind.Name(unixType(st.Mode)))
	}
	fd, err := unix.Openat(int(b.Fd()), bundlePlan, openFile, 0)
	if err != nil {
		return nil, refuse("open %s: %v", bundlePlan, err)
	}
	f := os.NewFile(uintptr(fd), bundlePlan)
	defer f.Close()
	// What counts is the file opened, not what the name was a moment ago.
	if err := unix.Fstat(fd, st); err != nil {
		return nil, refuse("%s: %v", bundlePlan, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, refuse("%s is %s, not a regular file", bundlePlan, filekind.Name(unixType(st.Mode)))
	}
	if st.Size > notice.MaxMessageSize {
		return nil, refuse("%s is %d bytes, more than the %d bytes a signed plan may have", bundlePlan, st.Size, notice.MaxMessageSize)
	}
	msg, err := io.ReadAll(io.LimitReader(f, notice.MaxMessageSize+1))
	if err != nil {
		return nil, refuse("read %s: %v", bundlePlan, err)
	}
	if len(msg) > notice.MaxMessageSize {
		return nil, refuse("%s grew past the %d bytes a signed plan may have while being read", bundlePlan, notice.MaxMessageSize)
	}
	return msg, nil
}

// copyRepo copies repo/ of the open bundle b into the stage and returns the
// copy's path.
func (s *spoolFS) copyRepo(b *os.File) (string, error) {
	fd, err := unix.Openat(int(b.Fd()), bundleRepo, openDir, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return "", refuse("no %s/ folder beside %s", bundleRepo, bundlePlan)
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return "", refuse("%s is %s, not a folder", bundleRepo, kindAt(b, bundleRepo))
	case err != nil:
		return "", refuse("open %s: %v", bundleRepo, err)
	}
	src := os.NewFile(uintptr(fd), bundleRepo)
	defer src.Close()
	dst := filepath.Join(s.stage, bundleRepo)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return "", fmt.Errorf("spool: stage: %w", err)
	}
	c := copier{max: s.maxBytes}
	if err := c.dir(src, dst, bundleRepo, 0); err != nil {
		return "", err
	}
	return dst, nil
}

// copier copies a bundle's repo/ tree within bounds.
type copier struct {
	max, bytes int64
	entries    int
}

// dir copies the entries of the open folder src (rel in the bundle) into the
// folder dst.
func (c *copier) dir(src *os.File, dst, rel string, depth int) error {
	if depth >= spoolMaxDepth {
		return refuse("%q: folders nested more than %d deep", rel, spoolMaxDepth)
	}
	des, err := src.ReadDir(-1)
	if err != nil {
		return refuse("read %q: %v", rel, err)
	}
	for _, de := range des {
		c.entries++
		if c.entries > spoolMaxEntries {
			return refuse("%s/ holds more than %d files and folders", bundleRepo, spoolMaxEntries)
		}
		name, p := de.Name(), rel+"/"+de.Name()
		switch {
		case de.IsDir():
			fd, err := unix.Openat(int(src.Fd()), name, openDir, 0)
			if err != nil {
				return refuse("open %q: %v", p, err)
			}
			sub := os.NewFile(uintptr(fd), p)
			err = os.Mkdir(filepath.Join(dst, name), 0o700)
			if err == nil {
				err = c.dir(sub, filepath.Join(dst, name), p, depth+1)
			}
			sub.Close()
			if err != nil {
				return err
			}
		case de.Type().IsRegular():
			if err := c.file(src, name, filepath.Join(dst, name), p); err != nil {
				return err
			}
		default:
			return refuse("%q is %s: a bundle holds only regular files and folders", p, filekind.Name(de.Type()))
		}
	}
	return nil
}

// file copies the regular file name of the open folder src to dst.
func (c *copier) file(src *os.File, name, dst, rel string) error {
	fd, err := unix.Openat(int(src.Fd()), name, openFile, 0)
	if err != nil {
		return refuse("open %q: %v", rel, err)
	}
	in := os.NewFile(uintptr(fd), rel)
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return refuse("%q: %v", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return refuse("%q is %s: a bundle holds only regular files and folders", rel, filekind.Name(unixType(st.Mode)))
	}
	if c.bytes+st.Size > c.max {
		return refuse("%s/ holds more than %d bytes", bundleRepo, c.max)
	}
	c.bytes += st.Size
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("spool: stage: %w", err)
	}
	_, err = io.CopyN(out, in, st.Size)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	switch {
	case errors.Is(err, io.EOF):
		return refuse("%q shrank while being copied", rel)
	case err != nil:
		// A full disk, mostly: the bundle cannot be applied as it is.
		return refuse("copy %q: %v", rel, err)
	}
	return nil
}

// move moves the entry name of the spool to its sub folder (done/ or
// failed/) with NAME.reason beside it saying why.
func (s *spoolFS) move(sp *os.File, name, sub, reason string) moved {
	m := moved{name: name, sub: sub, reason: reason}
	sd, err := s.subdir(sp, sub)
	if err != nil {
		m.err = err
		return m
	}
	defer sd.Close()
	dst := name
	if len(dst) > spoolMaxName {
		dst = dst[:spoolMaxName]
	}
	if exists(sd, dst) || exists(sd, dst+".reason") {
		dst = fmt.Sprintf("%s.%d", dst, time.Now().UnixNano())
	}
	if err := unix.Renameat(int(sp.Fd()), name, int(sd.Fd()), dst); err != nil {
		m.err = fmt.Errorf("move %q to %s/: %w", name, sub, err)
		return m
	}
	if err := durable.WriteFileIn(sd, dst+".reason", []byte(reason+"\n"), 0o600); err != nil {
		s.log.Warn("spool reason not written", "bundle", name, "to", sub, "err", err)
	}
	if err := sp.Sync(); err != nil {
		s.log.Warn("spool folder not synced", "err", err)
	}
	return m
}

// subdir opens done/ or failed/, making it when missing. One that is not a
// folder of the agent's user (a link, a file, someone else's folder) is
// renamed aside and made anew.
func (s *spoolFS) subdir(sp *os.File, sub string) (*os.File, error) {
	spfd := int(sp.Fd())
	for range 3 {
		fd, err := unix.Openat(spfd, sub, openDir, 0)
		switch {
		case err == nil:
			d := os.NewFile(uintptr(fd), filepath.Join(s.dir, sub))
			from, changed, err := statedir.Check(d)
			if err == nil {
				if changed {
					s.log.Warn("spool folder was open to others; set to 0700", "dir", d.Name(), "mode", fmt.Sprintf("%#o", from))
				}
				return d, nil
			}
			d.Close()
			if !errors.Is(err, statedir.ErrNotOwner) {
				return nil, fmt.Errorf("spool: %w", err)
			}
		case errors.Is(err, unix.ENOENT):
			if err := unix.Mkdirat(spfd, sub, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				return nil, fmt.Errorf("spool: make %s/: %w", sub, err)
			}
			continue
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		default:
			return nil, fmt.Errorf("spool: open %s/: %w", sub, err)
		}
		aside := fmt.Sprintf(".%s.not-a-folder.%d", sub, time.Now().UnixNano())
		if err := unix.Renameat(spfd, sub, spfd, aside); err != nil {
			return nil, fmt.Errorf("spool: %s is not a folder of the agent's user, and could not be set aside: %w", sub, err)
		}
		s.log.Warn("spool: what had the name of a spool folder was not a folder of the agent's user; set aside", "name", sub, "now", aside)
	}
	return nil, fmt.Errorf("spool: %s/ keeps being replaced", sub)
}

// clearStage removes the stage.
func (s *spoolFS) clearStage() error { return os.RemoveAll(s.stage) }

// exists reports whether name is in the open folder d, without following
// a link.
func exists(d *os.File, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// kindAt names the type of name in the open folder d, a link as a link.
func kindAt(d *os.File, name string) string {
	var st unix.Stat_t
	if err := unix.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return "unreadable (" + err.Error() + ")"
	}
	return filekind.Name(unixType(st.Mode))
}

// unixType is the type bits of a stat mode as a fs.FileMode.
func unixType(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}
