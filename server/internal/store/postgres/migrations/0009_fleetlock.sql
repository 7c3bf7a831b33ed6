-- FleetLock (issue 13): the reboot slots held, per reboot group. A slot
-- frees itself at expires (Unix microseconds) if its holder never says it
-- is steady again. fleetlock_groups has a row per group that ever held a
-- slot: taking a slot first locks it, so two servers on one PostgreSQL
-- cannot both count a free slot and both take it.
CREATE TABLE fleetlock_groups (
	grp TEXT PRIMARY KEY,
	ops BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE fleetlock_slots (
	grp     TEXT NOT NULL,
	holder  TEXT NOT NULL,
	taken   BIGINT NOT NULL,
	expires BIGINT NOT NULL,
	PRIMARY KEY (grp, holder)
);
