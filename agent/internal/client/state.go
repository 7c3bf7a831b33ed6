package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/rpmfleet/rpmfleet/agent/internal/statedir"
	"github.com/rpmfleet/rpmfleet/pkg/durable"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// ErrNotEnrolled is returned by LoadCredential when the state folder holds
// no credential.
var ErrNotEnrolled = errors.New("client: not enrolled")

// Files in the state folder.
const (
	credentialFile = "credential.json"
	// lastQueuedFile keeps its first name: it was the set the server
	// acknowledged before reports were queued.
	lastQueuedFile = "inventory-acked.json"
	pendingFile    = "report-pending.json"
	cyclesFile     = "cycles-reported.json"
)

// Credential is what enrolment gave the device, kept in the state folder.
type Credential struct {
	Server     string `json:"server"`
	DeviceID   string `json:"device_id"`
	Name       string `json:"name"`
	Credential string `json:"credential"`
	NoticeKey  []byte `json:"notice_key"`
	BrokerURL  string `json:"broker_url,omitempty"`
	// CA is the server's CA certificate (PEM) pinned at enrolment; empty
	// when the server's certificate is checked against the system's roots.
	CA []byte `json:"ca,omitempty"`
}

// HTTPClient returns the client to talk to the credential's server with:
// one trusting only the pinned CA when there is one.
func (c Credential) HTTPClient() (*http.Client, error) {
	if len(c.CA) == 0 {
		return nil, nil
	}
	return CAClient(c.CA)
}

// Pending is a report made but not yet acknowledged, with the package set it
// leaves the server holding once applied.
type Pending struct {
	Report protocol.Report    `json:"report"`
	After  []protocol.Package `json:"after"`
	// LastCycle is the id of the newest update cycle the report carries;
	// 0 when it carries none.
	LastCycle int `json:"last_cycle,omitempty"`
}

// State is the agent's state folder.
type State struct{ Dir string }

// SaveCredential writes the credential, readable by the owner only.
func (s State) SaveCredential(c Credential) error { return s.write(credentialFile, c) }

// LoadCredential reads the credential, or fails with ErrNotEnrolled.
func (s State) LoadCredential() (Credential, error) {
	var c Credential
	ok, err := s.read(credentialFile, &c)
	if err != nil {
		return c, err
	}
	if !ok || c.Credential == "" {
		return c, fmt.Errorf("%w: no %s (run rpmfleet-agent enroll)", ErrNotEnrolled, filepath.Join(s.Dir, credentialFile))
	}
	return c, nil
}

// LastQueuedSet returns the package set the last queued report leaves the
// server holding once it is delivered: what the next report's delta is
// computed against. ok is false when there is none, and the next report
// must be a full one.
func (s State) LastQueuedSet() (pkgs []protocol.Package, ok bool, err error) {
	ok, err = s.read(lastQueuedFile, &pkgs)
	return pkgs, ok, err
}

// SetLastQueuedSet records the package set the report just queued leaves
// the server holding (or, after a full inventory the server took, the set
// it holds); nil forgets it.
func (s State) SetLastQueuedSet(pkgs []protocol.Package) error {
	if pkgs == nil {
		return s.remove(lastQueuedFile)
	}
	return s.write(lastQueuedFile, pkgs)
}

// Pending returns the report waiting for delivery, if any.
func (s State) Pending() (*Pending, error) {
	var p Pending
	ok, err := s.read(pendingFile, &p)
	if !ok || err != nil {
		return nil, err
	}
	return &p, nil
}

// SetPending records the report about to be sent, before it is sent, so a
// retry after a crash or a failure sends the same id; nil clears it.
func (s State) SetPending(p *Pending) error {
	if p == nil {
		return s.remove(pendingFile)
	}
	return s.write(pendingFile, p)
}

// ReportedCycle returns the id of the newest update cycle the server
// acknowledged, 0 when none.
func (s State) ReportedCycle() (int, error) {
	var id int
	_, err := s.read(cyclesFile, &id)
	return id, err
}

// SetReportedCycle records the newest update cycle the server acknowledged.
func (s State) SetReportedCycle(id int) error { return s.write(cyclesFile, id) }

func (s State) read(name string, v any) (bool, error) {
	path := filepath.Join(s.Dir, name)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("read state %s: %w", path, err)
	}
	return true, nil
}

// write replaces name atomically (pkg/durable), mode 0600, in a state
// folder made private first (statedir).
func (s State) write(name string, v any) error {
	if _, _, err := statedir.Ensure(s.Dir); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write state %s: %w", name, err)
	}
	if err := durable.WriteFile(filepath.Join(s.Dir, name), b, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

func (s State) remove(name string) error {
	if err := durable.Remove(filepath.Join(s.Dir, name)); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
