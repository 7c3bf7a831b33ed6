package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/api"
	"github.com/rpmfleet/rpmfleet/server/internal/broker"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// nobody lets no client into the broker: the test reads what the server
// publishes through the broker's own Subscribe.
type nobody struct{}

func (nobody) Authenticate(string, string) (broker.Principal, bool) { return broker.Principal{}, false }

func TestCommand(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := broker.New(broker.Options{Listen: broker.ListenOff, Auth: nobody{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pub, priv, _ := notice.GenerateKey(nil)
	signer, _ := notice.NewSigner(priv, notice.SignerOptions{})
	svc, err := fleet.New(ctx, st, fleet.Options{NoticeKey: pub, Signer: signer, Publisher: b})
	if err != nil {
		t.Fatal(err)
	}
	advs, err := source.Load(ctx, filepath.Join("..", "fleet", "testdata", "almalinux9_ALSA-2023_3722.json"), source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Import(ctx, advs); err != nil {
		t.Fatal(err)
	}
	et, _ := svc.CreateEnrollToken(ctx, protocol.EnrollTokenCreateRequest{})
	dev, err := svc.Enroll(ctx, protocol.EnrollRequest{Token: et.Token, Name: "pi"})
	if err != nil {
		t.Fatal(err)
	}
	op, _ := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: "op", Role: protocol.RoleOperator})
	ro, _ := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: "ro", Role: protocol.RoleReadOnly})
	srv := httptest.NewServer(api.New(svc, api.Options{TempDir: t.TempDir()}))
	defer srv.Close()

	got := make(chan broker.Message, 8)
	if err := b.Subscribe(protocol.DeviceCommandTopic(dev.DeviceID), func(m broker.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	v, err := notice.NewVerifier(notice.VerifierOptions{Keys: []ed25519.PublicKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"HOME": t.TempDir(), "RPMFLEET_SERVER": srv.URL, "RPMFLEET_TOKEN": op.Token}
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		e := &env{stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
		code := commands["command"].run(context.Background(), e, args)
		return code, out.String(), errb.String()
	}

	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
		sent     *protocol.Command // what the device must receive
	}{
		{name: "check", args: []string{"pi", "check"}, out: "check sent to pi (id " + dev.DeviceID + ")",
			sent: &protocol.Command{Verb: protocol.CommandCheck}},
		{name: "apply, JSON", args: []string{"pi", "apply", "ALSA-2023:3722", "--json"}, out: `"topic": "` + protocol.DeviceCommandTopic(dev.DeviceID),
			sent: &protocol.Command{Verb: protocol.CommandApply, Advisories: []string{"ALSA-2023:3722"}}},
		{name: "report", args: []string{"pi", "report"}, out: "report sent",
			sent: &protocol.Command{Verb: protocol.CommandReport}},
		{name: "unknown verb", args: []string{"pi", "reboot"}, code: ExitUsage, err: `"reboot" is not check, report or apply`},
		{name: "apply nothing", args: []string{"pi", "apply"}, code: ExitUsage, err: "apply needs"},
		{name: "check with advisories", args: []string{"pi", "check", "ALSA-2023:3722"}, code: ExitUsage, err: "takes no advisories"},
		{name: "no verb", args: []string{"pi"}, code: ExitUsage, err: "Usage"},
		{name: "unknown advisory", args: []string{"pi", "apply", "ALSA-1999:1"}, code: ExitError, err: "400: fleet: bad request: advisories[0]: unknown advisory"},
		{name: "unknown device", args: []string{"nobody", "check"}, code: ExitError, err: "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := cli(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.err) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out, errs, tt.code, tt.out, tt.err)
			}
			if tt.sent == nil {
				select {
				case m := <-got:
					t.Fatalf("a refused command was published: %s", m.Payload)
				default:
				}
				return
			}
			select {
			case m := <-got:
				n, err := v.Verify(m.Payload, notice.KindCommand, dev.DeviceID)
				if err != nil {
					t.Fatalf("published command does not verify: %v", err)
				}
				var c protocol.Command
				json.Unmarshal(n.Body, &c)
				if c.Verb != tt.sent.Verb || strings.Join(c.Advisories, ",") != strings.Join(tt.sent.Advisories, ",") || m.Retained {
					t.Fatalf("published %+v (retained %v), want %+v not retained", c, m.Retained, *tt.sent)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("nothing was published")
			}
		})
	}

	vars["RPMFLEET_TOKEN"] = ro.Token
	if code, _, errs := cli("pi", "check"); code != ExitError || !strings.Contains(errs, "403") {
		t.Fatalf("a read-only token: exit %d, %q; want a 403", code, errs)
	}
}
