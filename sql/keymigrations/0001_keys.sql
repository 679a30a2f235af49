-- The key store: wrapped per-subject data keys, kept in a database of their own so
-- that destroying a key erases the subject from every copy of the data store.
CREATE TABLE data_keys (
    subject_id   TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL,
    kek_id       TEXT NOT NULL,
    wrapped      BLOB,
    created_at   BIGINT NOT NULL,
    destroyed_at BIGINT NOT NULL DEFAULT 0
);
