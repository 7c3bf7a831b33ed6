package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMistypedCommandSuggests: a near miss names the command meant.
func TestMistypedCommandSuggests(t *testing.T) {
	for _, c := range []struct{ typed, want string }{
		{"devcies", "did you mean devices?"},
		{"rolout", "did you mean rollout?"},
		{"versoin", "did you mean version?"},
	} {
		var out, errb bytes.Buffer
		if code := Main(t.Context(), []string{c.typed}, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", c.typed, code, errb.String(), c.want)
		}
	}
}

// TestCompletionScript: the bash script, sourced in a real bash, completes
// every registered command and a command's words.
func TestCompletionScript(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(t.Context(), []string{"completion", "bash"}, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	script := filepath.Join(t.TempDir(), "rpmfleet.bash")
	if err := os.WriteFile(script, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(words string, cword int) string {
		b, err := exec.Command("bash", "-c", "source "+script+"; COMP_WORDS=("+words+"); COMP_CWORD="+string(rune('0'+cword))+"; _rpmfleet; echo \"${COMPREPLY[*]}\"").CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, b)
		}
		return strings.TrimSpace(string(b))
	}
	all := strings.Fields(complete("rpmfleet ''", 1))
	for name := range commands {
		if !strings.Contains(" "+strings.Join(all, " ")+" ", " "+name+" ") {
			t.Errorf("command %s is not completed: %q", name, all)
		}
	}
	if got := complete("rpmfleet enroll-token r", 2); got != "revoke" {
		t.Errorf("enroll-token r: %q, want revoke", got)
	}
	if code := Main(t.Context(), []string{"completion", "tcsh"}, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), "unknown shell") {
		t.Errorf("tcsh: exit %d, stderr %q", code, errb.String())
	}
}
