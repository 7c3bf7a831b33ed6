-- rpmfleet schema, SQLite dialect. Times are Unix microseconds (0: never),
-- flags are 0/1, secrets are stored only as their SHA-256.

CREATE TABLE tokens (
	id      TEXT PRIMARY KEY,
	name    TEXT NOT NULL,
	role    TEXT NOT NULL,
	hash    BLOB NOT NULL UNIQUE,
	created INTEGER NOT NULL,
	revoked INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE enroll_tokens (
	id        TEXT PRIMARY KEY,
	hash      BLOB NOT NULL UNIQUE,
	labels    TEXT NOT NULL,
	expires   INTEGER NOT NULL,
	uses_left INTEGER NOT NULL CHECK (uses_left >= 0),
	created   INTEGER NOT NULL
);

-- One row per distinct installed package set, shared by every device
-- that reports it. stale: advisories changed while no device used it.
CREATE TABLE package_sets (
	id       INTEGER PRIMARY KEY,
	digest   TEXT NOT NULL UNIQUE,
	packages BLOB NOT NULL,
	count    INTEGER NOT NULL,
	created  INTEGER NOT NULL,
	stale    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE devices (
	id              TEXT PRIMARY KEY,
	name            TEXT NOT NULL UNIQUE,
	labels          TEXT NOT NULL,
	credential_hash BLOB NOT NULL UNIQUE,
	enrolled        INTEGER NOT NULL,
	last_seen       INTEGER NOT NULL DEFAULT 0,
	os_id           TEXT NOT NULL DEFAULT '',
	os_version_id   TEXT NOT NULL DEFAULT '',
	arch            TEXT NOT NULL DEFAULT '',
	kernel          TEXT NOT NULL DEFAULT '',
	hostname        TEXT NOT NULL DEFAULT '',
	agent_version   TEXT NOT NULL DEFAULT '',
	package_set     INTEGER REFERENCES package_sets (id),
	set_since       INTEGER NOT NULL DEFAULT 0,
	inventory_stale INTEGER NOT NULL DEFAULT 1,
	reboot_pending  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX devices_package_set ON devices (package_set);

CREATE TABLE device_labels (
	device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	key       TEXT NOT NULL,
	value     TEXT NOT NULL,
	PRIMARY KEY (device_id, key)
);
CREATE INDEX device_labels_key_value ON device_labels (key, value);

CREATE TABLE advisories (
	id               TEXT PRIMARY KEY,
	ecosystem        TEXT NOT NULL,
	type             TEXT NOT NULL,
	severity         INTEGER NOT NULL,
	issued           INTEGER NOT NULL,
	updated          INTEGER NOT NULL,
	title            TEXT NOT NULL,
	reboot_suggested INTEGER NOT NULL,
	content_hash     BLOB NOT NULL,
	body             BLOB NOT NULL
);

-- The CVE index: cve -> advisories.
CREATE TABLE advisory_cves (
	cve         TEXT NOT NULL,
	advisory_id TEXT NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
	PRIMARY KEY (cve, advisory_id)
);
CREATE INDEX advisory_cves_advisory ON advisory_cves (advisory_id);

-- Applicability per (package set, advisory), computed once per set: one
-- row per installed package the advisory fixes.
CREATE TABLE set_findings (
	set_id      INTEGER NOT NULL REFERENCES package_sets (id) ON DELETE CASCADE,
	advisory_id TEXT NOT NULL,
	package     TEXT NOT NULL,
	arch        TEXT NOT NULL,
	installed   TEXT NOT NULL,
	fixed       TEXT NOT NULL,
	affected    INTEGER NOT NULL,
	PRIMARY KEY (set_id, advisory_id, package, arch, installed)
);

-- Applicability per (package set, advisory), computed once per set from
-- its findings: affected 1 (some package older than the fix) or 0
-- (patched). A device's status is its set's, unless device_status says
-- otherwise; no row means not affected. Indexed by advisory for the CVE
-- question.
CREATE TABLE set_status (
	set_id      INTEGER NOT NULL REFERENCES package_sets (id) ON DELETE CASCADE,
	advisory_id TEXT NOT NULL,
	affected    INTEGER NOT NULL,
	PRIMARY KEY (set_id, advisory_id)
);
CREATE INDEX set_status_advisory ON set_status (advisory_id, affected, set_id);

-- Where a device's status differs from its set's: failed (while the set
-- is affected) or pending-reboot (while it is patched). Kept only for
-- those, so a device of a known image costs no status rows.
CREATE TABLE device_status (
	device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	advisory_id TEXT NOT NULL,
	status      TEXT NOT NULL CHECK (status IN ('pending-reboot', 'failed')),
	since       INTEGER NOT NULL,
	PRIMARY KEY (device_id, advisory_id)
);

-- Report ids already applied, for idempotency.
CREATE TABLE reports (
	device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	id        TEXT NOT NULL,
	received  INTEGER NOT NULL,
	PRIMARY KEY (device_id, id)
);

CREATE TABLE cycles (
	device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	report_id TEXT NOT NULL,
	seq       INTEGER NOT NULL,
	outcome   TEXT NOT NULL,
	finished  INTEGER NOT NULL,
	body      TEXT NOT NULL,
	PRIMARY KEY (device_id, report_id, seq)
);
