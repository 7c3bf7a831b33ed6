package notice_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/notice"
)

// The server signs a plan for one device; the device, which pinned the
// server's key at enrolment, verifies it once and refuses it the second
// time.
func Example() {
	pub, priv, err := notice.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	signer, err := notice.NewSigner(priv, notice.SignerOptions{})
	if err != nil {
		panic(err)
	}
	msg, err := signer.Sign(notice.KindPlan, "dev1", map[string][]string{"advisories": {"ALSA-2023:3722"}}, time.Hour)
	if err != nil {
		panic(err)
	}

	// On the device: the key as the agent's config holds it.
	pinned, err := notice.ParsePublicKey(notice.EncodePublicKey(pub))
	if err != nil {
		panic(err)
	}
	state, err := os.MkdirTemp("", "agent-state")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(state)
	v, err := notice.NewVerifier(notice.VerifierOptions{
		Keys:      []ed25519.PublicKey{pinned},
		StatePath: filepath.Join(state, "notice-guard.json"),
	})
	if err != nil {
		panic(err)
	}
	n, err := v.Verify(msg, notice.KindPlan, "dev1")
	if err != nil {
		panic(err)
	}
	var plan struct{ Advisories []string }
	if err := json.Unmarshal(n.Body, &plan); err != nil {
		panic(err)
	}
	fmt.Println(n.Kind, n.Device, plan.Advisories)

	_, err = v.Verify(msg, notice.KindPlan, "dev1")
	fmt.Println(errors.Is(err, notice.ErrReplayed))
	// Output:
	// plan dev1 [ALSA-2023:3722]
	// true
}
