-- api_keys: the HTTP API's bearer keys as `relance api-keys` manages
-- them: create (from an id and a hash the command computed: the key
-- itself never reaches the database), list, revoke. Checking a presented
-- key, and stamping last_used_at, is the HTTP side's.
--
-- Today's tables (sql/schema.sql holds every constraint and index):
--
-- A key "rl_<id>_<secret>": its id, and the SHA-256 of the whole string.
-- TABLE api_keys (
--     id           text        PRIMARY KEY    -- 12 of [A-Za-z0-9]
--     name         text        NOT NULL       -- unique among keys not revoked
--     scopes       text[]      NOT NULL       -- at least one; service/lib/apikey.c lists them
--     secret_hash  bytea       NOT NULL       -- 32 bytes
--     created_at   timestamptz NOT NULL DEFAULT now()
--     last_used_at timestamptz
--     revoked_at   timestamptz                -- NULL: live
-- )
--
-- A POST's Idempotency-Key, per key, kept 24 hours.
-- TABLE api_idempotency (
--     key_id       text        NOT NULL REFERENCES api_keys -- PRIMARY KEY (key_id, idem_key)
--     idem_key     text        NOT NULL
--     request_hash bytea       NOT NULL
--     created_at   timestamptz NOT NULL DEFAULT now()
--     status       int                        -- NULL: the first request is still running
--     content_type text
--     body         text
-- )

-- Stores a new key. A name a live key already holds is refused with a
-- message that names that key (the partial unique index would refuse it
-- too, in words less useful to whoever typed the command). Returns
-- nothing: whatever the caller gave stays with the caller.
CREATE OR REPLACE FUNCTION relance_api_key_create(p_id text, p_name text, p_scopes text[], p_secret_hash bytea,
                                                  p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_other text;
BEGIN
    SELECT id INTO v_other FROM api_keys WHERE name = p_name AND revoked_at IS NULL;
    IF FOUND THEN
        RAISE EXCEPTION 'API key % is already named ''%'': revoke it first, or choose another name', v_other, p_name
              USING ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO api_keys (id, name, scopes, secret_hash, created_at)
    VALUES (p_id, p_name, p_scopes, p_secret_hash, p_now);
END
$$;

-- Every key, oldest first, revoked ones included; never the hash.
CREATE OR REPLACE FUNCTION relance_api_keys_list()
RETURNS TABLE (id text, name text, scopes text[], created_at timestamptz, last_used_at timestamptz,
               revoked_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT k.id, k.name, k.scopes, k.created_at, k.last_used_at, k.revoked_at
      FROM api_keys k
     ORDER BY k.created_at, k.id
$$;

-- Revokes a key from p_now on. One row: when the key is revoked, and
-- whether it already was (then its first revocation stands); no row when
-- there is no such key.
CREATE OR REPLACE FUNCTION relance_api_key_revoke(p_id text, p_now timestamptz)
RETURNS TABLE (revoked_at timestamptz, already boolean)
LANGUAGE sql AS $$
    WITH k AS (SELECT id, revoked_at FROM api_keys WHERE id = p_id FOR UPDATE),
         up AS (UPDATE api_keys a SET revoked_at = p_now FROM k
                 WHERE a.id = k.id AND k.revoked_at IS NULL RETURNING a.revoked_at)
    SELECT coalesce((SELECT up.revoked_at FROM up), k.revoked_at), k.revoked_at IS NOT NULL FROM k
$$;
