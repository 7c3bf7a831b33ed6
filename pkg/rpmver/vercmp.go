package rpmver

import "strings"

// Vercmp compares two version (or release) strings as rpm's rpmvercmp does
// and returns -1, 0 or +1. Like rpm, it sees a string only up to its first
// NUL byte. It does not split epochs or releases: '-' and ':' are separators
// here; use ParseEVR and Compare for whole EVRs.
func Vercmp(a, b string) int {
	if a == b {
		return 0
	}
	// rpm works on C strings: nothing after a NUL byte is seen.
	a, b = cstring(a), cstring(b)
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isAlnum(a[i]) && a[i] != '~' && a[i] != '^' {
			i++
		}
		for j < len(b) && !isAlnum(b[j]) && b[j] != '~' && b[j] != '^' {
			j++
		}
		ca, cb := at(a, i), at(b, j)

		// A tilde sorts before everything, even the end of the string.
		if ca == '~' || cb == '~' {
			if ca != '~' {
				return 1
			}
			if cb != '~' {
				return -1
			}
			i++
			j++
			continue
		}
		// A caret sorts after the end of the string but before anything else.
		if ca == '^' || cb == '^' {
			if ca == 0 {
				return -1
			}
			if cb == 0 {
				return 1
			}
			if ca != '^' {
				return 1
			}
			if cb != '^' {
				return -1
			}
			i++
			j++
			continue
		}
		if ca == 0 || cb == 0 {
			break
		}

		// Take the next all-digit or all-letter segment of each side; the
		// first side decides which kind.
		si, sj := i, j
		isNum := isDigit(ca)
		if isNum {
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
		} else {
			for i < len(a) && isAlpha(a[i]) {
				i++
			}
			for j < len(b) && isAlpha(b[j]) {
				j++
			}
		}
		segA, segB := a[si:i], b[sj:j]
		if segB == "" {
			// Segments of different kinds: numeric is newer than alpha.
			if isNum {
				return 1
			}
			return -1
		}
		if isNum {
			segA = trimZeros(segA)
			segB = trimZeros(segB)
			if len(segA) != len(segB) {
				if len(segA) > len(segB) {
					return 1
				}
				return -1
			}
		}
		if segA != segB {
			if segA < segB {
				return -1
			}
			return 1
		}
	}
	// All segments equal so far: whichever has characters left wins, unless
	// both ran out (they differed only in separators).
	if i >= len(a) && j >= len(b) {
		return 0
	}
	if i >= len(a) {
		return -1
	}
	return 1
}

func cstring(s string) string {
	if k := strings.IndexByte(s, 0); k >= 0 {
		return s[:k]
	}
	return s
}

func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func trimZeros(s string) string {
	for len(s) > 0 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
