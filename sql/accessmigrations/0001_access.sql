-- The access log: audit entries for events that change nothing else (reads,
-- exports, refused reads). A hash chain of its own, kept apart from the data store
-- so that a steady stream of reads does not turn every read into a write of the
-- data store. On SQLite it is a file of its own; on PostgreSQL these tables live
-- in the data database. Entries name ids and field names, never values.
CREATE TABLE access_head (
    id   INTEGER PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO access_head (id, seq, hash) VALUES (1, 0, X'');

CREATE TABLE access_log (
    seq        BIGINT PRIMARY KEY,
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
CREATE INDEX access_log_subject ON access_log (subject_id, seq);
