-- Package sets are keyed by (release, digest): the release is the device's
-- os-release ID and major version ("almalinux:9"), so the same packages
-- under two distributions are two sets, each matched against its own
-- advisories. Sets stored before have release '' and are left behind by
-- their devices' next report.
ALTER TABLE package_sets ADD COLUMN release TEXT NOT NULL DEFAULT '';
ALTER TABLE package_sets DROP CONSTRAINT package_sets_digest_key;
ALTER TABLE package_sets ADD CONSTRAINT package_sets_release_digest_key UNIQUE (release, digest);
