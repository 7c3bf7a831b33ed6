package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestMistypedCommandSuggests(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(t.Context(), []string{"chekc"}, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), "did you mean check?") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := Main(t.Context(), []string{"completion", "fish"}, &out, &errb); code != ExitOK || !strings.Contains(out.String(), "complete -c rpmfleet-agent -n __fish_use_subcommand") || !strings.Contains(out.String(), "inventory") {
		t.Errorf("completion fish: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}
