-- Steward schema v1. Written once for both engines: the store replaces BLOB with
-- BYTEA on PostgreSQL. Timestamps are BIGINT microseconds since the Unix epoch, UTC.
-- No column holds plaintext personal information: field values are sealed under
-- the subject's data key; lookups use keyed blind indexes.

CREATE TABLE subjects (
    id           TEXT PRIMARY KEY,
    status       TEXT NOT NULL,
    region       TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    cancelled_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE subject_indexes (
    kind       TEXT NOT NULL,
    value      BLOB NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    PRIMARY KEY (kind, value)
);
CREATE INDEX subject_indexes_subject ON subject_indexes (subject_id);

CREATE TABLE subject_fields (
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    field      TEXT NOT NULL,
    value      BLOB NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (subject_id, field)
);

CREATE TABLE consent_events (
    id             TEXT PRIMARY KEY,
    subject_id     TEXT NOT NULL REFERENCES subjects (id),
    purpose        TEXT NOT NULL,
    action         TEXT NOT NULL,
    separate       BOOLEAN NOT NULL,
    notice_version TEXT NOT NULL,
    method         TEXT NOT NULL,
    actor          TEXT NOT NULL,
    at             BIGINT NOT NULL
);
CREATE INDEX consent_events_subject ON consent_events (subject_id, at);

CREATE TABLE consents (
    subject_id     TEXT NOT NULL REFERENCES subjects (id),
    purpose        TEXT NOT NULL,
    granted        BOOLEAN NOT NULL,
    separate       BOOLEAN NOT NULL,
    notice_version TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    at             BIGINT NOT NULL,
    PRIMARY KEY (subject_id, purpose)
);

CREATE TABLE one_time_codes (
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
);
CREATE INDEX one_time_codes_target ON one_time_codes (target, created_at);
CREATE INDEX one_time_codes_client ON one_time_codes (client, created_at);
CREATE INDEX one_time_codes_subject ON one_time_codes (subject_id, purpose, created_at);

CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_subject ON sessions (subject_id);

CREATE TABLE api_tokens (
    token_hash BLOB PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    app_id     TEXT NOT NULL,
    roles      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, X'');

CREATE TABLE audit_log (
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
CREATE INDEX audit_log_subject ON audit_log (subject_id, seq);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    channel         TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         BLOB NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    delivered_at    BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (delivered_at, next_attempt_at);
