-- Devices get an index on (package_set, name), so the CVE question lists
-- the devices of a set from the index alone (an index-only scan). The
-- SQLite dialect's 0003 also makes its hot tables WITHOUT ROWID, which
-- PostgreSQL has no equivalent of.
DROP INDEX devices_package_set;
CREATE INDEX devices_package_set ON devices (package_set, name);
