-- Findings (set_findings) move from package sets to finding sets, as
-- applicability moved to status sets in 0004: a finding set is a list of
-- findings, stored once and shared by every package set whose match gives
-- it, named by the SHA-256 of its content (digest). Package sets that
-- differ only in packages no advisory names share one, so a new package
-- set seldom writes a finding. Each existing package set gets a finding
-- set of its own, with the same id and its rows, and no digest.
CREATE TABLE finding_sets (
	id     INTEGER PRIMARY KEY,
	digest TEXT UNIQUE
);
INSERT INTO finding_sets (id) SELECT id FROM package_sets;
ALTER TABLE package_sets ADD COLUMN finding_set INTEGER REFERENCES finding_sets (id);
UPDATE package_sets SET finding_set = id;
CREATE INDEX package_sets_finding_set ON package_sets (finding_set);
-- The CVE question goes from a status set to its package sets and on to
-- their findings: the index gives both pointers.
DROP INDEX package_sets_status_set;
CREATE INDEX package_sets_status_set ON package_sets (status_set, id, finding_set);

CREATE TABLE set_findings_new (
	finding_set INTEGER NOT NULL REFERENCES finding_sets (id) ON DELETE CASCADE,
	advisory_id TEXT NOT NULL,
	package     TEXT NOT NULL,
	arch        TEXT NOT NULL,
	installed   TEXT NOT NULL,
	fixed       TEXT NOT NULL,
	affected    INTEGER NOT NULL,
	PRIMARY KEY (finding_set, advisory_id, package, arch, installed)
) WITHOUT ROWID;
INSERT INTO set_findings_new SELECT set_id, advisory_id, package, arch, installed, fixed, affected FROM set_findings;
DROP TABLE set_findings;
ALTER TABLE set_findings_new RENAME TO set_findings;
