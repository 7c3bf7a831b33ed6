-- A device's own number for each update cycle (protocol 4), so that a
-- cycle carried by two reports (an agent killed between queueing a cycle's
-- report and noting it queued) is kept once. 0: an older agent's cycle,
-- kept per report as before.
ALTER TABLE cycles ADD COLUMN cycle_id BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX cycles_device_cycle ON cycles (device_id, cycle_id) WHERE cycle_id > 0;
