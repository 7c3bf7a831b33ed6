package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Stories of admin tokens, enrolment tokens and device credentials.

func testTokens(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	for i, role := range []protocol.Role{protocol.RoleReadOnly, protocol.RoleOperator, protocol.RoleAdmin} {
		err := s.CreateToken(ctx, store.Token{ID: fmt.Sprint("tok", i), Name: string(role), Role: role, Hash: store.HashSecret(string(role)), Created: t0.Add(time.Duration(i))})
		if err != nil {
			t.Fatal(err)
		}
	}
	tok, err := s.TokenByHash(ctx, store.HashSecret("operator"))
	if err != nil || tok.Role != protocol.RoleOperator || tok.ID != "tok1" {
		t.Errorf("TokenByHash(operator) = %+v, %v", tok, err)
	}
	if _, err := s.TokenByHash(ctx, store.HashSecret("guess")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByHash(unknown) error = %v, want ErrNotFound", err)
	}
	if err := s.CreateToken(ctx, store.Token{ID: "dup", Role: protocol.RoleAdmin, Hash: store.HashSecret("admin")}); err == nil || !strings.HasPrefix(err.Error(), "create token dup: ") {
		t.Errorf("a second token with the same hash: err = %v, want create token dup: (the database's unique violation)", err)
	}
	if err := s.RevokeToken(ctx, "tok2", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenByHash(ctx, store.HashSecret("admin")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoked token still works: %v", err)
	}
	if err := s.RevokeToken(ctx, "tok2", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking twice: %v, want ErrNotFound", err)
	}
	ts, err := s.ListTokens(ctx)
	if err != nil || len(ts) != 3 || ts[2].Revoked.IsZero() || !ts[0].Revoked.IsZero() {
		t.Errorf("ListTokens = %+v, %v; want 3, the last revoked", ts, err)
	}
}

func testEnrollTokenRules(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	mk := func(secret string, uses int, expires time.Time) {
		t.Helper()
		err := s.CreateEnrollToken(ctx, store.EnrollToken{ID: "id-" + secret, Hash: store.HashSecret(secret),
			Labels: map[string]string{"site": "barn", "image": "pi"}, Expires: expires, UsesLeft: uses, Created: t0})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("once", 1, t0.Add(time.Hour))
	mk("thrice", 3, t0.Add(time.Hour))
	mk("stale", 5, t0.Add(-time.Second))
	n := 0
	enroll := func(secret, name string) error {
		n++
		_, err := s.Enroll(ctx, store.HashSecret(secret), store.NewDevice{ID: fmt.Sprint("d", n), Name: name,
			CredentialHash: store.HashSecret(fmt.Sprint("cred", n)), Enrolled: t0})
		return err
	}
	steps := []struct {
		name, secret, device string
		want                 error
	}{
		{"single-use token works once", "once", "a", nil},
		{"single-use token refused after", "once", "b", store.ErrTokenUsedUp},
		{"counted token 1/3", "thrice", "c", nil},
		{"name taken does not spend a use", "thrice", "c", store.ErrNameTaken},
		{"counted token 2/3", "thrice", "d", nil},
		{"counted token 3/3", "thrice", "e", nil},
		{"counted token used up", "thrice", "f", store.ErrTokenUsedUp},
		{"expired token", "stale", "g", store.ErrTokenExpired},
		{"unknown token", "forged", "h", store.ErrTokenInvalid},
	}
	for _, st := range steps {
		err := enroll(st.secret, st.device)
		if !errors.Is(err, st.want) || (st.want == nil) != (err == nil) {
			t.Errorf("%s: Enroll error = %v, want %v", st.name, err, st.want)
		}
	}
	ds, err := s.Devices(ctx, store.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
		if d.Labels["site"] != "barn" || d.Labels["image"] != "pi" {
			t.Errorf("device %s labels = %v, want the token's", d.Name, d.Labels)
		}
	}
	if want := []string{"a", "c", "d", "e"}; !slices.Equal(names, want) {
		t.Errorf("devices = %v, want %v", names, want)
	}
	got, err := s.Devices(ctx, store.DeviceFilter{Labels: map[string]string{"site": "barn"}})
	if err != nil || len(got) != 4 {
		t.Errorf("Devices(site=barn) = %d, %v; want 4", len(got), err)
	}
	got, err = s.Devices(ctx, store.DeviceFilter{Labels: map[string]string{"site": "kitchen"}})
	if err != nil || len(got) != 0 {
		t.Errorf("Devices(site=kitchen) = %d, %v; want 0", len(got), err)
	}
}

func testEnrollConcurrent(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	if err := s.CreateEnrollToken(ctx, store.EnrollToken{ID: "e", Hash: store.HashSecret("five"), Expires: t0.Add(time.Hour), UsesLeft: 5, Created: t0}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.Enroll(ctx, store.HashSecret("five"), store.NewDevice{ID: fmt.Sprint("d", i), Name: fmt.Sprint("n", i),
				CredentialHash: store.HashSecret(fmt.Sprint("c", i)), Enrolled: t0})
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrTokenUsedUp):
			t.Errorf("enrolment %d: %v, want success or ErrTokenUsedUp", i, err)
		}
	}
	if ok != 5 {
		t.Errorf("%d concurrent enrolments succeeded with a 5-use token, want 5", ok)
	}
}

func testDeviceByCredential(t *testing.T, b Backend) {
	f := newFleet(t, b)
	d := f.enroll("pi-kitchen")
	got, err := f.s.DeviceByCredential(t.Context(), store.HashSecret("cred-pi-kitchen"))
	if err != nil || got.ID != d.ID || got.Name != "pi-kitchen" || got.Labels["site"] != "lab" {
		t.Errorf("DeviceByCredential = %+v, %v", got, err)
	}
	if _, err := f.s.DeviceByCredential(t.Context(), store.HashSecret("cred-pi-garage")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown credential: %v, want ErrNotFound", err)
	}
	f.report(d.ID, full("r1", f.ubi))
	got, _ = f.s.DeviceByCredential(t.Context(), store.HashSecret("cred-pi-kitchen"))
	if got.Digest != protocol.InventoryDigest(f.ubi) || got.Info.Kernel != "5.14.0" {
		t.Errorf("after a report, device = %+v; want its digest and kernel", got)
	}
}
