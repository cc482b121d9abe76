-- 019: the claim cycle's rotation reads which accounts have a message in
-- flight.
--
-- relance serve claims for all of a cycle's accounts in one statement
-- (relance_claim_accounts, sql/functions/claim.sql), and its rotation
-- passes over an account with a message claimed and not yet answered
-- (state 'sending'): its replica claims for it again only once they are
-- back. That test runs for every account of the pool at every cycle, so
-- it must be one index probe, not a walk through the account's history.
CREATE INDEX messages_in_flight ON messages (account_id) WHERE state = 'sending';

-- The capture transport's per-account claim, never released: capture
-- claims with relance_claim_accounts too.
DROP FUNCTION IF EXISTS relance_claim_account_captured(timestamptz, bigint, int, text);
