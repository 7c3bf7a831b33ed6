package protocol

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func fullState() DeviceState {
	when := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	return DeviceState{
		Version: StateVersion, State: StateApplying, Applying: "ALSA-2023:3722",
		LastCheck: when, NextPoll: when.Add(time.Hour),
		Pending: []PendingAdvisory{
			{ID: "ALSA-2024:0001", Action: "notify", Reason: "outside the maintenance windows"},
			{ID: "ALSA-2024:0002", Action: ActionRefused, Reason: "every package is excluded: kernel-core (kernel*)", Excluded: true},
		},
		Queued:    2,
		Notices:   NoticeStats{Accepted: 7, Malformed: 1, UnknownKey: 2, BadSignature: 3, WrongKind: 4, WrongDevice: 5, Expired: 6, NotYetValid: 8, Replayed: 9, Repeated: 10, Other: 11},
		LastCycle: &CycleSummary{ID: 3, Phase: "committed", Advisories: []string{"ALSA-2023:3722"}, Reboot: true},
		RebootAt:  when.Add(2 * time.Hour), RebootWait: RebootWaitSessions, Reloads: 1, ReloadErrors: 1, SpoolDone: 1, SpoolFailed: 1, MQTT: true,
	}
}

// TestDeviceStateRoundTrip: every field of the retained state survives
// the wire, and the layout is pinned by testdata/device-state.golden.json
// (run with -update after an intended change, and bump StateVersion when a
// field changes meaning or goes away).
func TestDeviceStateRoundTrip(t *testing.T) {
	t.Parallel()
	st := fullState()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var back DeviceState
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, st) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, st)
	}
	b = append(b, '\n')
	path := filepath.Join("testdata", "device-state.golden.json")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s changed:\n got: %s\nwant: %s", path, b, want)
	}
}

// TestDeviceStateBeforeVersion: the payload agents published before
// StateVersion (no version field; "checking" shown as "idle") reads as
// version 0 with every field in place, so a reader tells the two apart and
// loses nothing.
func TestDeviceStateBeforeVersion(t *testing.T) {
	t.Parallel()
	old := `{"status":"idle","last_check":"2026-12-05T10:00:00Z","next_poll":"2026-12-05T11:00:00Z",` +
		`"pending_advisories":[{"id":"ALSA-2024:0001","action":"download","reason":"mode is download; downloading"}],` +
		`"queued_reports":0,"notices":{"accepted":3,"malformed":0,"unknown_key":1,"bad_signature":0,"wrong_kind":0,"wrong_device":0,` +
		`"expired":0,"not_yet_valid":0,"replayed":2,"repeated":4,"other":0},"config_reloads":0,"config_reload_errors":0,"mqtt_connected":true}`
	var st DeviceState
	if err := json.Unmarshal([]byte(old), &st); err != nil {
		t.Fatal(err)
	}
	want := DeviceState{State: StateIdle, LastCheck: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC), NextPoll: time.Date(2026, 12, 5, 11, 0, 0, 0, time.UTC),
		Pending: []PendingAdvisory{{ID: "ALSA-2024:0001", Action: "download", Reason: "mode is download; downloading"}},
		Notices: NoticeStats{Accepted: 3, UnknownKey: 1, Replayed: 2, Repeated: 4}, MQTT: true}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("old payload read as\n %+v\nwant %+v", st, want)
	}
}
