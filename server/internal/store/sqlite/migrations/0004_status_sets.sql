-- Applicability rows (set_status) move from package sets to status sets:
-- a status set is a list of (advisory, affected), stored once and shared
-- by every package set whose findings give that list, and named by the
-- SHA-256 of its content (digest). Package sets that differ only in
-- packages no advisory names, or in versions that do not change whether
-- an advisory is affected or patched, point at one status set, so a new
-- package set costs its findings (appended in set order) but seldom a
-- status row in the advisory-ordered index. Each existing package set
-- gets a status set of its own, with the same id and its rows, and no
-- digest: it is not shared, and is left behind as its devices report.
CREATE TABLE status_sets (
	id     INTEGER PRIMARY KEY,
	digest TEXT UNIQUE
);
INSERT INTO status_sets (id) SELECT id FROM package_sets;
ALTER TABLE package_sets ADD COLUMN status_set INTEGER REFERENCES status_sets (id);
UPDATE package_sets SET status_set = id;
CREATE INDEX package_sets_status_set ON package_sets (status_set, id);

CREATE TABLE set_status_new (
	status_set  INTEGER NOT NULL REFERENCES status_sets (id) ON DELETE CASCADE,
	advisory_id TEXT NOT NULL,
	affected    INTEGER NOT NULL,
	PRIMARY KEY (status_set, advisory_id)
) WITHOUT ROWID;
INSERT INTO set_status_new SELECT set_id, advisory_id, affected FROM set_status;
DROP TABLE set_status;
ALTER TABLE set_status_new RENAME TO set_status;
CREATE INDEX set_status_advisory ON set_status (advisory_id, affected, status_set);
