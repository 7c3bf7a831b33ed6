package daemon

import (
	"slices"

	"github.com/rpmfleet/rpmfleet/agent/internal/config"
)

// reload takes a new configuration, or reports why the file was refused.
func (d *daemon) reload(c *config.Config, err error) {
	if err != nil {
		d.status.ReloadErrors++
		d.log.Error("configuration not reloaded; keeping the running one", "file", d.cfg.File, "err", err)
		return
	}
	if c.StateDir != d.cfg.StateDir || c.Root != d.cfg.Root || d.standalone && c.HomeAssistant.NodeID != d.cfg.HomeAssistant.NodeID {
		d.status.ReloadErrors++
		d.log.Error("configuration not reloaded: state_dir, root and (standalone, where it names the device) homeassistant.node_id change only with a restart", "file", c.File)
		return
	}
	old := d.cfg
	d.cfg = c
	if err := d.makeVerifier(c); err != nil {
		d.cfg = old
		d.status.ReloadErrors++
		d.log.Error("configuration not reloaded; keeping the running one", "file", c.File, "err", err)
		return
	}
	d.status.Reloads++
	d.log.Info("configuration reloaded", "file", c.File, "mode", c.Policy.Mode, "poll", c.Poll.Interval)
	if c.Poll != old.Poll && !d.fetching && d.failures == 0 {
		d.pollJitter = jitter(c.Poll.Jitter)
		d.schedulePoll()
	}
	d.haReload(old)
	if d.brokerURL() != d.broker {
		d.log.Info("mqtt broker changed; reconnecting", "broker", d.brokerURL())
		if d.mq != nil {
			d.mq.Close()
			d.mq = nil
		}
		d.stateKey = nil // the new client holds no state yet
		d.connectMQTT()
	}
	if d.rebootStage != rebootNone && c.Policy.Reboot != old.Policy.Reboot || !slices.Equal(c.Policy.Windows, old.Policy.Windows) && d.rebootStage == rebootWaitWindow {
		d.scheduleReboot() // cancelled, or moved to the new windows
	}
	// The policy may now allow, or forbid, what the plan holds.
	d.act()
}
