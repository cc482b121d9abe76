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
--
-- Each tenure of an account or mailbox lease, written by the trigger
-- below (migration 030):
--
-- TABLE lease_history (
--     id       bigserial   PRIMARY KEY
--     name     text        NOT NULL
--     holder   text        NOT NULL
--     since    timestamptz NOT NULL
--     until    timestamptz NOT NULL
--     released boolean     NOT NULL DEFAULT false
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

-- The lease history: a lease taken (inserted, or moved to another
-- holder, or taken back by its holder after it ran out) opens a tenure;
-- a renewal moves the tenure's end to the new expiry; a release ends it
-- now. Leases change under their row's lock, so a lease's tenures follow
-- each other in id order. Tenures older than 30 days go when a new one of
-- the same lease opens: the history stays bounded without a pruning job.
CREATE OR REPLACE FUNCTION relance_lease_history() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE lease_history SET until = least(until, clock_timestamp()), released = true
         WHERE id = (SELECT max(id) FROM lease_history WHERE name = OLD.name AND holder = OLD.holder)
           AND NOT released;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.holder = NEW.holder AND OLD.expires_at >= clock_timestamp() THEN
        UPDATE lease_history SET until = NEW.expires_at
         WHERE id = (SELECT max(id) FROM lease_history WHERE name = NEW.name AND holder = NEW.holder);
        IF FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    DELETE FROM lease_history WHERE name = NEW.name AND until < clock_timestamp() - interval '30 days';
    INSERT INTO lease_history (name, holder, since, until)
    VALUES (NEW.name, NEW.holder, clock_timestamp(), NEW.expires_at);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER lease_history_taken AFTER INSERT OR UPDATE ON leases
    FOR EACH ROW WHEN (NEW.name NOT LIKE 'replica:%') EXECUTE FUNCTION relance_lease_history();
CREATE OR REPLACE TRIGGER lease_history_given_up AFTER DELETE ON leases
    FOR EACH ROW WHEN (OLD.name NOT LIKE 'replica:%') EXECUTE FUNCTION relance_lease_history();
