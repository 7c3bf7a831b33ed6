package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/statedir"
	"github.com/rpmfleet/rpmfleet/pkg/durable"
)

// JournalVersion is the version of the journal's JSON. History:
//
//   - 1 (2026-11-25): state.json (attempts, set-aside advisories, the active
//     cycle) and one cycles/NNNNNN.json per cycle.
const JournalVersion = 1

// MaxAttempts is how many failed cycles an advisory gets before it is set
// aside.
const MaxAttempts = 3

var (
	// ErrLocked: another cycle holds the state dir's lock.
	ErrLocked = errors.New("update: another update cycle is running")
	// ErrJournal: the journal cannot be read (corrupt, or a newer version).
	ErrJournal = errors.New("update: unreadable journal")
)

// State is the journal's state.json: what outlives one cycle.
type State struct {
	Version int `json:"version"`
	// Active is the ID of the cycle in progress, 0 when none is.
	Active int `json:"active,omitempty"`
	// LastID is the ID of the newest cycle.
	LastID int `json:"last_id"`
	// Attempts counts failed cycles per advisory ID.
	Attempts map[string]int `json:"attempts,omitempty"`
	// SetAside holds the advisories no longer tried, with the reason.
	SetAside map[string]string `json:"set_aside,omitempty"`
}

// Cycle is one update cycle as the journal records it, and as history shows it.
type Cycle struct {
	Version int   `json:"version"`
	ID      int   `json:"id"`
	Phase   Phase `json:"phase"`
	// Started and Finished are wall-clock times; Finished is zero while the
	// cycle runs.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// What the cycle was asked to do, enough to resume it.
	Root         string   `json:"root"`
	DBPath       string   `json:"dbpath"`
	Keys         []string `json:"gpgkeys"`
	HealthChecks []string `json:"health_checks,omitempty"`
	NoRollback   bool     `json:"no_rollback,omitempty"`

	Advisories []AdvisoryRef `json:"advisories"`
	Packages   []Package     `json:"packages"`
	// Dropped are packages the plan left out, with why (a downgrade, not in
	// any repository).
	Dropped []Dropped `json:"dropped,omitempty"`
	// Steps time each phase the cycle went through.
	Steps    []Step    `json:"steps"`
	Verdicts []Verdict `json:"verdicts,omitempty"`
	// RPMOutput and RollbackOutput are what rpm printed.
	RPMOutput      string         `json:"rpm_output,omitempty"`
	RollbackOutput string         `json:"rollback_output,omitempty"`
	Health         []HealthResult `json:"health,omitempty"`
	// HealthAfterRollback is the second health check, after a rollback.
	HealthAfterRollback []HealthResult `json:"health_after_rollback,omitempty"`
	Reboot              Reboot         `json:"reboot"`
	// Removed are the old install-only instances (name-version-release.arch)
	// erased after the cycle committed, to keep the install-only limit.
	Removed []string `json:"removed,omitempty"`
	// Recovery notes what the agent found and did when it resumed this
	// cycle after an interruption.
	Recovery []string `json:"recovery,omitempty"`
	// Error says why the cycle failed or rolled back; ErrorClass is the
	// class of failure ("download", "verify", "preflight", ...).
	Error      string `json:"error,omitempty"`
	ErrorClass string `json:"error_class,omitempty"`
	// DatabaseUnchanged is set on a failed cycle when the rpm database holds
	// exactly the packages it held before the cycle.
	DatabaseUnchanged bool `json:"database_unchanged,omitempty"`
	// BeforeDigest is the inventory digest (pkg/inventory.Digest) of the
	// database when the cycle was planned.
	BeforeDigest string `json:"before_digest"`
}

// AdvisoryRef is an advisory a cycle applies.
type AdvisoryRef struct {
	ID              string `json:"id"`
	Type            string `json:"type,omitempty"`
	Severity        string `json:"severity,omitempty"`
	RebootSuggested bool   `json:"reboot_suggested,omitempty"`
}

// Package is one package the cycle replaces.
type Package struct {
	Name string `json:"name"`
	Arch string `json:"arch"`
	// From is the installed EVR, To the planned one.
	From string `json:"from"`
	To   string `json:"to"`
	// Advisories are those the package fixes; none for a plain update
	// (Selection.Packages, a policy's allow_updates).
	Advisories []string `json:"advisories"`
	// InstallOnly says the new version goes in beside the installed ones
	// (rpm -i; installonly.go): From is the newest installed instance,
	// Old is nil, and the rollback erases the new one.
	InstallOnly bool `json:"install_only,omitempty"`
	// New is the planned package; Old the installed version's package, the
	// rollback, nil when no repository has it (and --no-rollback was given).
	New Artifact  `json:"new"`
	Old *Artifact `json:"old,omitempty"`
}

// Artifact is one package file: where it came from and where it is.
type Artifact struct {
	NEVRA string `json:"nevra"`
	URL   string `json:"url"`
	// Checksum is primary.xml's "type:hex" digest of the file.
	Checksum string `json:"checksum"`
	// PinnedSHA256 is the digest a signed plan pins (Options.Pins), hex;
	// empty when none does.
	PinnedSHA256  string `json:"pinned_sha256,omitempty"`
	Size          int64  `json:"size"`
	InstalledSize int64  `json:"installed_size,omitempty"`
	// File is the downloaded file in the state dir.
	File string `json:"file"`
	// Mirrors are the same file on the repository's other mirrors, tried
	// in order when URL fails to serve it or serves another file.
	Mirrors []string `json:"mirrors,omitempty"`
}

// Dropped is a package the plan did not take, and why.
type Dropped struct {
	Name      string `json:"name"`
	Arch      string `json:"arch"`
	Installed string `json:"installed"`
	Fixed     string `json:"fixed"`
	Advisory  string `json:"advisory"`
	Reason    string `json:"reason"`
}

// Step is one phase of a cycle and how long it took.
type Step struct {
	Phase    Phase     `json:"phase"`
	Started  time.Time `json:"started"`
	Duration string    `json:"duration,omitempty"`
	Note     string    `json:"note,omitempty"`
}

// Verdict is verify's answer on one package file.
type Verdict struct {
	NEVRA  string `json:"nevra"`
	File   string `json:"file"`
	OK     bool   `json:"ok"`
	Kind   string `json:"kind,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Keys are the fingerprints of the pinned keys that vouched for it.
	Keys []string `json:"keys,omitempty"`
	// Rollback is set for a package of the rollback set.
	Rollback bool `json:"rollback,omitempty"`
}

// HealthResult is one health check's run.
type HealthResult struct {
	Check    string `json:"check"`
	OK       bool   `json:"ok"`
	ExitCode int    `json:"exit_code"`
	Output   string `json:"output,omitempty"`
	Duration string `json:"duration"`
}

// Reboot says whether the cycle needs a reboot to take effect.
type Reboot struct {
	Needed  bool     `json:"needed"`
	Reasons []string `json:"reasons,omitempty"`
}

// Journal is the state dir, locked for one cycle.
type Journal struct {
	dir  string
	lock *os.File
}

// OpenJournal creates the state dir if needed, or makes an existing one
// private (statedir.Ensure: 0700, refused when another user owns it), and
// takes its lock (flock on
// DIR/lock, statedir.Lock), so that only one cycle runs. It fails with
// ErrLocked when another process keeps it for statedir.LockWait.
func OpenJournal(dir string) (*Journal, error) {
	if _, _, err := statedir.Ensure(dir); err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Join(dir, "cycles"), filepath.Join(dir, "packages")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create state dir: %w", err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := statedir.Lock(f); err != nil {
		b, _ := os.ReadFile(f.Name())
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock %s held by pid %s)", ErrLocked, filepath.Join(dir, "lock"), strings.TrimSpace(string(b)))
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	// The pid is informative only: the flock is the lock, and the kernel
	// drops it when the holder dies, kill -9 included.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Journal{dir: dir, lock: f}, nil
}

// Close releases the lock.
func (j *Journal) Close() error { return j.lock.Close() }

// Dir is the state dir.
func (j *Journal) Dir() string { return j.dir }

// State reads state.json; a missing file is a fresh state.
func (j *Journal) State() (*State, error) { return ReadState(j.dir) }

// SaveState writes state.json atomically.
func (j *Journal) SaveState(s *State) error {
	s.Version = JournalVersion
	return writeJSON(filepath.Join(j.dir, "state.json"), s)
}

// SaveCycle writes the cycle's file atomically.
func (j *Journal) SaveCycle(c *Cycle) error {
	c.Version = JournalVersion
	return writeJSON(cyclePath(j.dir, c.ID), c)
}

func cyclePath(dir string, id int) string {
	return filepath.Join(dir, "cycles", fmt.Sprintf("%06d.json", id))
}

// ReadState reads a state dir's state.json without taking the lock (the
// files are replaced atomically, so a reader sees one version or the next).
func ReadState(dir string) (*State, error) {
	s := &State{Version: JournalVersion}
	if err := readJSON(filepath.Join(dir, "state.json"), s); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return s, nil
		}
		return nil, err
	}
	if s.Version > JournalVersion {
		return nil, fmt.Errorf("%w: %s: version %d is newer than this agent's %d", ErrJournal, filepath.Join(dir, "state.json"), s.Version, JournalVersion)
	}
	return s, nil
}

// ReadCycle reads one cycle of a state dir.
func ReadCycle(dir string, id int) (*Cycle, error) {
	c := &Cycle{}
	if err := readJSON(cyclePath(dir, id), c); err != nil {
		return nil, err
	}
	if c.Version > JournalVersion {
		return nil, fmt.Errorf("%w: %s: version %d is newer than this agent's %d", ErrJournal, cyclePath(dir, id), c.Version, JournalVersion)
	}
	return c, nil
}

// History reads every cycle of a state dir, oldest first.
func History(dir string) ([]*Cycle, error) {
	names, err := filepath.Glob(filepath.Join(dir, "cycles", "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*Cycle
	for _, n := range names {
		id, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(n), ".json"))
		if err != nil {
			continue
		}
		c, err := ReadCycle(dir, id)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrJournal, path, err)
	}
	return nil
}

// writeJSON replaces path with v's JSON through pkg/durable (a temp file in
// the same folder, fsync, rename, fsync of the folder), so that after a
// power cut the file is either the old version or the new one, never a mix
// or empty.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := durable.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	return nil
}

// syncDir syncs a folder of the state dir (durable.SyncDir).
func syncDir(dir string) error { return durable.SyncDir(dir) }

// recordFailure counts a failed cycle against each of its advisories and
// sets aside those that reached MaxAttempts. It returns the IDs set aside now.
func (s *State) recordFailure(c *Cycle) []string {
	if s.Attempts == nil {
		s.Attempts = map[string]int{}
	}
	var aside []string
	for _, a := range c.Advisories {
		if s.count(a.ID, c) {
			aside = append(aside, a.ID)
		}
	}
	for _, p := range c.Packages {
		if len(p.Advisories) == 0 {
			s.count(plainKey(p.New.NEVRA), c)
		}
	}
	return aside
}

// count counts a failure of key (an advisory id, or a plain update's
// plainKey) and sets it aside at MaxAttempts, reporting whether it did.
func (s *State) count(key string, c *Cycle) bool {
	s.Attempts[key]++
	if s.Attempts[key] < MaxAttempts {
		return false
	}
	if s.SetAside == nil {
		s.SetAside = map[string]string{}
	}
	s.SetAside[key] = fmt.Sprintf("failed %d times, last in cycle %d (%s): %s", s.Attempts[key], c.ID, c.Phase, c.Error)
	return true
}

// recordSuccess forgets the failures of the cycle's advisories.
func (s *State) recordSuccess(c *Cycle) {
	for _, a := range c.Advisories {
		delete(s.Attempts, a.ID)
	}
	for _, p := range c.Packages {
		delete(s.Attempts, plainKey(p.New.NEVRA))
	}
}
