package cli

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

func init() {
	register("command", "tell a device to check, report or apply advisories now, over MQTT", runCommand)
}

const commandUsage = "command NAME check|report|apply [ADVISORY...] [--json]"

// runCommand posts a Command for one device: the server signs it and
// publishes it on the device's command topic. It needs an operator token
// and a server with a broker.
func runCommand(ctx context.Context, e *env, args []string) int {
	var c conn
	fs := newFlagSet(e, "command", commandUsage, &c)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return ExitUsage
	}
	name, verb, advs := fs.Arg(0), protocol.CommandVerb(fs.Arg(1)), fs.Args()[2:]
	switch {
	case verb != protocol.CommandCheck && verb != protocol.CommandReport && verb != protocol.CommandApply:
		fmt.Fprintf(e.stderr, "rpmfleet command: %q is not check, report or apply\n", verb)
		fs.Usage()
		return ExitUsage
	case verb == protocol.CommandApply && len(advs) == 0:
		fmt.Fprintln(e.stderr, "rpmfleet command: apply needs the advisories to apply")
		return ExitUsage
	case verb != protocol.CommandApply && len(advs) > 0:
		fmt.Fprintf(e.stderr, "rpmfleet command: %s takes no advisories (%s)\n", verb, strings.Join(advs, " "))
		return ExitUsage
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "command", err)
	}
	cmd := protocol.Command{Verb: verb}
	if len(advs) > 0 {
		cmd.Advisories = advs
	}
	var resp protocol.CommandResponse
	if err := api.do(ctx, http.MethodPost, protocol.PathCommand+esc(name), cmd, "", &resp); err != nil {
		return fail(e, "command", err)
	}
	if *asJSON {
		writeJSON(e.stdout, resp)
		return ExitOK
	}
	what := string(verb)
	if len(advs) > 0 {
		what += " " + strings.Join(advs, ", ")
	}
	fmt.Fprintf(e.stdout, "%s sent to %s (id %s) on %s\n", show(what), show(name), show(resp.DeviceID), show(resp.Topic))
	return ExitOK
}
