package fleet

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

var lifecycleNow = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// disconnectRecorder stands in for the embedded broker's DisconnectDevice,
// whose effect on a real session the integration test shows end to end.
type disconnectRecorder struct {
	recordPublisher
	ended []string
}

func (d *disconnectRecorder) DisconnectDevice(id string) { d.ended = append(d.ended, id) }

func lifecycleService(t *testing.T, pub Publisher) *Service {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := New(t.Context(), st, Options{Publisher: pub, Now: func() time.Time { return lifecycleNow }})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func TestCheckEnrollTokenBounds(t *testing.T) {
	svc := lifecycleService(t, nil)
	tests := []struct {
		name  string
		req   protocol.EnrollTokenCreateRequest
		words string // "" for accepted
	}{
		{"defaults", protocol.EnrollTokenCreateRequest{}, ""},
		{"most uses", protocol.EnrollTokenCreateRequest{Uses: protocol.MaxEnrollTokenUses}, ""},
		{"a year ahead", protocol.EnrollTokenCreateRequest{Expires: lifecycleNow.Add(365 * 24 * time.Hour)}, ""},
		{"negative uses", protocol.EnrollTokenCreateRequest{Uses: -1}, "uses: -1 is negative"},
		{"too many uses", protocol.EnrollTokenCreateRequest{Uses: protocol.MaxEnrollTokenUses + 1}, "uses: 10001 is more than 10000"},
		{"already expired", protocol.EnrollTokenCreateRequest{Expires: lifecycleNow.Add(-time.Minute)}, "expires: 2026-12-05T11:59:00Z is not in the future"},
		{"expires now", protocol.EnrollTokenCreateRequest{Expires: lifecycleNow}, "is not in the future"},
		{"two years ahead", protocol.EnrollTokenCreateRequest{Expires: lifecycleNow.Add(2 * 365 * 24 * time.Hour)}, "more than 366 days ahead"},
		{"escape in a label", protocol.EnrollTokenCreateRequest{Labels: map[string]string{"site": "\x1b[2J"}}, "labels.site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := svc.CheckEnrollToken(tt.req)
			if tt.words == "" {
				if err != nil {
					t.Fatalf("CheckEnrollToken = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.words) {
				t.Fatalf("CheckEnrollToken = %v, want a bad request saying %q", err, tt.words)
			}
		})
	}
}

func TestCheckEnroll(t *testing.T) {
	tests := []struct {
		name  string
		req   protocol.EnrollRequest
		words string
	}{
		{"name", protocol.EnrollRequest{Name: "pi-kitchen"}, ""},
		{"host name for a name", protocol.EnrollRequest{Device: protocol.DeviceInfo{Hostname: "pi.lab"}}, ""},
		{"ANSI name", protocol.EnrollRequest{Name: "pi\x1b[2J"}, `name: "pi\x1b[2J"`},
		{"64 KiB name", protocol.EnrollRequest{Name: strings.Repeat("x", 64<<10)}, "name: 65536 bytes"},
		{"host name not a name, none given", protocol.EnrollRequest{Device: protocol.DeviceInfo{Hostname: "my pi"}}, "give a name"},
		{"bad kernel", protocol.EnrollRequest{Name: "pi", Device: protocol.DeviceInfo{Kernel: "6.1\n"}}, "device.kernel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckEnroll(tt.req)
			if tt.words == "" {
				if err != nil {
					t.Fatalf("CheckEnroll = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrBadRequest) || !errors.Is(err, protocol.ErrInvalid) || !strings.Contains(err.Error(), tt.words) {
				t.Fatalf("CheckEnroll = %v, want a bad request saying %q", err, tt.words)
			}
		})
	}
}

func TestRevokeAndDeleteDisconnect(t *testing.T) {
	rec := &disconnectRecorder{}
	svc := lifecycleService(t, rec)
	ctx := t.Context()
	tok, err := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{Uses: 2, Labels: map[string]string{"site": "lab"}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Name: "pi-a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Name: "pi-b"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := svc.RevokeDevice(ctx, "pi-a")
	if err != nil || resp.DeviceID != a.DeviceID || !resp.Revoked.Equal(lifecycleNow) {
		t.Fatalf("RevokeDevice = %+v, %v", resp, err)
	}
	if _, err := svc.Store().DeviceByCredential(ctx, store.HashSecret(a.Credential)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pi-a's credential after revocation: %v, want ErrNotFound", err)
	}
	// A command to the revoked device is refused as such; one to a
	// device in service gets past that check (here to the missing signer).
	if _, err := svc.Command(ctx, "pi-a", protocol.Command{Verb: protocol.CommandCheck}); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("command to a revoked device: %v, want a bad request saying it was revoked", err)
	}
	if _, err := svc.Command(ctx, "pi-b", protocol.Command{Verb: protocol.CommandCheck}); !errors.Is(err, ErrNoSigner) {
		t.Errorf("command to a device in service: %v, want ErrNoSigner (no signer in this test)", err)
	}
	if err := svc.DeleteDevice(ctx, "pi-b"); err != nil {
		t.Fatal(err)
	}
	if strings.Join(rec.ended, ",") != a.DeviceID+","+b.DeviceID {
		t.Errorf("disconnected %v, want pi-a's then pi-b's id", rec.ended)
	}
	if err := svc.DeleteDevice(ctx, "pi-b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting twice: %v, want ErrNotFound", err)
	}
	ts, err := svc.ListEnrollTokens(ctx)
	if err != nil || len(ts) != 1 || ts[0].ID != tok.ID || ts[0].UsesLeft != 0 || ts[0].Labels["site"] != "lab" || ts[0].Revoked != nil {
		t.Fatalf("ListEnrollTokens = %+v, %v", ts, err)
	}
	if err := svc.RevokeEnrollToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if ts, _ := svc.ListEnrollTokens(ctx); ts[0].Revoked == nil || !ts[0].Revoked.Equal(lifecycleNow) {
		t.Errorf("after revocation: %+v", ts[0])
	}
}
