-- Outbox claims: which `steward serve` process may deliver a message, and until
-- when. Two processes on one database each deliver only the messages they hold a
-- live claim on (steward.OutboxLease), so a message goes out once. claimed_by is
-- the process's instance id ('' for a message queued unclaimed, by a command-line
-- tool); claimed_until is BIGINT microseconds since the Unix epoch, UTC, 0 for
-- none. Rows queued before this migration are unclaimed: any worker may take them.

ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;
