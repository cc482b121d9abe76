-- leases: which replica owns what. One replica at a time owns a sender
-- account ('account:ID') or a watched mailbox ('watch:ADDRESS'), and each
-- running `relance serve` holds 'replica:ID' while it lives. A lease
-- expires unless renewed, so a dead replica's work moves on. Leases use
-- the database's real clock (clock_timestamp()): they are about
-- processes, not schedules, so the test clock never moves them.
--
-- Today's table:
--
-- TABLE leases (
--     name       text        PRIMARY KEY
--     holder     text        NOT NULL
--     expires_at timestamptz NOT NULL
-- )

-- Each running `relance serve` holds a lease 'replica:ID', renewed while
-- it lives (leases use the database's real clock: they are about
-- processes, not schedules).
CREATE OR REPLACE FUNCTION relance_replica_alive(p_replica text, p_ttl_seconds int)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO leases (name, holder, expires_at)
    VALUES ('replica:' || p_replica, p_replica, clock_timestamp() + make_interval(secs => p_ttl_seconds))
    ON CONFLICT (name) DO UPDATE SET expires_at = EXCLUDED.expires_at
$$;

-- Leases on accounts for a replica: renews those it holds and takes
-- those free or expired. Returns the account ids it holds.
CREATE OR REPLACE FUNCTION relance_account_leases(p_replica text, p_ttl_seconds int)
RETURNS SETOF bigint LANGUAGE sql AS $$
    INSERT INTO leases (name, holder, expires_at)
    SELECT 'account:' || a.id, p_replica, clock_timestamp() + make_interval(secs => p_ttl_seconds)
      FROM accounts a WHERE a.configured
    ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
     WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < clock_timestamp()
    RETURNING substr(name, 9)::bigint
$$;

-- Gives a replica's account leases up, so another replica (or the same
-- one restarted) takes them at its next renewal rather than after the
-- expiry. The scheduler calls it last when it stops, once its sender has
-- closed: no message of these accounts can still go out from this
-- replica, so another one claiming from them keeps the per-account caps
-- and spacing exact. Returns how many leases it gave up.
CREATE OR REPLACE FUNCTION relance_release_account_leases(p_replica text)
RETURNS int LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM leases WHERE name LIKE 'account:%' AND holder = p_replica RETURNING 1)
    SELECT count(*)::int FROM gone
$$;

-- Leases on watched mailboxes for a replica: renews those it holds and
-- takes those free or expired, among p_accounts (addresses). Returns the
-- addresses it holds. One replica at a time reads a mailbox.
CREATE OR REPLACE FUNCTION relance_watch_leases(p_replica text, p_accounts text[], p_ttl_seconds int)
RETURNS SETOF text LANGUAGE sql AS $$
    INSERT INTO leases (name, holder, expires_at)
    SELECT DISTINCT 'watch:' || lower(btrim(a)), p_replica, clock_timestamp() + make_interval(secs => p_ttl_seconds)
      FROM unnest(p_accounts) a
    ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
     WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < clock_timestamp()
    RETURNING substr(name, 7)
$$;

-- Gives a replica's mailbox leases up (a clean stop), so another replica
-- takes them at its next renewal rather than after the expiry.
CREATE OR REPLACE FUNCTION relance_watch_release(p_replica text)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM leases WHERE name LIKE 'watch:%' AND holder = p_replica
$$;
