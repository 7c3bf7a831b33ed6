-- The dashboard's exposure-over-time chart (issue 14): the fleet's
-- exposure, one row per UTC day (day: Unix microseconds of its midnight),
-- rewritten through the day, so the last figures of a day stay. Devices
-- are counted by the severity of their worst exposure.
CREATE TABLE exposure_days (
	day                BIGINT PRIMARY KEY,
	devices            INTEGER NOT NULL,
	fully_patched      INTEGER NOT NULL,
	exposed_none       INTEGER NOT NULL,
	exposed_low        INTEGER NOT NULL,
	exposed_moderate   INTEGER NOT NULL,
	exposed_important  INTEGER NOT NULL,
	exposed_critical   INTEGER NOT NULL
);
