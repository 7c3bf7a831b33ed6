// Package report turns the device's inventory and its finished update
// cycles into reports, queues them on disk (agent/internal/queue) and
// delivers them to the fleet server. It is the one reporting path of both
// rpmfleet-agent report --once and the daemon (rpmfleet-agent run).
//
// The server is not trusted to be up: nothing is marked reported until it is
// queued, a queued report stays on disk until the server acknowledges it, and
// one the server refuses for good is set aside with its reason, never
// dropped in silence.
package report

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/client"
	"github.com/rpmfleet/rpmfleet/agent/internal/queue"
	"github.com/rpmfleet/rpmfleet/agent/internal/rpmdb"
	"github.com/rpmfleet/rpmfleet/agent/internal/statedir"
	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/durable"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// QueueDir is the reports queue's folder inside the state dir.
const QueueDir = "reports"

// undeliveredFile, in the state dir, says that reports wait in the queue
// after a run of report --once could not deliver them; it is removed once
// the queue is empty. (Before the queue it held the one pending report; a
// file of that form is queued by Open, with its id.)
const undeliveredFile = "report-pending.json"

// payloadVersion is the version of a queued report's payload. History:
//
//   - 1 (2026-11-25): {"version":1,"report":protocol.Report,"total":N}.
const payloadVersion = 1

// payload is what the reporter queues: the report, and how many packages
// the device had when it was made (for people reading the output).
type payload struct {
	Version int             `json:"version"`
	Report  protocol.Report `json:"report"`
	Total   int             `json:"total"`
}

// Sent describes a report the server acknowledged.
type Sent struct {
	ID string
	// Kind is the inventory's kind: protocol.InventoryFull or
	// InventoryDelta.
	Kind protocol.InventoryKind
	// Packages is how many packages the device had; Cycles how many update
	// cycles the report carried.
	Packages, Cycles int
	// NeedFull says the server asked for the full inventory after it.
	NeedFull bool
}

// Options configure a Reporter.
type Options struct {
	// StateDir holds the queue (StateDir/reports), the set the queued
	// reports leave the server holding, and the update journal whose
	// cycles are reported.
	StateDir string
	// Root is the device root; DBPath the rpm database folder inside it,
	// empty to find it.
	Root, DBPath string
	// Client posts the reports.
	Client *client.Client
	// Info describes the device; called for each report.
	Info func() protocol.DeviceInfo
	Log  *slog.Logger
	// Backoff paces redelivery.
	Backoff queue.Backoff
	// MaxEntries bounds the queue; queue.DefaultMaxEntries when 0.
	MaxEntries int
	// OnSent, when set, is told of every acknowledged report, on the
	// delivering goroutine.
	OnSent func(Sent)
}

// Reporter turns the device's inventory and its finished update cycles into
// reports, queues them on disk and delivers them: the one code path of
// rpmfleet-agent report --once and of the daemon.
//
// Deltas are computed against the set the last queued report leaves the
// server holding (client.State.LastQueuedSet), so reports in the queue
// chain; a digest that
// still disagrees on the server makes it ask for the full inventory, which
// the reporter then sends at once. The update cycles apply wrote are read
// from the journal's history and marked as reported once queued, so none is
// reported twice and, the queue never dropping a cycle report, none is lost.
type Reporter struct {
	o   Options
	st  client.State
	q   *queue.Queue
	log *slog.Logger

	mu  sync.Mutex // guards the last queued set (the baseline) and gen
	gen uint64     // bumped whenever the baseline changes
}

// Open makes the state dir private (statedir.Ensure) and opens
// the queue in it. It fails with an error
// wrapping queue.ErrLocked while another process (the daemon) has it.
func Open(o Options) (*Reporter, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Info == nil {
		o.Info = func() protocol.DeviceInfo { return protocol.DeviceInfo{} }
	}
	log := o.Log.With("component", "reporter")
	if from, changed, err := statedir.Ensure(o.StateDir); err != nil {
		return nil, err
	} else if changed {
		log.Warn("state dir was open to others; set to 0700", "dir", o.StateDir, "mode", fmt.Sprintf("%#o", from))
	}
	q, err := queue.Open(filepath.Join(o.StateDir, QueueDir), queue.Options{Logger: o.Log, Backoff: o.Backoff, MaxEntries: o.MaxEntries})
	if err != nil {
		return nil, err
	}
	r := &Reporter{o: o, st: client.State{Dir: o.StateDir}, q: q, log: log}
	// A report an agent before the queue left pending goes first, with
	// its id, so the server still recognizes a duplicate.
	if p, err := r.st.Pending(); err != nil {
		q.Close()
		return nil, err
	} else if p != nil && p.Report.ID != "" {
		kind := queue.KindDelta
		if len(p.Report.Cycles) > 0 {
			kind = queue.KindCycle
		}
		b, err := json.Marshal(payload{Version: payloadVersion, Report: p.Report, Total: len(p.After)})
		if err == nil {
			_, err = q.Enqueue(kind, b)
		}
		if err == nil {
			err = r.st.SetPending(nil)
		}
		if err != nil {
			q.Close()
			return nil, fmt.Errorf("queue the pending report %s: %w", p.Report.ID, err)
		}
		log.Info("queued the report an earlier agent left pending", "report", p.Report.ID)
	}
	return r, nil
}

// Close releases the queue.
func (r *Reporter) Close() error { return r.q.Close() }

// Len is the number of reports waiting.
func (r *Reporter) Len() int { return r.q.Len() }

// inventory reads the installed packages.
func (r *Reporter) inventory() ([]protocol.Package, error) {
	path := r.o.DBPath
	if path == "" {
		p, err := rpmdb.Find(r.o.Root)
		if err != nil {
			return nil, err
		}
		path = p
	} else {
		path = filepath.Join(r.o.Root, path)
	}
	pkgs, err := rpmdb.Read(path)
	if err != nil {
		return nil, err
	}
	return wirePackages(pkgs), nil
}

// Enqueue queues a report of what changed since the last one queued: the
// update cycles finished since, and the inventory change. With nothing
// changed it queues nothing, unless always is set (report --once sends a
// report every run, which also tells the server the device is alive). It
// returns the kind queued, "" for none.
func (r *Reporter) Enqueue(always bool) (queue.Kind, error) {
	history, err := update.History(r.o.StateDir)
	if err != nil {
		return "", fmt.Errorf("read update history: %w", err)
	}
	mark, err := r.st.ReportedCycle()
	if err != nil {
		return "", err
	}
	cycles, last := cycleResults(history, mark)
	pkgs, err := r.inventory()
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	base, ok, err := r.st.LastQueuedSet()
	if err != nil {
		return "", err
	}
	inv := protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}
	kind := queue.KindFull
	if ok {
		added, removed := inventory.Diff(invPackages(base), invPackages(pkgs))
		if len(added) == 0 && len(removed) == 0 && len(cycles) == 0 && !always {
			return "", nil
		}
		inv = protocol.Inventory{Kind: protocol.InventoryDelta, Added: wirePackages(added), Removed: wirePackages(removed), Digest: inv.Digest}
		kind = queue.KindDelta
	}
	if len(cycles) > 0 {
		kind = queue.KindCycle
	}
	rep := protocol.Report{Time: time.Now().UTC(), Device: r.o.Info(), Inventory: inv, Cycles: cycles, RebootPending: rebootPending(history, bootTime()) || wrongKernel(r.o.StateDir)}
	b, err := json.Marshal(payload{Version: payloadVersion, Report: rep, Total: len(pkgs)})
	if err != nil {
		return "", fmt.Errorf("queue report: %w", err)
	}
	if _, err := r.q.Enqueue(kind, b); errors.Is(err, queue.ErrFull) {
		// A resync marker stands in for it: the full set goes when it
		// reaches the head.
		r.log.Warn("report queue full; a full resync is queued instead", "err", err)
	} else if err != nil {
		return "", err
	}
	if err := r.st.SetLastQueuedSet(pkgs); err != nil {
		return "", err
	}
	r.gen++
	if len(cycles) > 0 {
		if err := r.st.SetReportedCycle(last); err != nil {
			return "", err
		}
	}
	r.log.Info("report queued", "kind", kind, "inventory", inv.Kind, "added", len(inv.Added), "removed", len(inv.Removed), "cycles", len(cycles), "queued", r.q.Len())
	return kind, nil
}

// Send delivers one queued report; it is the send function of Drain. A
// resync marker sends the full current inventory under its id. When the
// server asks for the full inventory, it is sent at once under a new id
// (queued instead if that fails). A refusal the server will repeat (4xx
// other than 401, 408 and 429) wraps queue.ErrRejected.
func (r *Reporter) Send(ctx context.Context, it *queue.Item) error {
	var p payload
	if it.Kind == queue.KindResync {
		full, gen, err := r.full()
		if err != nil {
			return err
		}
		full.Report.ID = it.ID
		return r.post(ctx, full, gen)
	}
	if err := json.Unmarshal(it.Payload, &p); err != nil || p.Version != payloadVersion {
		return fmt.Errorf("report %s: %w: payload version %d: %v", it.ID, queue.ErrRejected, p.Version, err)
	}
	if p.Report.ID == "" {
		p.Report.ID = it.ID
	}
	return r.post(ctx, &p, 0)
}

// full makes a full report of the current inventory, and the baseline's
// generation it was made at.
func (r *Reporter) full() (*payload, uint64, error) {
	r.mu.Lock()
	gen := r.gen
	r.mu.Unlock()
	pkgs, err := r.inventory()
	if err != nil {
		return nil, 0, err
	}
	history, err := update.History(r.o.StateDir)
	if err != nil {
		return nil, 0, fmt.Errorf("read update history: %w", err)
	}
	inv := protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}
	return &payload{Version: payloadVersion, Total: len(pkgs), Report: protocol.Report{Time: time.Now().UTC(), Device: r.o.Info(),
		Inventory: inv, RebootPending: rebootPending(history, bootTime()) || wrongKernel(r.o.StateDir)}}, gen, nil
}

// post sends p; for a full report made at baseline generation gen it moves
// the baseline to the set sent when nothing was queued meanwhile.
func (r *Reporter) post(ctx context.Context, p *payload, gen uint64) error {
	resp, err := r.o.Client.Report(ctx, &p.Report)
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) && ce.Status/100 == 4 && ce.Status != http.StatusUnauthorized &&
			ce.Status != http.StatusRequestTimeout && ce.Status != http.StatusTooManyRequests {
			return fmt.Errorf("%w: %w", queue.ErrRejected, err)
		}
		return err
	}
	if r.o.OnSent != nil {
		r.o.OnSent(Sent{ID: p.Report.ID, Kind: p.Report.Inventory.Kind, Packages: p.Total, Cycles: len(p.Report.Cycles), NeedFull: resp.NeedFullInventory})
	}
	if p.Report.Inventory.Kind == protocol.InventoryFull && !resp.NeedFullInventory {
		r.mu.Lock()
		defer r.mu.Unlock()
		// The server now holds exactly this set; the next delta starts
		// from it, unless a later report is queued against another one.
		if r.gen == gen && r.q.Len() <= 1 {
			if err := r.st.SetLastQueuedSet(p.Report.Inventory.Packages); err != nil {
				return err
			}
			r.gen++
		}
		return nil
	}
	if !resp.NeedFullInventory {
		return nil
	}
	r.log.Info("server asked for the full inventory", "report", p.Report.ID)
	full, fgen, err := r.full()
	if err != nil {
		return err
	}
	full.Report.ID = newReportID()
	if err := r.post(ctx, full, fgen); err != nil {
		// The report that asked for it is in; the full list goes through
		// the queue like any other.
		r.log.Warn("full inventory not delivered; queued", "err", err)
		b, merr := json.Marshal(full)
		if merr != nil {
			return merr
		}
		if _, qerr := r.q.Enqueue(queue.KindFull, b); qerr != nil && !errors.Is(qerr, queue.ErrFull) {
			return qerr
		}
	}
	return nil
}

// Drain delivers the queue until ctx is done.
func (r *Reporter) Drain(ctx context.Context) error {
	return r.q.Drain(ctx, func(it *queue.Item) error { return r.Send(ctx, it) })
}

// DrainOnce delivers every queued report and returns, giving up after
// attempts failures in a row (or one that retrying cannot help); the
// reports left stay queued for the next run, and report-pending.json in the
// state dir says so.
func (r *Reporter) DrainOnce(ctx context.Context, attempts int) error {
	if r.q.Len() == 0 {
		return r.setUndelivered(nil)
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lastErr error
	failures := 0
	err := r.q.Drain(dctx, func(it *queue.Item) error {
		err := r.Send(dctx, it)
		switch {
		case err == nil:
			failures = 0
		case errors.Is(err, queue.ErrRejected):
			r.log.Warn("report refused by the server; set aside", "id", it.ID, "err", err)
		default:
			failures++
			lastErr = err
			if failures >= attempts || !client.Retryable(err) {
				cancel()
			}
			return err
		}
		if r.q.Len() <= 1 {
			cancel() // this was the last one; Drain acknowledges it first
		}
		return err
	})
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if r.q.Len() > 0 {
		if lastErr == nil {
			lastErr = errors.New("not delivered")
		}
		err := fmt.Errorf("%w (%d reports stay queued and are resent by the next run)", lastErr, r.q.Len())
		if serr := r.setUndelivered(err); serr != nil {
			return serr
		}
		return err
	}
	return r.setUndelivered(nil)
}

// setUndelivered writes or, for nil, removes report-pending.json.
func (r *Reporter) setUndelivered(cause error) error {
	path := filepath.Join(r.o.StateDir, undeliveredFile)
	if cause == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("write state: %w", err)
		}
		return nil
	}
	b, _ := json.MarshalIndent(struct {
		Queued int       `json:"queued"`
		Error  string    `json:"error"`
		Time   time.Time `json:"time"`
	}{r.q.Len(), cause.Error(), time.Now().UTC()}, "", "  ")
	return durable.WriteFile(path, b, 0o600)
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
