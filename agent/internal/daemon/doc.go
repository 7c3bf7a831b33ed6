// Package daemon is rpmfleet-agent run: the long-lived loop that joins the
// agent's parts. It takes signed pushes from MQTT and polls the fleet server
// for the device's signed plan, decides with the policy what to apply and
// when, runs the update cycle, reports through an on-disk queue, watches the
// rpm database and a spool folder, reloads its configuration, and speaks
// systemd's notify protocol.
//
// Threat model. The MQTT broker, the network, the HTTP path to the server,
// the repositories and whoever may drop files into the spool folder are not
// trusted. Nothing they send is acted on unless it is signed by the server's
// Ed25519 notice key pinned at enrolment (or in the configuration's
// notice_key), for this device, not expired, and newer than what was
// accepted before (pkg/notice's Verifier, whose replay guard lives in the
// state dir). A feed notice or a command only makes the agent fetch its
// plan; a plan names advisories and, when the server read them from a
// repository, pins each package's SHA-256; the packages themselves must still
// verify against the OpenPGP keys pinned in the configuration. So an
// attacker who controls the broker or the network can delay updates, never
// choose what is installed; a forged, replayed, expired or other device's
// message is refused, logged with the reason at warn level and counted in the
// status. The retained feed notice a broker hands out again at every
// reconnect is the one exception to the warning: it is expected and logged at
// debug level. The configuration file and the state dir are trusted: the
// first is checked by config.Load, the second is made private by statedir
// (0700, refused when another user owns it).
//
// Standalone (no server configured and no enrolment, standalone.go), there
// is no signed plan: the plan is derived from the device's own
// repositories, which are then what is trusted, as dnf trusts them:
// repomd.xml (signed where the .repo file asks), the metadata checked
// against its checksums, each planned package pinned to primary.xml's
// SHA-256, and every package verified against the pinned OpenPGP keys
// before rpm sees it. Signed messages and spool bundles are refused unless
// notice_key pins a key. Home Assistant's command topics
// (homeassistant.go) are not signed: anyone who may publish on them can
// make the agent apply, now, the pending advisories its policy allows
// from those repositories, and nothing else; only the exact payload, live
// (not retained), acts.
//
// Shape. One goroutine, Run's, owns every piece of mutable state and selects
// over the context, MQTT messages, the poll timer (interval plus jitter,
// exponential backoff with full jitter on errors), the debounced rpm
// database change timer, spool events, configuration reloads, the results of
// the plan fetch and of the one update cycle (each run in a worker goroutine
// reporting back on a channel), the maintenance-window and reboot timers and
// the systemd watchdog ticker. Nothing blocks it for long: a fetch, a cycle,
// report delivery (report.Reporter.Drain) and every access to the spool run in
// workers.
//
// Spool. An air-gapped site drops a bundle into the spool folder
// (STATE_DIR/spool by default): a folder NAME/ holding plan.json, a signed
// plan for this device, and repo/, a repository (repodata with updateinfo
// and the RPMs). The daemon acts on a bundle only once its plan.json exists,
// so a bundle must be written completely and then made visible in one
// rename: write NAME/repo/ first and rename plan.json into place last, or
// build the whole folder elsewhere on the same file system and rename it
// into the spool folder. A verified bundle is applied as policy says, with
// its repo/ as the only repository, and moved to spool/done/; one that does
// not verify or whose cycle fails is moved to spool/failed/, each with a
// NAME.reason file. A bundle's plan takes a sequence number from the same
// replay guard as plans fetched online.
//
// The spool is handled as hostile (spoolfs.go has the rules): all its file
// work runs in a worker, never on the loop; the spool folder must belong to
// the agent's user and is kept 0700; every name is opened relative to an
// open folder with O_NOFOLLOW (files also O_NONBLOCK), and only regular
// files and folders are accepted, checked on the opened file; plan.json is
// bounded by the notice size limit; repo/ is copied, within bounds, into a
// private stage in the state dir (spool-stage/), which is all the cycle
// reads; bundles are moved with renameat and reasons written without ever
// following a link, and a done/ or failed/ that is not a folder of the
// agent's user is set aside.
package daemon
