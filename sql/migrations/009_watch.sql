-- 009: the mailbox watcher's own state (issue 8). What an inbound message
-- does is relance_inbound's business (008); this file holds where each
-- watched folder was left, which replica watches which mailbox, and the
-- decision of what a pass must read after STATUS.
--
-- Times: leases use the database's real clock (they are about processes,
-- as in 005 and 006); "since" dates are about the IMAP server's internal
-- dates, which are real dates too. p_now (the service's clock, which
-- tests move) only stamps what relance_inbound records.

-- Per account and folder: the UIDVALIDITY the UIDs belong to, the last
-- UID handed to relance_inbound (or skipped as older than the watch), and
-- what the last STATUS said.
CREATE TABLE mailbox_state (
    account_id     bigint      NOT NULL REFERENCES accounts (id),
    folder         text        NOT NULL,
    uidvalidity    bigint      NOT NULL,
    last_uid       bigint      NOT NULL DEFAULT 0 CHECK (last_uid >= 0),
    uidnext        bigint,
    watching_since date        NOT NULL,   -- messages received before it are never read
    checked_at     timestamptz,            -- the last STATUS (real clock)
    PRIMARY KEY (account_id, folder)
);

-- Leases on watched mailboxes for a replica: renews those it holds and
-- takes those free or expired, among p_accounts (addresses). Returns the
-- addresses it holds. One replica at a time reads a mailbox.
CREATE FUNCTION relance_watch_leases(p_replica text, p_accounts text[], p_ttl_seconds int)
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
CREATE FUNCTION relance_watch_release(p_replica text)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM leases WHERE name LIKE 'watch:%' AND holder = p_replica
$$;

-- What a pass reads of a folder after its STATUS said p_uidvalidity and
-- p_uidnext: the UIDs from from_uid on (NULL: nothing new), received on
-- or after since (NULL: any date).
--   first sight, nothing ever sent from the account: nothing can answer
--     us yet; the folder's current end is the starting point.
--   first sight after sending: what arrived since the day before the
--     first send (older mail is never a reply to a sequence).
--   UIDVALIDITY changed: every UID is new again; a rescan from 1, bounded
--     by watching_since, and relance_inbound's dedupe by Message-ID keeps
--     what was counted from being counted twice.
--   otherwise: the UIDs after last_uid, when UIDNEXT moved past it.
CREATE FUNCTION relance_watch_status(p_account text, p_folder text, p_uidvalidity bigint, p_uidnext bigint)
RETURNS TABLE (from_uid bigint, since date) LANGUAGE plpgsql AS $$
DECLARE
    v_account bigint;
    s mailbox_state%ROWTYPE;
    v_first timestamptz;
    v_since date;
BEGIN
    SELECT id INTO v_account FROM accounts WHERE email = lower(btrim(p_account));
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no sender account %', p_account USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO s FROM mailbox_state WHERE account_id = v_account AND folder = p_folder FOR UPDATE;
    IF NOT FOUND THEN
        SELECT min(coalesce(m.sent_at, m.created_at)) INTO v_first FROM messages m
         WHERE m.account_id = v_account AND (m.state IN ('sent', 'bounced', 'unknown') OR m.body_started);
        -- the earlier of the first send and today: a test clock may run
        -- ahead of the server's dates
        v_since := least(coalesce(v_first::date, current_date), current_date) - 1;
        INSERT INTO mailbox_state (account_id, folder, uidvalidity, last_uid, uidnext, watching_since, checked_at)
        VALUES (v_account, p_folder, p_uidvalidity, CASE WHEN v_first IS NULL THEN greatest(p_uidnext - 1, 0) ELSE 0 END,
                p_uidnext, v_since, clock_timestamp());
        IF v_first IS NULL THEN
            RETURN;
        END IF;
        from_uid := 1;
        since := v_since;
        RETURN NEXT;
        RETURN;
    END IF;
    IF s.uidvalidity <> p_uidvalidity THEN
        UPDATE mailbox_state SET uidvalidity = p_uidvalidity, last_uid = 0, uidnext = p_uidnext,
                                 checked_at = clock_timestamp()
         WHERE account_id = v_account AND folder = p_folder;
        INSERT INTO events (kind, occurred_at, data)
        VALUES ('mailbox.uidvalidity_changed', clock_timestamp(),
                jsonb_build_object('account', lower(btrim(p_account)), 'folder', p_folder,
                                   'old', s.uidvalidity, 'new', p_uidvalidity));
        from_uid := 1;
        since := s.watching_since;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE mailbox_state SET uidnext = p_uidnext, checked_at = clock_timestamp()
     WHERE account_id = v_account AND folder = p_folder;
    IF p_uidnext > s.last_uid + 1 THEN
        from_uid := s.last_uid + 1;
        since := NULL;
        RETURN NEXT;
    END IF;
END $$;

-- The folder has been read up to p_uid (never moves back, and only
-- within the UIDVALIDITY the UIDs belong to).
CREATE FUNCTION relance_watch_advance(p_account text, p_folder text, p_uidvalidity bigint, p_uid bigint)
RETURNS void LANGUAGE sql AS $$
    UPDATE mailbox_state ms SET last_uid = greatest(ms.last_uid, p_uid)
      FROM accounts a
     WHERE a.email = lower(btrim(p_account)) AND ms.account_id = a.id AND ms.folder = p_folder
       AND ms.uidvalidity = p_uidvalidity
$$;

-- One fetched and classified message: relance_inbound, and the folder
-- read up to its UID, in one transaction (a crash between the two can
-- neither lose the message nor record it without moving on).
CREATE FUNCTION relance_watch_inbound(p_account text, p_folder text, p_uidvalidity bigint, p_uid bigint,
                                      p_message_id text, p_refs text[], p_from text, p_kind text, p_reason text,
                                      p_is_block boolean, p_recipients text[], p_return_date date,
                                      p_now timestamptz)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
BEGIN
    v := relance_inbound(p_account, p_folder, p_uidvalidity, p_uid, p_message_id, p_refs, p_from, p_kind,
                         p_reason, p_is_block, p_recipients, p_return_date, p_now);
    PERFORM relance_watch_advance(p_account, p_folder, p_uidvalidity, p_uid);
    RETURN v;
END $$;
