package fleet

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// published is one message a recordPublisher was given.
type published struct {
	topic    string
	payload  []byte
	retained bool
}

// recordPublisher records what the service publishes, or fails with err.
type recordPublisher struct {
	mu   sync.Mutex
	msgs []published
	err  error
}

func (p *recordPublisher) Publish(topic string, payload []byte, retained bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.msgs = append(p.msgs, published{topic, payload, retained})
	return nil
}

func (p *recordPublisher) take() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.msgs
	p.msgs = nil
	return m
}

// pushFleet is a Service over a real SQLite store with a signer and a
// recording publisher, and a verifier pinning the signer's key.
type pushFleet struct {
	svc *Service
	st  store.Store
	pub *recordPublisher
	key ed25519.PublicKey
}

func newPushFleet(t *testing.T) *pushFleet {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pub, priv, err := notice.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := notice.NewSigner(priv, notice.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rp := &recordPublisher{}
	svc, err := New(ctx, st, Options{NoticeKey: pub, Signer: signer, Publisher: rp})
	if err != nil {
		t.Fatal(err)
	}
	return &pushFleet{svc: svc, st: st, pub: rp, key: pub}
}

// verify checks msg as an agent would, with a fresh replay guard.
func (f *pushFleet) verify(t *testing.T, msg []byte, kind notice.Kind, device string, body any) {
	t.Helper()
	v, err := notice.NewVerifier(notice.VerifierOptions{Keys: []ed25519.PublicKey{f.key}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := v.Verify(msg, kind, device)
	if err != nil {
		t.Fatalf("verify %s: %v", kind, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(n.Body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(body); err != nil {
		t.Fatalf("%s body: %v", kind, err)
	}
}

// enrollReport enrols a device called name and reports pkgs as its full
// inventory.
func (f *pushFleet) enrollReport(t *testing.T, name string, pkgs ...protocol.Package) string {
	t.Helper()
	ctx := t.Context()
	tok, err := f.svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := f.svc.Enroll(ctx, protocol.EnrollRequest{Token: tok.Token, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	f.report(t, dev.DeviceID, "r1", pkgs...)
	return dev.DeviceID
}

func (f *pushFleet) report(t *testing.T, id, reportID string, pkgs ...protocol.Package) {
	t.Helper()
	_, err := f.svc.Report(t.Context(), id, &protocol.Report{ID: reportID, Inventory: protocol.Inventory{
		Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPlanIsSignedWithAnETagOfItsBody(t *testing.T) {
	f := newPushFleet(t)
	ctx := t.Context()
	if _, err := f.svc.Import(ctx, loadTestdata(t)); err != nil {
		t.Fatal(err)
	}
	id := f.enrollReport(t, "pi", alma9, oldSSL)

	signed, etag, err := f.svc.Plan(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var plan protocol.Plan
	f.verify(t, signed, notice.KindPlan, id, &plan)
	want := protocol.Plan{Advisories: []protocol.PlanAdvisory{{ID: "ALSA-2023:3722", Type: "security", Severity: "Moderate",
		Status: protocol.StatusAffected, Packages: []protocol.PlanPackage{{Name: "openssl-libs", Arch: "aarch64",
			Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"}}}}}
	if got, _ := json.Marshal(plan); string(got) != string(must(json.Marshal(want))) {
		t.Fatalf("plan = %s\nwant %s", got, must(json.Marshal(want)))
	}

	// Signed again, the envelope differs (sequence number) but the ETag
	// does not: an unchanged plan is answered 304.
	signed2, etag2, err := f.svc.Plan(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if string(signed2) == string(signed) || etag2 != etag || !strings.HasPrefix(etag, `"`) {
		t.Fatalf("second signing: same envelope %v, etag %s then %s; want a new envelope, the same quoted ETag",
			string(signed2) == string(signed), etag, etag2)
	}

	// A plan signed for the device does not verify for another one.
	v, _ := notice.NewVerifier(notice.VerifierOptions{Keys: []ed25519.PublicKey{f.key}})
	if _, err := v.Verify(signed, notice.KindPlan, "someone-else"); !errors.Is(err, notice.ErrWrongDevice) {
		t.Fatalf("a plan verified for another device: %v, want notice.ErrWrongDevice", err)
	}

	// The fix installed: the plan empties and its ETag changes.
	f.report(t, id, "r2", alma9, fixedSSL)
	signed3, etag3, err := f.svc.Plan(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var empty protocol.Plan
	f.verify(t, signed3, notice.KindPlan, id, &empty)
	if etag3 == etag || empty.Advisories == nil || len(empty.Advisories) != 0 {
		t.Fatalf("plan after the fix = %+v (etag %s, before %s); want an empty list and a new ETag", empty, etag3, etag)
	}

	if _, _, err := f.svc.Plan(ctx, "no-such-device"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Plan of an unknown device: %v, want store.ErrNotFound", err)
	}
	unsigned, err := New(ctx, f.st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := unsigned.Plan(ctx, id); !errors.Is(err, ErrNoSigner) {
		t.Fatalf("Plan without a signer: %v, want ErrNoSigner", err)
	}
}

func TestImportPublishesARetainedSignedFeedNotice(t *testing.T) {
	f := newPushFleet(t)
	ctx := t.Context()
	advs := loadTestdata(t)
	if _, err := f.svc.Import(ctx, advs); err != nil {
		t.Fatal(err)
	}
	msgs := f.pub.take()
	if len(msgs) != 1 || msgs[0].topic != protocol.TopicAdvisoryFeed || !msgs[0].retained {
		t.Fatalf("published %+v, want one retained message on %s", msgs, protocol.TopicAdvisoryFeed)
	}
	var n protocol.FeedNotice
	f.verify(t, msgs[0].payload, notice.KindFeedNotice, "", &n)
	var ids []string
	for _, a := range advs {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	if n.Changed != len(advs) || !slices.Equal(n.Advisories, ids) {
		t.Fatalf("feed notice = %+v, want %d changed: %v", n, len(advs), ids)
	}

	// The same import again changes nothing and publishes nothing.
	if _, err := f.svc.Import(ctx, loadTestdata(t)); err != nil {
		t.Fatal(err)
	}
	if msgs := f.pub.take(); len(msgs) != 0 {
		t.Fatalf("an import that changed nothing published %d messages", len(msgs))
	}

	// One advisory changed: the notice names only it.
	advs = loadTestdata(t)
	advs[0].Title += " (revised)"
	advs[0].Updated = advs[0].Updated.Add(time.Hour) // a revision is a later update
	if _, err := f.svc.Import(ctx, advs); err != nil {
		t.Fatal(err)
	}
	msgs = f.pub.take()
	if len(msgs) != 1 {
		t.Fatalf("published %d messages after one advisory changed, want 1", len(msgs))
	}
	f.verify(t, msgs[0].payload, notice.KindFeedNotice, "", &n)
	if n.Changed != 1 || !slices.Equal(n.Advisories, []string{advs[0].ID}) {
		t.Fatalf("feed notice = %+v, want only %s", n, advs[0].ID)
	}

	// A broker that refuses does not fail the import.
	f.pub.err = errors.New("broker down")
	advs[0].Title += " again"
	advs[0].Updated = advs[0].Updated.Add(time.Hour)
	resp, err := f.svc.Import(ctx, advs)
	if err != nil || resp.Changed != 1 {
		t.Fatalf("Import with the broker down = %+v, %v; want it stored", resp, err)
	}
}

func TestCommand(t *testing.T) {
	f := newPushFleet(t)
	ctx := t.Context()
	if _, err := f.svc.Import(ctx, loadTestdata(t)); err != nil {
		t.Fatal(err)
	}
	f.pub.take()
	id := f.enrollReport(t, "pi", alma9, oldSSL)

	bad := []struct {
		name  string
		cmd   protocol.Command
		field string
	}{
		{"unknown verb", protocol.Command{Verb: "reboot"}, "verb: "},
		{"no verb", protocol.Command{}, "verb: "},
		{"advisories for check", protocol.Command{Verb: protocol.CommandCheck, Advisories: []string{"ALSA-2023:3722"}}, "advisories: "},
		{"advisories for report", protocol.Command{Verb: protocol.CommandReport, Advisories: []string{"ALSA-2023:3722"}}, "advisories: "},
		{"apply without advisories", protocol.Command{Verb: protocol.CommandApply}, "advisories: "},
		{"apply an unknown advisory", protocol.Command{Verb: protocol.CommandApply, Advisories: []string{"ALSA-2023:3722", "ALSA-1999:0001"}}, "advisories[1]: "},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.Command(ctx, "pi", tt.cmd)
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Command(%+v) = %v, want a bad request naming %q", tt.cmd, err, tt.field)
			}
		})
	}
	if msgs := f.pub.take(); len(msgs) != 0 {
		t.Fatalf("refused commands published %d messages", len(msgs))
	}

	for _, cmd := range []protocol.Command{
		{Verb: protocol.CommandCheck},
		{Verb: protocol.CommandReport},
		{Verb: protocol.CommandApply, Advisories: []string{"ALSA-2023:3722"}},
	} {
		resp, err := f.svc.Command(ctx, "pi", cmd)
		if err != nil {
			t.Fatalf("Command(%+v): %v", cmd, err)
		}
		topic := protocol.DeviceCommandTopic(id)
		if resp.DeviceID != id || resp.Topic != topic {
			t.Fatalf("Command response %+v, want device %s on %s", resp, id, topic)
		}
		msgs := f.pub.take()
		if len(msgs) != 1 || msgs[0].topic != topic || msgs[0].retained {
			t.Fatalf("published %+v, want one message, not retained, on %s", msgs, topic)
		}
		var got protocol.Command
		f.verify(t, msgs[0].payload, notice.KindCommand, id, &got)
		if got.Verb != cmd.Verb || !slices.Equal(got.Advisories, cmd.Advisories) {
			t.Fatalf("signed command %+v, want %+v", got, cmd)
		}
	}

	if _, err := f.svc.Command(ctx, "nobody", protocol.Command{Verb: protocol.CommandCheck}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Command to an unknown device: %v, want store.ErrNotFound", err)
	}
	f.pub.err = errors.New("connection refused")
	if _, err := f.svc.Command(ctx, "pi", protocol.Command{Verb: protocol.CommandCheck}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Command with the broker refusing: %v, want its error", err)
	}
	noBroker, err := New(ctx, f.st, Options{Signer: f.svc.opts.Signer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noBroker.Command(ctx, "pi", protocol.Command{Verb: protocol.CommandCheck}); !errors.Is(err, ErrNoBroker) {
		t.Fatalf("Command without a broker: %v, want ErrNoBroker", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
