package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"

	"github.com/rpmfleet/rpmfleet/agent/internal/client"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/version"
)

func init() {
	register("enroll", "join a fleet server with an enrolment token", runEnroll)
	register("report", "send this device's inventory to its fleet server", runReport)
}

func runEnroll(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "enroll", "enroll --server URL --token TOKEN [--ca-fingerprint sha256:HEX] [--name NAME] [--root DIR] [--state-dir DIR]")
	server := fs.String("server", "", "fleet server URL (\"https://fleet.example:8443\")")
	token := fs.String("token", "", "enrolment token (rpmfleet enroll-token create); or RPMFLEET_ENROLL_TOKEN")
	name := fs.String("name", "", "the device's name in the fleet (default: its host name)")
	root := fs.String("root", "/", "filesystem root of the device (for os-release)")
	stateDir := fs.String("state-dir", DefaultStateDir, "where the credential is kept")
	caFP := fs.String("ca-fingerprint", "", "trust only the server CA with this fingerprint (as rpmfleet-server --tls auto logs it), and keep it pinned")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *token == "" {
		*token = os.Getenv("RPMFLEET_ENROLL_TOKEN")
	}
	if *server == "" || *token == "" || fs.NArg() != 0 {
		fs.Usage()
		return ExitUsage
	}
	st := client.State{Dir: *stateDir}
	if c, err := st.LoadCredential(); err == nil {
		return fail(e, "enroll", fmt.Errorf("already enrolled as %q with %s; remove %s to enrol again", c.Name, c.Server, *stateDir))
	} else if !errors.Is(err, client.ErrNotEnrolled) {
		return fail(e, "enroll", err)
	}
	info := deviceInfo(*root)
	// The server holds names to the same rule; checking here says so
	// before the token is sent.
	if *name != "" {
		if err := protocol.ValidateName(*name); err != nil {
			return fail(e, "enroll", fmt.Errorf("--name: %w", err))
		}
	} else if err := protocol.ValidateName(info.Hostname); err != nil {
		return fail(e, "enroll", fmt.Errorf("the host name stands for the name, but %w; give --name", err))
	}
	var hc *http.Client
	var pin *client.Pin
	if *caFP != "" {
		var err error
		if pin, err = client.NewPin(*caFP); err != nil {
			return fail(e, "enroll", err)
		}
		if hc, err = pin.HTTPClient(*server); err != nil {
			return fail(e, "enroll", err)
		}
	}
	resp, err := client.New(*server, "", hc).Enroll(ctx, protocol.EnrollRequest{Token: *token, Name: *name, Device: info})
	if err != nil {
		return fail(e, "enroll", err)
	}
	cred := client.Credential{Server: *server, DeviceID: resp.DeviceID, Name: resp.Name,
		Credential: resp.Credential, NoticeKey: resp.NoticeKey, BrokerURL: resp.BrokerURL}
	if pin != nil {
		cred.CA = pin.CA()
	}
	if err := st.SaveCredential(cred); err != nil {
		return fail(e, "enroll", err)
	}
	// A new identity starts from nothing the server knows.
	if err := st.SetLastQueuedSet(nil); err != nil {
		return fail(e, "enroll", err)
	}
	if err := st.SetPending(nil); err != nil {
		return fail(e, "enroll", err)
	}
	fmt.Fprintf(e.stdout, "enrolled as %s (id %s) with %s\n", resp.Name, resp.DeviceID, *server)
	// A daemon already running standalone keeps its mode until it starts
	// again; nothing needs reinstalling.
	fmt.Fprintln(e.stdout, "a running agent switches to the server when it restarts: systemctl restart rpmfleet-agent")
	return ExitOK
}

// deviceInfo describes the device under root: its os-release, and what the
// running system says of itself.
func deviceInfo(root string) protocol.DeviceInfo {
	info := protocol.DeviceInfo{Arch: rpmArch(), Kernel: kernelRelease(), AgentVersion: version.String()}
	if rel, err := readOSRelease(root); err == nil {
		info.OSID, info.OSVersionID = rel.ID, rel.VersionID
	}
	info.Hostname, _ = os.Hostname()
	return info
}

// rpmArch names the machine as rpm does.
func rpmArch() string {
	switch runtime.GOARCH {
	case "arm64":
		return "aarch64"
	case "amd64":
		return "x86_64"
	case "arm":
		return "armv7hl"
	case "386":
		return "i686"
	}
	return runtime.GOARCH
}

// kernelRelease is uname -r, read where the kernel publishes it.
func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
