// Package filekind names a file's type in words, for the errors that refuse
// a file for not being a regular file or a folder: the agent's spool and the
// server's air-gap bundle input both take only those, and both say what they
// found instead ("plan.json is a named pipe (FIFO), not a regular file").
package filekind

import "io/fs"

// Name names the type in m's type bits with its article: "a regular file",
// "a folder", "a symbolic link", "a named pipe (FIFO)", "a socket", "a
// character device", "a block device", or "a file of unknown type".
func Name(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeDir != 0:
		return "a folder"
	case m.IsRegular():
		return "a regular file"
	}
	return "a file of unknown type"
}
