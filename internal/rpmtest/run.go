package rpmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// toolTimeout bounds every gpg, gpgconf and rpmsign run. gpg and the agent
// it starts on demand now and then wedge on a loaded machine: once, in CI
// under qemu, gpgconf --kill never returned and go test's deadline killed
// the whole package with no word of which test or command. A bounded run
// turns that into one test's error that names the command.
const toolTimeout = 2 * time.Minute

// runTool runs name with args, stdin on its standard input, for at most
// timeout. It returns the standard output, followed by the standard error
// when combined is set; otherwise a failure's error carries the standard
// error. A gpg-agent started by the command keeps no pipe of ours open
// past the command's exit for more than a few seconds (WaitDelay).
func runTool(timeout time.Duration, stdin []byte, combined bool, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if combined {
		cmd.Stderr = &stdout
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: gave up after %v: %w", name, strings.Join(args, " "), timeout, ctx.Err())
	} else if err != nil && !combined && stderr.Len() > 0 {
		err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		// The command itself succeeded; only a child of it (gpg-agent)
		// held the output open.
		err = nil
	}
	return stdout.Bytes(), err
}
