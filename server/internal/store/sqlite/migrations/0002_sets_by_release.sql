-- Package sets are keyed by (release, digest): the release is the device's
-- os-release ID and major version ("almalinux:9"), so the same packages
-- under two distributions are two sets, each matched against its own
-- advisories. SQLite cannot drop the old UNIQUE (digest), so the table is
-- rebuilt, keeping every id; sqlite.Open runs migrations with foreign keys
-- off and checks them after. Sets stored before have release '' and are
-- left behind by their devices' next report.
CREATE TABLE package_sets_new (
	id       INTEGER PRIMARY KEY,
	release  TEXT NOT NULL DEFAULT '',
	digest   TEXT NOT NULL,
	packages BLOB NOT NULL,
	count    INTEGER NOT NULL,
	created  INTEGER NOT NULL,
	stale    INTEGER NOT NULL DEFAULT 0,
	UNIQUE (release, digest)
);
INSERT INTO package_sets_new (id, release, digest, packages, count, created, stale)
	SELECT id, '', digest, packages, count, created, stale FROM package_sets;
DROP TABLE package_sets;
ALTER TABLE package_sets_new RENAME TO package_sets;
