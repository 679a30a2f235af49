-- An erasure deletes the subject's queued messages (DeleteMessages): without an
-- index that scans the whole outbox, which keeps a row for every message ever
-- sent. Partial: messages to no subject yet (registration codes) are most of the
-- outbox and are never looked up by subject, so sending one costs no index entry.

CREATE INDEX outbox_subject ON outbox (subject_id) WHERE subject_id <> '';
