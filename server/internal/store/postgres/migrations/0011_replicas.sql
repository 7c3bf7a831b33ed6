-- Several server replicas on one database (issue 15).
--
-- notice_seq numbers every message any replica signs (pkg/notice's
-- Header.Seq), so two replicas signing for one device never reuse or go
-- back on a number. It starts one minute past this database's clock in
-- nanoseconds: a server that signed with its clock before (notice's
-- default) handed out smaller numbers, which its agents remember.
CREATE SEQUENCE notice_seq AS BIGINT;
SELECT setval('notice_seq', (extract(epoch FROM clock_timestamp()) * 1000000000)::BIGINT + 60000000000);

-- replica_messages holds what one replica published on its broker for the
-- others to publish on theirs (feed notices, commands): the NOTIFY on
-- channel rpmfleet_replica carries only the row's id. A replica that
-- (re)starts publishes the newest retained message of each topic again.
CREATE TABLE replica_messages (
	id       BIGSERIAL PRIMARY KEY,
	origin   TEXT NOT NULL,
	topic    TEXT NOT NULL,
	payload  BYTEA NOT NULL,
	retained BOOLEAN NOT NULL,
	created  BIGINT NOT NULL
);
CREATE INDEX replica_messages_retained ON replica_messages (topic, id) WHERE retained;
