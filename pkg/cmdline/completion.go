package cmdline

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Shells lists the shells Completion writes for.
const Shells = "bash, zsh or fish"

// ErrShell is returned for a shell Completion does not know.
var ErrShell = errors.New("cmdline: unknown shell")

// Completion writes the completion script of prog for shell. commands are
// the command names, sub the words that may follow a command ("device":
// revoke, delete). Flags are not listed here: the script asks the program
// itself, running "prog COMMAND -h" when a word starting with "-" is
// completed, so they are never out of date; anything else completes as a
// file name.
func Completion(w io.Writer, shell, prog string, commands []string, sub map[string][]string) error {
	fn := "_" + strings.NewReplacer("-", "_").Replace(prog)
	cmds := strings.Join(slices.Sorted(slices.Values(commands)), " ")
	var cases strings.Builder
	for _, c := range slices.Sorted(maps.Keys(sub)) {
		fmt.Fprintf(&cases, "      %s) words=%q ;;\n", c, strings.Join(sub[c], " "))
	}
	switch shell {
	case "bash", "zsh":
		if shell == "zsh" {
			fmt.Fprintln(w, "autoload -U +X bashcompinit && bashcompinit")
		}
		fmt.Fprintf(w, `# %[1]s completion for bash (and zsh through bashcompinit):
#   source <(%[1]s completion %[4]s)
%[2]s() {
  local cur=${COMP_WORDS[COMP_CWORD]} words=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "%[3]s" -- "$cur"))
    return
  fi
  if [[ $cur == -* ]]; then
    words=$("${COMP_WORDS[0]}" "${COMP_WORDS[1]}" -h 2>&1 | sed -n 's/^  \(-[A-Za-z0-9-]*\).*/-\1/p')
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    return
  fi
  if [ "$COMP_CWORD" -eq 2 ]; then
    case ${COMP_WORDS[1]} in
%[5]s    esac
    if [ -n "$words" ]; then
      COMPREPLY=($(compgen -W "$words" -- "$cur"))
      return
    fi
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F %[2]s %[1]s
`, prog, fn, cmds, shell, cases.String())
		return nil
	case "fish":
		fmt.Fprintf(w, "# %s completion for fish: %s completion fish | source\n", prog, prog)
		fmt.Fprintf(w, "complete -c %s -n __fish_use_subcommand -f -a %q\n", prog, cmds)
		for _, c := range slices.Sorted(maps.Keys(sub)) {
			fmt.Fprintf(w, "complete -c %s -n '__fish_seen_subcommand_from %s' -f -a %q\n", prog, c, strings.Join(sub[c], " "))
		}
		return nil
	default:
		return fmt.Errorf("%w %q: want %s", ErrShell, shell, Shells)
	}
}
