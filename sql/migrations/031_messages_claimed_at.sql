-- 031: when a message was last claimed. A deferred message is claimed
-- again later, keeping its row (and created_at, the first claim); the cap
-- counts each claim on the account's day of that claim, so a deferral
-- must give the count back to that same day, which created_at cannot
-- tell once the message was claimed on an earlier day too
-- (relance_step_deferred, sql/functions/outcomes.sql). NULL on rows
-- claimed before this migration: their created_at is that claim.
ALTER TABLE messages ADD COLUMN claimed_at timestamptz;
