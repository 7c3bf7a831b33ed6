package rpmtest

import (
	"bytes"
	"fmt"
)

// Sign signs rpm files in place with rpmsign --addsign, as a distribution
// does: rpm 4.18 writes a header-only signature (RPMSIGTAG_RSA for RSA keys,
// RPMSIGTAG_DSA for EdDSA), which covers the header and through its payload
// digest the payload. A package already signed gets the new signature added.
func Sign(key *Key, rpmPaths ...string) error {
	return sign(key, nil, rpmPaths)
}

// SignV3 is Sign with rpmsign --rpmv3: the header-only signature plus the
// older header+payload signature (RPMSIGTAG_PGP), as rpm < 4.14 made them
// and as RHEL 8 packages still carry.
func SignV3(key *Key, rpmPaths ...string) error {
	return sign(key, []string{"--rpmv3"}, rpmPaths)
}

func sign(key *Key, extra, rpmPaths []string) error {
	if len(rpmPaths) == 0 {
		return nil
	}
	args := []string{
		"--define", "__gpg /usr/bin/gpg",
		"--define", "_gpg_name " + key.Fingerprint,
		"--define", "_gpg_path " + key.Home,
		"--define", "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback --passphrase ''",
		"--addsign",
	}
	args = append(append(args, extra...), rpmPaths...)
	var out []byte
	var err error
	for try := 1; ; try++ {
		out, err = runTool(toolTimeout, nil, true, "rpmsign", args...)
		// gpg starts its agent on demand and gives up when the agent's
		// socket is not up in time, which a loaded 2-core machine can
		// make happen; rpmsign then signed nothing, and a new try
		// starts the agent again. Any other failure is the answer.
		if err == nil || try == 3 || !bytes.Contains(out, []byte("No agent running")) {
			break
		}
	}
	if kerr := key.stopAgent(); err == nil && kerr != nil {
		return fmt.Errorf("rpmtest: sign: %w", kerr)
	}
	if err != nil {
		return fmt.Errorf("rpmtest: rpmsign %v: %w: %s", rpmPaths, err, out)
	}
	return nil
}
