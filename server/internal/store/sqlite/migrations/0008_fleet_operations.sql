-- Fleet operations (issue 13): groups (named label selectors) with the
-- policy attached to them, advisories approved by hand, rollouts and the
-- devices each released its advisories to, and the audit log. Times are
-- Unix microseconds.

-- selector and policy are JSON (a label map; a protocol.Policy, '' for
-- none).
CREATE TABLE device_groups (
	name     TEXT PRIMARY KEY,
	selector TEXT NOT NULL,
	policy   TEXT NOT NULL DEFAULT '',
	created  INTEGER NOT NULL,
	updated  INTEGER NOT NULL
);

CREATE TABLE advisory_approvals (
	advisory_id TEXT PRIMARY KEY,
	approved    INTEGER NOT NULL,
	by_name     TEXT NOT NULL
);

-- A rollout: spec is its JSON request as the server normalized it
-- (advisories, phases, soak, threshold); state, phase and phase_started
-- move as it runs.
CREATE TABLE rollouts (
	id            TEXT PRIMARY KEY,
	group_name    TEXT NOT NULL,
	spec          TEXT NOT NULL,
	state         TEXT NOT NULL CHECK (state IN ('running', 'paused', 'aborted', 'completed')),
	phase         INTEGER NOT NULL,
	total         INTEGER NOT NULL,
	phase_started INTEGER NOT NULL,
	reason        TEXT NOT NULL DEFAULT '',
	created_by    TEXT NOT NULL,
	created       INTEGER NOT NULL,
	updated       INTEGER NOT NULL
);
CREATE INDEX rollouts_state ON rollouts (state);

-- The devices a rollout released its advisories to, and in which phase.
CREATE TABLE rollout_devices (
	rollout_id TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
	device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	phase      INTEGER NOT NULL,
	added      INTEGER NOT NULL,
	PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX rollout_devices_device ON rollout_devices (device_id);

-- The rollouts' advisories, for the plan's question "is this advisory
-- held back for this device?".
CREATE TABLE rollout_advisories (
	rollout_id  TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
	advisory_id TEXT NOT NULL,
	PRIMARY KEY (rollout_id, advisory_id)
);

-- The audit log: who (token id, name, role), when, what, and the result.
-- Never a secret.
CREATE TABLE audit_log (
	id         INTEGER PRIMARY KEY,
	at         INTEGER NOT NULL,
	actor_id   TEXT NOT NULL,
	actor_name TEXT NOT NULL,
	actor_role TEXT NOT NULL,
	action     TEXT NOT NULL,
	target     TEXT NOT NULL,
	detail     TEXT NOT NULL,
	status     INTEGER NOT NULL,
	error      TEXT NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, id);
