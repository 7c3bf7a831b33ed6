package cli

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

func init() {
	register("webhooks", "list webhook deliveries: what each notification became", runWebhooks)
}

func runWebhooks(ctx context.Context, e *env, args []string) int {
	const usage = "webhooks deliveries [--status pending|delivered|failed] [--webhook NAME] [--limit N] [--json]"
	if len(args) == 0 || args[0] != "deliveries" {
		fmt.Fprintln(e.stderr, "Usage: rpmfleet "+usage)
		return ExitUsage
	}
	var c conn
	fs := newFlagSet(e, "webhooks deliveries", usage, &c)
	status := fs.String("status", "", "only deliveries in this state: pending, delivered or failed")
	hook := fs.String("webhook", "", "only deliveries to this webhook (its name in server.toml)")
	limit := fs.Int("limit", 100, "at most this many, newest first")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return ExitUsage
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "webhooks", err)
	}
	q := url.Values{}
	q.Set("limit", strconv.Itoa(*limit))
	if *status != "" {
		q.Set("status", *status)
	}
	if *hook != "" {
		q.Set("webhook", *hook)
	}
	var ds []protocol.WebhookDelivery
	if err := api.get(ctx, protocol.PathWebhookDeliveries+"?"+q.Encode(), &ds); err != nil {
		return fail(e, "webhooks", err)
	}
	if *asJSON {
		writeJSON(e.stdout, ds)
		return ExitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED\tWEBHOOK\tEVENT\tSTATUS\tATTEMPTS\tHTTP\tNEXT\tLAST ERROR")
	for _, d := range ds {
		next := "-"
		if d.Next != nil {
			next = e.fmtTime(*d.Next)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", e.fmtTime(d.Created), show(d.Webhook), show(d.Event), show(d.Status),
			d.Attempts, d.HTTPStatus, next, show(dash(d.LastError)))
	}
	tw.Flush()
	return ExitOK
}
