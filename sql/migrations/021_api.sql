-- 021: the HTTP API's keys and its idempotency records (issue 19).
--
-- A key is "rl_<id>_<secret>" (service/lib/apikey.c). Only the id and the
-- SHA-256 of the whole string are stored: the key is shown once when
-- `relance api-keys create` makes it, and nothing here can give it back.
-- A revoked key keeps its row (revoked_at), so lists and logs that name
-- its id still find what it was.
CREATE TABLE api_keys (
    id           text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9]{12}$'),
    name         text        NOT NULL CHECK (name <> ''),
    scopes       text[]      NOT NULL CHECK (cardinality(scopes) > 0),
    secret_hash  bytea       NOT NULL CHECK (length(secret_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
-- A name says which integration holds a key: two live keys never share
-- one, while a revoked key's name is free again for its replacement.
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;

-- One row per (key, Idempotency-Key) of a POST: the hash of the request
-- it came with (a replay with another body is refused) and, once the
-- first request finished, the answer a replay gets. status NULL: the
-- first request is still running.
CREATE TABLE api_idempotency (
    key_id       text        NOT NULL REFERENCES api_keys (id),
    idem_key     text        NOT NULL,
    request_hash bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    status       int,
    content_type text,
    body         text,
    PRIMARY KEY (key_id, idem_key)
);
-- Records are kept 24 hours; the pruning deletes by age.
CREATE INDEX api_idempotency_created_at ON api_idempotency (created_at);
