-- Advisory descriptions (issue 14: "rpmfleet advisory ID" shows the
-- description, as "dnf updateinfo info" does). Each variant (id, ecosystem)
-- keeps its own, at most 16 KiB (advisory.MaxDescription), in its own
-- column rather than in body: body is what the server loads for every
-- advisory to match devices, and a description changes no device's
-- exposure, so it is neither in body nor in digest (store.NewVariant).
-- NULL is a variant stored before this migration, whose description is not
-- known yet: the next import of its data fills it in without counting the
-- advisory as changed.
ALTER TABLE advisory_variants ADD COLUMN description TEXT;
