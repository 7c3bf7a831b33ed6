-- An advisory id may cover several releases: the AlmaLinux OSV database
-- writes ALSA-2024:4568 once, with entries for AlmaLinux:8 and AlmaLinux:9,
-- into both releases' files. One row per id, holding the one advisory put
-- last, let the release imported last take the other's entries away. Its
-- variants, one per (id, ecosystem), move to advisory_variants, with the
-- advisory's JSON encoding (body) and its SHA-256 (digest, what
-- content_hash was) and update time, which decide which variant of an
-- (id, ecosystem) is kept (store.Stamp.Supersedes). The advisories row
-- keeps what queries list and sort by, summed up from its variants; its
-- ecosystem, content_hash and body go. A database made before holds, per
-- id, the variant imported last; importing the other releases' files
-- again adds theirs.
CREATE TABLE advisory_variants (
	advisory_id TEXT NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
	ecosystem   TEXT NOT NULL,
	updated     BIGINT NOT NULL,
	digest      BYTEA NOT NULL,
	body        BYTEA NOT NULL,
	PRIMARY KEY (advisory_id, ecosystem)
);
INSERT INTO advisory_variants (advisory_id, ecosystem, updated, digest, body)
	SELECT id, ecosystem, updated, content_hash, body FROM advisories;
ALTER TABLE advisories DROP COLUMN ecosystem, DROP COLUMN content_hash, DROP COLUMN body;
