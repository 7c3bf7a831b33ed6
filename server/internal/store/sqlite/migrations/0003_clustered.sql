-- The tables every report writes to and the CVE question reads become
-- WITHOUT ROWID: their rows live in their primary key's b-tree, so a
-- report inserts into one b-tree where it inserted into two (table and
-- key), and a lookup by key reads the row where it found the key. Devices
-- get an index on (package_set, name), so the devices of a set are listed
-- from the index alone.
CREATE TABLE set_findings_new (
	set_id      INTEGER NOT NULL REFERENCES package_sets (id) ON DELETE CASCADE,
	advisory_id TEXT NOT NULL,
	package     TEXT NOT NULL,
	arch        TEXT NOT NULL,
	installed   TEXT NOT NULL,
	fixed       TEXT NOT NULL,
	affected    INTEGER NOT NULL,
	PRIMARY KEY (set_id, advisory_id, package, arch, installed)
) WITHOUT ROWID;
INSERT INTO set_findings_new SELECT set_id, advisory_id, package, arch, installed, fixed, affected FROM set_findings;
DROP TABLE set_findings;
ALTER TABLE set_findings_new RENAME TO set_findings;

CREATE TABLE set_status_new (
	set_id      INTEGER NOT NULL REFERENCES package_sets (id) ON DELETE CASCADE,
	advisory_id TEXT NOT NULL,
	affected    INTEGER NOT NULL,
	PRIMARY KEY (set_id, advisory_id)
) WITHOUT ROWID;
INSERT INTO set_status_new SELECT set_id, advisory_id, affected FROM set_status;
DROP TABLE set_status;
ALTER TABLE set_status_new RENAME TO set_status;
CREATE INDEX set_status_advisory ON set_status (advisory_id, affected, set_id);

CREATE TABLE reports_new (
	device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	id        TEXT NOT NULL,
	received  INTEGER NOT NULL,
	PRIMARY KEY (device_id, id)
) WITHOUT ROWID;
INSERT INTO reports_new SELECT device_id, id, received FROM reports;
DROP TABLE reports;
ALTER TABLE reports_new RENAME TO reports;

CREATE TABLE device_status_new (
	device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	advisory_id TEXT NOT NULL,
	status      TEXT NOT NULL CHECK (status IN ('pending-reboot', 'failed')),
	since       INTEGER NOT NULL,
	PRIMARY KEY (device_id, advisory_id)
) WITHOUT ROWID;
INSERT INTO device_status_new SELECT device_id, advisory_id, status, since FROM device_status;
DROP TABLE device_status;
ALTER TABLE device_status_new RENAME TO device_status;

DROP INDEX devices_package_set;
CREATE INDEX devices_package_set ON devices (package_set, name);
