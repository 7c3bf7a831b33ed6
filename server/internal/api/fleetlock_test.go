package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// fleetLockCall sends a FleetLock request the way the protocol's example
// does (curl -H "fleet-lock-protocol: true" -d @body.json URL: a POST with
// curl's form content type), with a bearer credential when given.
func fleetLockCall(t *testing.T, url, header, credential, body string) (int, protocol.FleetLockError) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if header != "" {
		req.Header.Set(protocol.FleetLockHeader, header)
	}
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e protocol.FleetLockError
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(b, &e); err != nil || e.Kind == "" || e.Value == "" {
			t.Errorf("a %d answer is not the protocol's error JSON with kind and value: %q", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, e
}

func flBody(id, group string) string {
	return fmt.Sprintf(`{"client_params": {"group": %q, "id": %q}}`, group, id)
}

// enrolDevices enrols devices through the API and returns their
// credentials by name.
func enrolDevices(t *testing.T, base, admin string, names ...string) map[string]string {
	t.Helper()
	var et protocol.EnrollTokenCreateResponse
	if code, e := send(t, "POST", base+protocol.PathEnrollTokens, admin, protocol.EnrollTokenCreateRequest{Uses: len(names)}, &et); code != 200 {
		t.Fatalf("enrolment token: %d %s", code, e.Error)
	}
	creds := map[string]string{}
	for _, n := range names {
		var resp protocol.EnrollResponse
		if code, e := send(t, "POST", base+protocol.PathEnroll, "", protocol.EnrollRequest{Token: et.Token, Name: n}, &resp); code != 200 {
			t.Fatalf("enrol %s: %d %s", n, code, e.Error)
		}
		creds[n] = resp.Credential
	}
	return creds
}

// TestFleetLockSpec: requests written as the FleetLock specification's
// example are answered as it says: 200 for a lock taken, again by its
// holder (recursive) and for an unlock, with or without a slot held; the
// protocol's error JSON (kind, value) with a 4xx otherwise, a full
// semaphore answering failed_lock_semaphore_full. Who may take a slot is
// this server's decision: a device with its own credential, for itself.
func TestFleetLockSpec(t *testing.T) {
	base, admin, _, _ := liveServer(t, Options{FleetLock: FleetLockOptions{Slots: 1, GroupSlots: map[string]int{"workers": 2}}})
	creds := enrolDevices(t, base, admin, "pi-1", "pi-2", "pi-3")
	pre, steady := base+protocol.PathPreReboot, base+protocol.PathSteadyState
	tests := []struct {
		name       string
		url        string
		header     string
		credential string
		body       string
		status     int
		kind       string
	}{
		{"no header", pre, "", creds["pi-1"], flBody("pi-1", "default"), 400, protocol.FleetLockMissingHeader},
		{"header not true", pre, "yes", creds["pi-1"], flBody("pi-1", "default"), 400, protocol.FleetLockMissingHeader},
		{"not JSON", pre, "true", creds["pi-1"], "client_params=pi-1", 400, protocol.FleetLockBadRequest},
		{"no id", pre, "true", creds["pi-1"], `{"client_params": {"group": "default"}}`, 400, protocol.FleetLockBadRequest},
		{"group outside the regexp", pre, "true", creds["pi-1"], flBody("pi-1", "de fault"), 400, protocol.FleetLockBadRequest},
		{"unknown group", pre, "true", creds["pi-1"], flBody("pi-1", "invented"), 400, protocol.FleetLockBadRequest},
		{"unknown group, no credential: nothing learnt of the groups", pre, "true", "", flBody("pi-1", "invented"), 401, protocol.FleetLockUnauthorized},
		{"no credential", pre, "true", "", flBody("pi-1", "default"), 401, protocol.FleetLockUnauthorized},
		{"wrong credential", pre, "true", "rfd_guess", flBody("pi-1", "default"), 401, protocol.FleetLockUnauthorized},
		{"another device's id", pre, "true", creds["pi-2"], flBody("pi-1", "default"), 403, protocol.FleetLockForbidden},
		{"huge body", pre, "true", creds["pi-1"], flBody(strings.Repeat("x", 8<<10), "default"), 413, protocol.FleetLockBadRequest},
		{"id of 129 bytes", pre, "true", creds["pi-1"], flBody(strings.Repeat("x", 129), "default"), 400, protocol.FleetLockBadRequest},
		{"escape in the id", pre, "true", creds["pi-1"], `{"client_params": {"group": "default", "id": "pi-1\u001b[2J"}}`, 400, protocol.FleetLockBadRequest},
		{"group of 65 bytes", pre, "true", creds["pi-1"], flBody("pi-1", strings.Repeat("g", 65)), 400, protocol.FleetLockBadRequest},
		{"pi-1 locks", pre, "true", creds["pi-1"], flBody("pi-1", "default"), 200, ""},
		{"pi-1 locks again (recursive)", pre, "true", creds["pi-1"], flBody("pi-1", "default"), 200, ""},
		{"pi-2 finds it full", pre, "true", creds["pi-2"], flBody("pi-2", "default"), 409, protocol.FleetLockFull},
		{"pi-2 cannot free pi-1's slot", steady, "true", creds["pi-2"], flBody("pi-1", "default"), 403, protocol.FleetLockForbidden},
		{"pi-2 unlocks what it does not hold", steady, "true", creds["pi-2"], flBody("pi-2", "default"), 200, ""},
		{"workers has two slots", pre, "true", creds["pi-2"], flBody("pi-2", "workers"), 200, ""},
		{"workers' second", pre, "true", creds["pi-3"], flBody("pi-3", "workers"), 200, ""},
		{"pi-1 unlocks", steady, "true", creds["pi-1"], flBody("pi-1", "default"), 200, ""},
		{"pi-2 locks the freed slot", pre, "true", creds["pi-2"], flBody("pi-2", "default"), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, e := fleetLockCall(t, tt.url, tt.header, tt.credential, tt.body)
			if code != tt.status || e.Kind != tt.kind {
				t.Errorf("%d %+v, want %d %q", code, e, tt.status, tt.kind)
			}
		})
	}
	var slots []protocol.FleetLockSlot
	if code, e := send(t, "GET", base+protocol.PathFleetLock, admin, nil, &slots); code != 200 || len(slots) != 3 {
		t.Fatalf("slots: %d %s %+v; want pi-2 in default, pi-2 and pi-3 in workers", code, e.Error, slots)
	}
	// An operator releases the slot of a device that never came back.
	if code, e := send(t, "DELETE", base+protocol.PathFleetLock+"/default/pi-2", admin, nil, nil); code != 204 {
		t.Errorf("release: %d %s", code, e.Error)
	}
	if code, _ := send(t, "DELETE", base+protocol.PathFleetLock+"/default/pi-2", admin, nil, nil); code != 404 {
		t.Errorf("releasing it again: %d, want 404", code)
	}
	if code, e := fleetLockCall(t, pre, "true", creds["pi-3"], flBody("pi-3", "default")); code != 200 {
		t.Errorf("pi-3 after the release: %d %+v", code, e)
	}
	var audit []protocol.AuditEntry
	if code, e := send(t, "GET", base+protocol.PathAudit+"?action=fleetlock.release", admin, nil, &audit); code != 200 || len(audit) != 2 ||
		audit[0].Status != 404 || audit[1].Status != 204 || audit[1].Target != "default/pi-2" || audit[1].Actor != "test" {
		t.Errorf("audit of the releases: %d %s %+v", code, e.Error, audit)
	}
}

// TestFleetLockOpen: in open mode a Zincati client with no credential may
// take a slot under an id of its own, but not under an enrolled device's
// name (an outsider could otherwise free or hold a device's slot).
func TestFleetLockOpen(t *testing.T) {
	base, admin, _, _ := liveServer(t, Options{FleetLock: FleetLockOptions{Auth: FleetLockOpen}})
	creds := enrolDevices(t, base, admin, "pi-1")
	pre := base + protocol.PathPreReboot
	if code, e := fleetLockCall(t, pre, "true", "", flBody("c988d2509fdf5cdcbed39037c56406fb", "default")); code != 200 {
		t.Errorf("the spec's example client: %d %+v", code, e)
	}
	if code, e := fleetLockCall(t, base+protocol.PathSteadyState, "true", "", flBody("pi-1", "default")); code != 401 || e.Kind != protocol.FleetLockUnauthorized {
		t.Errorf("an outsider unlocking as pi-1: %d %+v, want 401 unauthorized", code, e)
	}
	if code, e := fleetLockCall(t, base+protocol.PathSteadyState, "true", "", flBody("c988d2509fdf5cdcbed39037c56406fb", "default")); code != 200 {
		t.Errorf("the example client unlocks: %d %+v", code, e)
	}
	if code, e := fleetLockCall(t, pre, "true", creds["pi-1"], flBody("pi-1", "default")); code != 200 {
		t.Errorf("pi-1 with its credential: %d %+v", code, e)
	}
}

// TestFleetLockFiveClientsOneSlot: five devices ask for the one slot at
// once, many rounds: exactly one gets it each time.
func TestFleetLockFiveClientsOneSlot(t *testing.T) {
	base, admin, _, _ := liveServer(t, Options{})
	names := []string{"pi-1", "pi-2", "pi-3", "pi-4", "pi-5"}
	creds := enrolDevices(t, base, admin, names...)
	for round := range 10 {
		var mu sync.Mutex
		var holders []string
		var wg sync.WaitGroup
		for _, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if code, _ := fleetLockCall(t, base+protocol.PathPreReboot, "true", creds[n], flBody(n, "default")); code == 200 {
					mu.Lock()
					holders = append(holders, n)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(holders) != 1 {
			t.Fatalf("round %d: %v hold the one slot", round, holders)
		}
		if code, e := fleetLockCall(t, base+protocol.PathSteadyState, "true", creds[holders[0]], flBody(holders[0], "default")); code != 200 {
			t.Fatalf("unlock: %d %+v", code, e)
		}
	}
}
