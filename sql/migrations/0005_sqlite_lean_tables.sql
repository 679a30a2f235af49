-- dialect: sqlite
-- Fewer B-trees per row on SQLite, where every B-tree an insert touches is a page
-- written to the WAL at commit. Tables keyed by a natural key become WITHOUT ROWID
-- (the key is the table, not an index beside it), and the audit log's sequence
-- number becomes the rowid. Rows are copied as they are; PostgreSQL is unchanged.

CREATE TABLE subjects_lean (
    id           TEXT PRIMARY KEY,
    status       TEXT NOT NULL,
    region       TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    cancelled_at BIGINT NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO subjects_lean SELECT id, status, region, key_id, created_at, cancelled_at FROM subjects;
DROP TABLE subjects;
ALTER TABLE subjects_lean RENAME TO subjects;

CREATE TABLE subject_indexes_lean (
    kind       TEXT NOT NULL,
    value      BLOB NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;
INSERT INTO subject_indexes_lean SELECT kind, value, subject_id FROM subject_indexes;
DROP TABLE subject_indexes;
ALTER TABLE subject_indexes_lean RENAME TO subject_indexes;
CREATE INDEX subject_indexes_subject ON subject_indexes (subject_id);

CREATE TABLE consent_events_lean (
    id             TEXT PRIMARY KEY,
    subject_id     TEXT NOT NULL REFERENCES subjects (id),
    purpose        TEXT NOT NULL,
    action         TEXT NOT NULL,
    separate       BOOLEAN NOT NULL,
    notice_version TEXT NOT NULL,
    method         TEXT NOT NULL,
    actor          TEXT NOT NULL,
    at             BIGINT NOT NULL
) WITHOUT ROWID;
INSERT INTO consent_events_lean SELECT id, subject_id, purpose, action, separate, notice_version, method, actor, at FROM consent_events;
DROP TABLE consent_events;
ALTER TABLE consent_events_lean RENAME TO consent_events;
CREATE INDEX consent_events_subject ON consent_events (subject_id, at);

CREATE TABLE consents_lean (
    subject_id     TEXT NOT NULL REFERENCES subjects (id),
    purpose        TEXT NOT NULL,
    granted        BOOLEAN NOT NULL,
    separate       BOOLEAN NOT NULL,
    notice_version TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    at             BIGINT NOT NULL,
    PRIMARY KEY (subject_id, purpose)
) WITHOUT ROWID;
INSERT INTO consents_lean SELECT subject_id, purpose, granted, separate, notice_version, event_id, at FROM consents;
DROP TABLE consents;
ALTER TABLE consents_lean RENAME TO consents;

CREATE TABLE one_time_codes_lean (
    id          TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL,
    target      BLOB NOT NULL,
    subject_id  TEXT NOT NULL,
    code_hash   BLOB NOT NULL,
    attempts    INTEGER NOT NULL,
    client      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    consumed_at BIGINT NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO one_time_codes_lean SELECT id, purpose, target, subject_id, code_hash, attempts, client, created_at, expires_at, consumed_at FROM one_time_codes;
DROP TABLE one_time_codes;
ALTER TABLE one_time_codes_lean RENAME TO one_time_codes;
CREATE INDEX one_time_codes_target ON one_time_codes (target, created_at);
CREATE INDEX one_time_codes_client ON one_time_codes (client, created_at);
CREATE INDEX one_time_codes_subject ON one_time_codes (subject_id, purpose, created_at);

CREATE TABLE sessions_lean (
    token_hash BLOB PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO sessions_lean SELECT token_hash, id, subject_id, created_at, expires_at, revoked_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_lean RENAME TO sessions;
CREATE INDEX sessions_subject ON sessions (subject_id);

CREATE TABLE audit_log_lean (
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
INSERT INTO audit_log_lean SELECT seq, id, at, actor_kind, actor_id, action, subject_id, purpose, fields, detail, prev_hash, hash FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_lean RENAME TO audit_log;
CREATE INDEX audit_log_subject ON audit_log (subject_id, seq);
