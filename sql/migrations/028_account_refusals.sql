-- 028: sender protection. The temporary policy refusals (4.7.x: throttling,
-- a temporary authentication refusal) an account's messages met, by code,
-- so that the same code three times within an hour pauses the account
-- (relance_account_refused, sql/functions/accounts.sql). Rows older than
-- the hour are deleted as new ones come: a few rows per account. Only the
-- code is kept, never the server's words (they may name the recipient).
CREATE TABLE account_refusals (
    account_id bigint      NOT NULL REFERENCES accounts,
    status     text        NOT NULL,  -- the enhanced status, "4.7.26"
    at         timestamptz NOT NULL
);
CREATE INDEX account_refusals_account ON account_refusals (account_id, status, at);
