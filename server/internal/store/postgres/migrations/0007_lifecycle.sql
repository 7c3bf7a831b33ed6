-- Revocation of devices and enrolment tokens. A revoked device keeps its
-- row (listed as revoked, with its history) and its credential_hash is
-- replaced by random bytes, so no secret finds it any more; revoked is
-- when (Unix microseconds, 0: in service). A revoked enrolment token has
-- uses_left 0 and revoked set.
ALTER TABLE devices ADD COLUMN revoked BIGINT NOT NULL DEFAULT 0;
ALTER TABLE enroll_tokens ADD COLUMN revoked BIGINT NOT NULL DEFAULT 0;
