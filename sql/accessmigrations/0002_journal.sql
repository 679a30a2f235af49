-- How far each access journal segment has been moved into access_log, written
-- in the same transaction as the entries moved (see sql/journal.go). A row lives
-- as long as its segment file.
CREATE TABLE access_journal (
    segment  TEXT PRIMARY KEY,
    moved_to BIGINT NOT NULL
);
