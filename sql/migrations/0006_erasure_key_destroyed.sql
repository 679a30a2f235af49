-- An erasure ends only when the subject's data key is destroyed in the key
-- store, a second database that a single transaction cannot span. A tombstone
-- records when that happened; until then (the key store failed just after the
-- data was deleted) the maintenance run destroys the key again (FinishErasures).
-- Tombstones made before this migration start as not done: destroying a key
-- twice is harmless, and an earlier failure is repaired.

ALTER TABLE subjects ADD COLUMN key_destroyed_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX subjects_key_pending ON subjects (cancelled_at, id) WHERE status = 'cancelled' AND key_destroyed_at = 0;
