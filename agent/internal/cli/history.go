package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/rpmfleet/rpmfleet/agent/internal/update"
)

func init() {
	register("history", "list the update cycles and their outcomes", runHistory)
	register("status", "show the update cycle in progress, or the last one", runStatus)
}

func runHistory(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "history", "history [--state-dir DIR] [--json]")
	stateDir := fs.String("state-dir", DefaultStateDir, "the agent's state dir")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return ExitUsage
	}
	cycles, err := update.History(*stateDir)
	if err != nil {
		return fail(e, "history", err)
	}
	if *asJSON {
		if cycles == nil {
			cycles = []*update.Cycle{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Cycles []*update.Cycle `json:"cycles"`
		}{cycles}); err != nil {
			return fail(e, "history", err)
		}
		return ExitOK
	}
	if len(cycles) == 0 {
		fmt.Fprintln(e.stdout, "No update cycle yet.")
		return ExitOK
	}
	for _, c := range cycles {
		writeCycle(e.stdout, c, false)
	}
	return ExitOK
}

func runStatus(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "status", "status [--state-dir DIR] [--json]")
	stateDir := fs.String("state-dir", DefaultStateDir, "the agent's state dir")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return ExitUsage
	}
	st, err := update.ReadState(*stateDir)
	if err != nil {
		return fail(e, "status", err)
	}
	var c *update.Cycle
	id := st.Active
	if id == 0 {
		id = st.LastID
	}
	if id != 0 {
		if c, err = update.ReadCycle(*stateDir, id); err != nil {
			return fail(e, "status", err)
		}
	}
	if *asJSON {
		out := struct {
			Active   bool              `json:"active"`
			Phase    string            `json:"phase,omitempty"`
			Cycle    *update.Cycle     `json:"cycle,omitempty"`
			SetAside map[string]string `json:"set_aside,omitempty"`
			Attempts map[string]int    `json:"attempts,omitempty"`
		}{Active: st.Active != 0, Cycle: c, SetAside: st.SetAside, Attempts: st.Attempts}
		if c != nil {
			out.Phase = c.Phase.String()
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fail(e, "status", err)
		}
		return ExitOK
	}
	switch {
	case c == nil:
		fmt.Fprintln(e.stdout, "idle: no update cycle yet")
	case st.Active != 0:
		fmt.Fprintf(e.stdout, "cycle %d in progress (or interrupted; the next apply resumes it): phase %s\n", c.ID, c.Phase)
		writeCycle(e.stdout, c, false)
	default:
		fmt.Fprintf(e.stdout, "idle: last cycle %d %s\n", c.ID, c.Phase)
		writeCycle(e.stdout, c, false)
	}
	for id, why := range st.SetAside {
		fmt.Fprintf(e.stdout, "set aside %s: %s\n", id, why)
	}
	return ExitOK
}
