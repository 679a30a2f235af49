-- dialect: sqlite
-- The access log's sequence number becomes the rowid on SQLite: one B-tree fewer
-- per entry (see migrations/0005_sqlite_lean_tables.sql).

CREATE TABLE access_log_lean (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL,
    at         BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    fields     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
INSERT INTO access_log_lean SELECT seq, id, at, actor_kind, actor_id, action, subject_id, purpose, fields, detail, prev_hash, hash FROM access_log;
DROP TABLE access_log;
ALTER TABLE access_log_lean RENAME TO access_log;
CREATE INDEX access_log_subject ON access_log (subject_id, seq);
