package daemon

import (
	"log/slog"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// notifier speaks systemd's notify protocol (Type=notify): READY=1 once the
// loop runs, STATUS= lines, WATCHDOG=1 pings from the loop itself, so a
// stuck loop is restarted, and STOPPING=1. Outside systemd (no
// NOTIFY_SOCKET) every call does nothing.
type notifier struct {
	log  *slog.Logger
	last string
}

func newNotifier(log *slog.Logger) *notifier { return &notifier{log: log} }

func (n *notifier) send(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		n.log.Debug("sd_notify failed", "err", err)
	}
}

func (n *notifier) ready()    { n.send(sd.SdNotifyReady) }
func (n *notifier) stopping() { n.send(sd.SdNotifyStopping) }
func (n *notifier) watchdog() { n.send(sd.SdNotifyWatchdog) }

func (n *notifier) status(s string) {
	if s == n.last {
		return
	}
	n.last = s
	n.send("STATUS=" + s)
}

// watchdogInterval is half of WATCHDOG_USEC, 0 when the watchdog is off.
func (n *notifier) watchdogInterval() time.Duration {
	d, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog settings unreadable", "err", err)
		return 0
	}
	return d / 2
}
