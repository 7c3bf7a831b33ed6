-- Webhook notifications (issue 14): the outbox. An event's body is stored
-- pending before anything is sent, and the attempts, the last answer's
-- status and the last error are written after each attempt, so a restart
-- loses no notification and the admin sees what became of each. next_at
-- (Unix microseconds) is when a pending delivery is due; a server sending
-- it moves next_at past its attempt's end first (the claim), so two
-- servers on one PostgreSQL never send it at once. (webhook, dedup) keeps
-- an event noticed twice (by two replicas, or two reports carrying one
-- cycle) to one delivery per webhook.
CREATE TABLE webhook_deliveries (
	id          TEXT PRIMARY KEY,
	webhook     TEXT NOT NULL,
	event       TEXT NOT NULL,
	event_id    TEXT NOT NULL,
	dedup       TEXT NOT NULL,
	body        TEXT NOT NULL,
	status      TEXT NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	http_status INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT NOT NULL DEFAULT '',
	created     INTEGER NOT NULL,
	updated     INTEGER NOT NULL,
	next_at     INTEGER NOT NULL,
	UNIQUE (webhook, dedup)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created);

-- The silent-device job asks for the devices whose last report crossed
-- the silence threshold since it last looked: a range of last_seen.
CREATE INDEX devices_last_seen ON devices (last_seen);
