package rpmcmd

import "strings"

// ProblemKind classifies a transaction problem rpm reports.
type ProblemKind string

// Problem kinds, as rpm words them.
const (
	// Requires: "X is needed by P" (a missing or broken dependency).
	Requires ProblemKind = "requires"
	// Conflicts: "X conflicts with P".
	Conflicts ProblemKind = "conflicts"
	// Obsoletes: "X is obsoleted by P".
	Obsoletes ProblemKind = "obsoletes"
	// FileConflict: "file F from install of A conflicts with file from package B".
	FileConflict ProblemKind = "file-conflict"
	// Installed: "package P is already installed", or a newer one is.
	Installed ProblemKind = "installed"
	// NotVerified: "package P does not verify: ..." (signature or digest).
	NotVerified ProblemKind = "not-verified"
	// DiskSpace: "installing package P needs N on the F filesystem".
	DiskSpace ProblemKind = "disk-space"
	// Error: an "error: ..." line that is not a header for the lines above.
	ErrorLine ProblemKind = "error"
)

// Problem is one problem rpm reported, in rpm's own words.
type Problem struct {
	Kind ProblemKind
	// Text is rpm's line, trimmed.
	Text string
	// Package is the NEVRA the problem is about, when rpm names it
	// ("demo-app-2.1-1.x86_64"); "(installed) " is dropped.
	Package string
}

// alienNotice is what Debian's rpm prints on every run.
const alienPrefix = "rpm: "

// CleanOutput drops the two lines Debian's rpm prints on every run ("rpm: RPM
// should not be used directly...") so that history keeps what matters.
func CleanOutput(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, alienPrefix) && (strings.Contains(t, "use Alien instead") || strings.Contains(t, "assuming you know what you are doing")) {
			continue
		}
		b.WriteString(l)
	}
	return b.String()
}

// ParseProblems reads the transaction problems in rpm's output: the
// tab-indented lines under "error: Failed dependencies:" and the problem
// lines rpm prints for a transaction it refuses, and "error:" lines.
// Lines it does not recognize are skipped; it never fails.
func ParseProblems(out string) []Problem {
	var ps []Problem
	for _, line := range strings.Split(out, "\n") {
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		switch {
		case t == "error: Failed dependencies:" || strings.HasPrefix(t, "error: Failed dependencies"):
			continue
		case strings.HasPrefix(t, "error: "):
			ps = append(ps, Problem{Kind: ErrorLine, Text: t})
		case !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " "):
			continue
		case strings.HasPrefix(t, "package ") && strings.Contains(t, " does not verify"):
			ps = append(ps, Problem{Kind: NotVerified, Text: t, Package: firstWord(t[len("package "):])})
		case strings.HasPrefix(t, "package ") && strings.HasSuffix(t, " is already installed"):
			ps = append(ps, Problem{Kind: Installed, Text: t, Package: firstWord(t[len("package "):])})
		case strings.HasPrefix(t, "file ") && strings.Contains(t, " conflicts with file from package "):
			ps = append(ps, Problem{Kind: FileConflict, Text: t, Package: afterLast(t, " conflicts with file from package ")})
		case strings.HasPrefix(t, "installing package ") && strings.Contains(t, " needs "):
			ps = append(ps, Problem{Kind: DiskSpace, Text: t, Package: firstWord(t[len("installing package "):])})
		case strings.Contains(t, " is needed by "):
			ps = append(ps, Problem{Kind: Requires, Text: t, Package: afterLast(t, " is needed by ")})
		case strings.Contains(t, " conflicts with "):
			ps = append(ps, Problem{Kind: Conflicts, Text: t, Package: afterLast(t, " conflicts with ")})
		case strings.Contains(t, " is obsoleted by "):
			ps = append(ps, Problem{Kind: Obsoletes, Text: t, Package: afterLast(t, " is obsoleted by ")})
		}
	}
	return ps
}

func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}

func afterLast(s, sep string) string {
	i := strings.LastIndex(s, sep)
	p := strings.TrimSpace(s[i+len(sep):])
	p = strings.TrimPrefix(p, "(installed) ")
	return firstWord(p)
}
