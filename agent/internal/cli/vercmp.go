package cli

import (
	"context"
	"fmt"

	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

func init() {
	register("vercmp", "compare two [epoch:]version[-release] strings as rpm does", runVercmp)
}

// runVercmp prints "A < B", "A == B" or "A > B" like rpmdev-vercmp, and exits
// 0 whatever the order.
func runVercmp(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "vercmp", "vercmp A B")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return ExitUsage
	}
	a, b := fs.Arg(0), fs.Arg(1)
	ea, err := rpmver.ParseEVR(a)
	if err != nil {
		return fail(e, "vercmp", err)
	}
	eb, err := rpmver.ParseEVR(b)
	if err != nil {
		return fail(e, "vercmp", err)
	}
	op := "=="
	switch rpmver.Compare(ea, eb) {
	case -1:
		op = "<"
	case 1:
		op = ">"
	}
	fmt.Fprintf(e.stdout, "%s %s %s\n", a, op, b)
	return ExitOK
}
