package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/client"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

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
		// Only --once exists until the agent's service loop does.
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
	r := &reporter{st: st, c: client.New(cred.Server, cred.Credential, hc), attempts: *attempts, e: e}

	// A report left undelivered by an earlier run goes first, with its id.
	if p, err := st.Pending(); err != nil {
		return fail(e, "report", err)
	} else if p != nil {
		e.log.Info("resending undelivered report", "report", p.Report.ID)
		if _, err := r.deliver(ctx, p); err != nil {
			return fail(e, "report", err)
		}
	}

	dev, err := readDevice(*root, *dbPath, false)
	if err != nil {
		return fail(e, "report", err)
	}
	info := deviceInfo(*root)
	pkgs := wirePackages(dev.pkgs)
	// The update cycles this agent ran (rpmfleet-agent apply, same state
	// folder) and has not reported yet.
	history, err := update.History(*stateDir)
	if err != nil {
		return fail(e, "report", err)
	}
	reported, err := st.ReportedCycle()
	if err != nil {
		return fail(e, "report", err)
	}
	cycles, lastCycle := cycleResults(history, reported)
	for range 2 {
		p, err := r.make(info, pkgs, cycles, lastCycle, rebootPending(history, bootTime()))
		if err != nil {
			return fail(e, "report", err)
		}
		needFull, err := r.deliver(ctx, p)
		if err != nil {
			return fail(e, "report", err)
		}
		if !needFull {
			fmt.Fprintf(e.stdout, "report %s sent: %s inventory, %d packages, %d update cycles\n", p.Report.ID, p.Report.Inventory.Kind, len(pkgs), len(cycles))
			return ExitOK
		}
		e.log.Info("server asked for the full inventory", "report", p.Report.ID)
		// The cycles went with the report the server took; do not send
		// them twice.
		cycles = nil
	}
	return fail(e, "report", errors.New("the server asked for the full inventory again after receiving it"))
}

type reporter struct {
	st       client.State
	c        *client.Client
	attempts int
	e        *env
}

// make builds the next report: the full set when the server holds none we
// know of, else the change since the acknowledged set, with the new digest;
// it is recorded as pending before it is sent.
func (r *reporter) make(info protocol.DeviceInfo, pkgs []protocol.Package, cycles []protocol.CycleResult, lastCycle int, rebootPending bool) (*client.Pending, error) {
	acked, ok, err := r.st.Acked()
	if err != nil {
		return nil, err
	}
	inv := protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}
	if ok {
		added, removed := inventory.Diff(invPackages(acked), invPackages(pkgs))
		inv = protocol.Inventory{Kind: protocol.InventoryDelta, Added: wirePackages(added), Removed: wirePackages(removed), Digest: inv.Digest}
	}
	p := &client.Pending{Report: protocol.Report{ID: newReportID(), Time: time.Now().UTC(), Device: info, Inventory: inv,
		Cycles: cycles, RebootPending: rebootPending}, After: pkgs}
	if len(cycles) > 0 {
		p.LastCycle = lastCycle
	}
	if err := r.st.SetPending(p); err != nil {
		return nil, err
	}
	return p, nil
}

// deliver sends a pending report, retrying with the same id, and moves the
// acknowledged set forward when the server took it. needFull says the server
// asked for the whole inventory instead.
func (r *reporter) deliver(ctx context.Context, p *client.Pending) (needFull bool, err error) {
	var resp protocol.ReportResponse
	for try := 1; ; try++ {
		resp, err = r.c.Report(ctx, &p.Report)
		if err == nil {
			break
		}
		if !client.Retryable(err) || try >= r.attempts {
			return false, fmt.Errorf("%w (the report stays queued and is resent by the next run)", err)
		}
		r.e.log.Warn("report not delivered; retrying", "report", p.Report.ID, "try", try, "err", err)
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(time.Duration(try) * time.Second):
		}
	}
	if p.LastCycle > 0 {
		// Accepted, full inventory asked for or not: the cycles are in.
		if err := r.st.SetReportedCycle(p.LastCycle); err != nil {
			return false, err
		}
	}
	if resp.NeedFullInventory {
		if err := r.st.SetAcked(nil); err != nil {
			return false, err
		}
		return true, r.st.SetPending(nil)
	}
	if err := r.st.SetAcked(p.After); err != nil {
		return false, err
	}
	return false, r.st.SetPending(nil)
}

func newReportID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func wirePackages(pkgs []inventory.Package) []protocol.Package {
	out := make([]protocol.Package, len(pkgs))
	for i, p := range pkgs {
		out[i] = protocol.Package{Name: p.Name, Epoch: p.Epoch, Version: p.Version, Release: p.Release, Arch: p.Arch, ModularityLabel: p.ModularityLabel}
	}
	return out
}

func invPackages(pkgs []protocol.Package) []inventory.Package {
	out := make([]inventory.Package, len(pkgs))
	for i, p := range pkgs {
		out[i] = inventory.Package{Name: p.Name, EVR: rpmver.EVR{Epoch: p.Epoch, Version: p.Version, Release: p.Release}, Arch: p.Arch, ModularityLabel: p.ModularityLabel}
	}
	return out
}
