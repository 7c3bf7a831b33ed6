package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/client"
	"github.com/rpmfleet/rpmfleet/agent/internal/queue"
	"github.com/rpmfleet/rpmfleet/agent/internal/report"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// runReport queues a report of what changed (the update cycles apply
// finished and the inventory change) and delivers the queue, through the
// same reporter as the daemon (agent/internal/report).
func runReport(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "report", "report --once [--root DIR] [--dbpath PATH] [--state-dir DIR]")
	once := fs.Bool("once", false, "send one report and exit")
	root := fs.String("root", "/", "filesystem root of the device")
	dbPath := fs.String("dbpath", "", "rpm database inside --root (default: found under --root)")
	stateDir := fs.String("state-dir", DefaultStateDir, "where the credential and report state are kept")
	attempts := fs.Int("attempts", 3, "tries per report before giving up (the report waits on disk for the next run)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if !*once || fs.NArg() != 0 || *attempts < 1 {
		// The daemon (rpmfleet-agent run) reports on its own.
		fs.Usage()
		return ExitUsage
	}
	st := client.State{Dir: *stateDir}
	cred, err := st.LoadCredential()
	if err != nil {
		return fail(e, "report", err)
	}
	hc, err := cred.HTTPClient()
	if err != nil {
		return fail(e, "report", err)
	}
	r, err := report.Open(report.Options{
		StateDir: *stateDir, Root: *root, DBPath: *dbPath,
		Client:  client.New(cred.Server, cred.Credential, hc),
		Info:    func() protocol.DeviceInfo { return deviceInfo(*root) },
		Log:     e.log,
		Backoff: queue.Backoff{Min: time.Second, Max: 4 * time.Second},
		OnSent: func(s report.Sent) {
			fmt.Fprintf(e.stdout, "report %s sent: %s inventory, %d packages, %d update cycles\n", s.ID, s.Kind, s.Packages, s.Cycles)
		},
	})
	if errors.Is(err, queue.ErrLocked) {
		return fail(e, "report", fmt.Errorf("%w: rpmfleet-agent run is running and reports on its own", err))
	}
	if err != nil {
		return fail(e, "report", err)
	}
	defer r.Close()
	if _, err := r.Enqueue(true); err != nil {
		return fail(e, "report", err)
	}
	if err := r.DrainOnce(ctx, *attempts); err != nil {
		return fail(e, "report", err)
	}
	return ExitOK
}
