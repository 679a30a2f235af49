-- Recipients, disclosures, recipient notices, legal holds and deletion
-- certificates (P10, P18, P19, P21, P27). No column holds plaintext personal
-- information: held copies are sealed under each hold's own data key, signing
-- secrets under the outbox key; field lists are comma-separated field names.

CREATE TABLE recipients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    webhook_url   TEXT NOT NULL,
    secret        BLOB NOT NULL,
    agreement_ref TEXT NOT NULL,
    purposes      TEXT NOT NULL,
    fields        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL
);

CREATE TABLE disclosures (
    id           TEXT PRIMARY KEY,
    subject_id   TEXT NOT NULL REFERENCES subjects (id),
    recipient_id TEXT NOT NULL REFERENCES recipients (id),
    purpose      TEXT NOT NULL,
    fields       TEXT NOT NULL,
    app_id       TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX disclosures_subject ON disclosures (subject_id, at);

CREATE TABLE recipient_notices (
    id           TEXT PRIMARY KEY,
    recipient_id TEXT NOT NULL REFERENCES recipients (id),
    subject_id   TEXT NOT NULL,
    event        TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    fields       TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    due_at       BIGINT NOT NULL,
    acked_at     BIGINT NOT NULL DEFAULT 0,
    ack_outcome  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX recipient_notices_pending ON recipient_notices (acked_at, due_at);
CREATE INDEX recipient_notices_request ON recipient_notices (request_id);

CREATE TABLE legal_holds (
    id             TEXT PRIMARY KEY,
    subject_id     TEXT NOT NULL REFERENCES subjects (id),
    fields         TEXT NOT NULL,
    hold_case      TEXT NOT NULL,
    reference      TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    until_at       BIGINT NOT NULL DEFAULT 0,
    key_id         TEXT NOT NULL,
    placed_at      BIGINT NOT NULL,
    placed_by      TEXT NOT NULL,
    released_at    BIGINT NOT NULL DEFAULT 0,
    released_by    TEXT NOT NULL DEFAULT '',
    release_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX legal_holds_subject ON legal_holds (subject_id, placed_at);

CREATE TABLE held_fields (
    hold_id    TEXT NOT NULL REFERENCES legal_holds (id),
    subject_id TEXT NOT NULL,
    field      TEXT NOT NULL,
    value      BLOB NOT NULL,
    sealed_at  BIGINT NOT NULL,
    PRIMARY KEY (hold_id, field)
);

CREATE TABLE deletion_certificates (
    id         TEXT PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    subject_id TEXT NOT NULL,
    body       BLOB NOT NULL,
    issued_at  BIGINT NOT NULL
);
