-- Rights requests, their events, fees and reminders, and automated decisions
-- (policy §6, §10; P17-P24, P30). No column holds plaintext personal information:
-- the subject's words, correction values, identity-check references, refusal
-- explanations, answers and decision outcomes are sealed under the subject's data
-- key, so erasing the subject makes them unreadable in every copy too. Event
-- reasons are codes and staff notes written without PI. Dates (due_on) are civil
-- dates "YYYY-MM-DD" in the legal time zone; instants are BIGINT microseconds.

CREATE TABLE requests (
    id                     TEXT PRIMARY KEY,
    subject_id             TEXT NOT NULL REFERENCES subjects (id),
    type                   TEXT NOT NULL,
    state                  TEXT NOT NULL,
    received_at            BIGINT NOT NULL,
    due_on                 TEXT NOT NULL DEFAULT '',
    due_at                 BIGINT NOT NULL DEFAULT 0,
    verified_at            BIGINT NOT NULL DEFAULT 0,
    verification_method    TEXT NOT NULL DEFAULT '',
    verified_by            TEXT NOT NULL DEFAULT '',
    verification_reference BLOB NOT NULL DEFAULT X'',
    deletion_ground        TEXT NOT NULL DEFAULT '',
    refusal_ground         TEXT NOT NULL DEFAULT '',
    refusal_explanation    BLOB NOT NULL DEFAULT X'',
    complaint_channel      TEXT NOT NULL DEFAULT '',
    primary_id             TEXT NOT NULL DEFAULT '',
    purpose                TEXT NOT NULL DEFAULT '',
    decision_id            TEXT NOT NULL DEFAULT '',
    assigned_to            TEXT NOT NULL DEFAULT '',
    input                  BLOB NOT NULL DEFAULT X'',
    fulfil_state           TEXT NOT NULL DEFAULT '',
    fulfil_started_at      BIGINT NOT NULL DEFAULT 0,
    result                 TEXT NOT NULL DEFAULT '',
    answer                 BLOB NOT NULL DEFAULT X'',
    -- subject/type/scope while the request is open, NULL once closed: at most one
    -- open request per key, so duplicates merge (steward.RequestRecord.DuplicateKey).
    open_key               TEXT UNIQUE,
    version                BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX requests_subject ON requests (subject_id, type, received_at);
CREATE INDEX requests_queue ON requests (state, due_at);
CREATE INDEX requests_primary ON requests (primary_id);

CREATE TABLE request_events (
    request_id TEXT NOT NULL REFERENCES requests (id),
    seq        INTEGER NOT NULL,
    at         BIGINT NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    PRIMARY KEY (request_id, seq)
);

-- The fee an excessive repeat carries (policy §6): the declared amount and how
-- many earlier requests in the window made it excessive.
CREATE TABLE request_fees (
    request_id   TEXT PRIMARY KEY REFERENCES requests (id),
    amount_minor BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    prior_count  INTEGER NOT NULL,
    assessed_at  BIGINT NOT NULL
);

-- One deadline reminder per request and threshold (due_soon, overdue).
CREATE TABLE request_reminders (
    request_id TEXT NOT NULL REFERENCES requests (id),
    threshold  TEXT NOT NULL,
    sent_at    BIGINT NOT NULL,
    PRIMARY KEY (request_id, threshold)
);

CREATE TABLE decisions (
    id                TEXT PRIMARY KEY,
    subject_id        TEXT NOT NULL REFERENCES subjects (id),
    system            TEXT NOT NULL,
    app_id            TEXT NOT NULL,
    outcome           BLOB NOT NULL,
    inputs            TEXT NOT NULL,
    solely_automated  BOOLEAN NOT NULL,
    made_at           BIGINT NOT NULL,
    review_request_id TEXT NOT NULL DEFAULT '',
    review_outcome    TEXT NOT NULL DEFAULT '',
    reviewed_at       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX decisions_subject ON decisions (subject_id, made_at);

CREATE TABLE decision_opt_outs (
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    system     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (subject_id, system)
);
