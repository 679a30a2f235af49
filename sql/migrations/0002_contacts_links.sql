-- Contact shielding (P6) and tracked links (P9). No column holds plaintext personal
-- information: address-book numbers are keyed blind indexes, link destinations are
-- sealed under the subject's data key, unsubscribe tokens are keyed hashes.

-- One row per subject who uploaded an address book: counts and time only.
CREATE TABLE contact_books (
    subject_id  TEXT PRIMARY KEY REFERENCES subjects (id),
    numbers     INTEGER NOT NULL,
    imported_at BIGINT NOT NULL
);
CREATE INDEX contact_books_imported ON contact_books (imported_at);

-- The blind indexes of the distinct valid numbers in each book. The primary key
-- serves "the hashes of this book"; the index on hash serves "whose books hold this
-- number", the other half of every shielding decision.
CREATE TABLE contact_hashes (
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    hash       BLOB NOT NULL,
    PRIMARY KEY (subject_id, hash)
);
CREATE INDEX contact_hashes_hash ON contact_hashes (hash);

CREATE TABLE links (
    id               TEXT PRIMARY KEY,
    subject_id       TEXT NOT NULL REFERENCES subjects (id),
    app_id           TEXT NOT NULL,
    campaign         TEXT NOT NULL,
    destination      BLOB NOT NULL,
    unsubscribe_hash BLOB NOT NULL UNIQUE,
    created_at       BIGINT NOT NULL
);
CREATE INDEX links_subject ON links (subject_id, created_at);

-- Which link was clicked and when: nothing about the device or network.
CREATE TABLE link_clicks (
    id         TEXT PRIMARY KEY,
    link_id    TEXT NOT NULL REFERENCES links (id),
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    clicked_at BIGINT NOT NULL
);
CREATE INDEX link_clicks_subject ON link_clicks (subject_id, clicked_at);
CREATE INDEX link_clicks_at ON link_clicks (clicked_at);

-- Retention of sealed fields by age (RunRetention).
CREATE INDEX subject_fields_field_updated ON subject_fields (field, updated_at);
