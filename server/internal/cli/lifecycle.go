package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// The lifecycle commands: "device revoke NAME" (operator) and "device
// delete NAME" (admin), "enroll-token create|list|revoke".

// deviceAction tells "device revoke NAME" and "device delete NAME" from
// "device NAME": a revoke or delete with a name after it. (A device named
// "revoke" is still shown by "device revoke".)
func deviceAction(args []string) (sub, name string, ok bool) {
	var pos []string
	fs := flag.NewFlagSet("device", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("server", "", "")
	fs.String("token", "", "")
	fs.String("ca", "", "")
	fs.Bool("json", false, "")
	for len(args) > 0 {
		if fs.Parse(args) != nil {
			return "", "", false
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) == 2 && (pos[0] == "revoke" || pos[0] == "delete") {
		return pos[0], pos[1], true
	}
	return "", "", false
}

const deviceActionUsage = "device revoke NAME [--json] | device delete NAME"

// runDeviceAction revokes or deletes the device called name.
func runDeviceAction(ctx context.Context, e *env, sub, name string, args []string) int {
	var c conn
	fs := newFlagSet(e, "device "+sub, deviceActionUsage, &c)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "device "+sub, err)
	}
	path := protocol.PathDevice + esc(name)
	switch sub {
	case "revoke":
		var resp protocol.DeviceRevokeResponse
		if err := api.do(ctx, http.MethodPost, path+protocol.PathRevokeSuffix, nil, "", &resp); err != nil {
			return fail(e, "device revoke", err)
		}
		if *asJSON {
			writeJSON(e.stdout, resp)
			return ExitOK
		}
		fmt.Fprintf(e.stdout, "%s (id %s) revoked %s: its credential no longer works, its MQTT session is closed\n",
			show(resp.Name), show(resp.DeviceID), e.fmtTime(resp.Revoked))
	case "delete":
		if err := api.do(ctx, http.MethodDelete, path, nil, "", nil); err != nil {
			return fail(e, "device delete", err)
		}
		fmt.Fprintf(e.stdout, "%s deleted, with its history\n", show(name))
	}
	return ExitOK
}

// state is a device's state for the device list.
func state(d protocol.DeviceSummary) string {
	if d.Revoked != nil {
		return "revoked " + d.Revoked.UTC().Format("2006-01-02")
	}
	return "in service"
}

const enrollTokenUsage = "enroll-token create [--label k=v ...] [--expires DURATION] [--uses N] [--json] | enroll-token list [--json] | enroll-token revoke ID"

func runEnrollToken(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || (args[0] != "create" && args[0] != "list" && args[0] != "revoke") {
		fmt.Fprintln(e.stderr, "Usage: rpmfleet "+enrollTokenUsage)
		return ExitUsage
	}
	sub, args := args[0], args[1:]
	var c conn
	fs := newFlagSet(e, "enroll-token "+sub, enrollTokenUsage, &c)
	labels := labelFlag{}
	fs.Var(labels, "label", "label given to devices enrolled with the token, key=value (repeatable; create)")
	expires := fs.Duration("expires", 24*time.Hour, fmt.Sprintf("how long the token works, at most %v (create)", protocol.MaxEnrollTokenTTL))
	uses := fs.Int("uses", 1, fmt.Sprintf("how many devices may enrol with it, at most %d (create)", protocol.MaxEnrollTokenUses))
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	switch {
	case sub == "revoke" && fs.NArg() != 1, sub != "revoke" && fs.NArg() != 0:
		fs.Usage()
		return ExitUsage
	case sub == "create" && (*uses < 1 || *uses > protocol.MaxEnrollTokenUses):
		fmt.Fprintf(e.stderr, "rpmfleet enroll-token: --uses %d: want 1 to %d\n", *uses, protocol.MaxEnrollTokenUses)
		return ExitUsage
	case sub == "create" && (*expires <= 0 || *expires > protocol.MaxEnrollTokenTTL):
		fmt.Fprintf(e.stderr, "rpmfleet enroll-token: --expires %v: want more than 0 and at most %v\n", *expires, protocol.MaxEnrollTokenTTL)
		return ExitUsage
	}
	if err := protocol.ValidateLabels(labels); err != nil {
		fmt.Fprintf(e.stderr, "rpmfleet enroll-token: --label: %v\n", err)
		return ExitUsage
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "enroll-token", err)
	}
	switch sub {
	case "create":
		req := protocol.EnrollTokenCreateRequest{Expires: time.Now().Add(*expires).UTC(), Uses: *uses}
		if len(labels) > 0 {
			req.Labels = labels
		}
		var resp protocol.EnrollTokenCreateResponse
		if err := api.do(ctx, http.MethodPost, protocol.PathEnrollTokens, req, "", &resp); err != nil {
			return fail(e, "enroll-token", err)
		}
		if *asJSON {
			writeJSON(e.stdout, resp)
			return ExitOK
		}
		// The token alone on stdout, so scripts can take it.
		fmt.Fprintln(e.stdout, resp.Token)
		fmt.Fprintf(e.stderr, "enrolment token %s: %d use(s), expires %s\n", resp.ID, resp.Uses, resp.Expires.Format(time.RFC3339))
	case "list":
		var ts []protocol.EnrollTokenInfo
		if err := api.get(ctx, protocol.PathEnrollTokens, &ts); err != nil {
			return fail(e, "enroll-token", err)
		}
		if *asJSON {
			writeJSON(e.stdout, ts)
			return ExitOK
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tLABELS\tUSES LEFT\tEXPIRES\tCREATED\tREVOKED")
		for _, t := range ts {
			rv := "-"
			if t.Revoked != nil {
				rv = e.fmtTime(*t.Revoked)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", show(t.ID), show(dash(labelFlag(t.Labels).String())), t.UsesLeft,
				e.fmtTime(t.Expires), e.fmtTime(t.Created), rv)
		}
		tw.Flush()
	case "revoke":
		if err := api.do(ctx, http.MethodDelete, protocol.PathEnrollTokens+"/"+esc(fs.Arg(0)), nil, "", nil); err != nil {
			return fail(e, "enroll-token", err)
		}
		fmt.Fprintf(e.stderr, "enrolment token %s revoked\n", show(fs.Arg(0)))
	default:
		return fail(e, "enroll-token", errors.New("unknown subcommand "+sub))
	}
	return ExitOK
}
