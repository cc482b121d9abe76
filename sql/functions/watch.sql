-- watch: the mailbox watcher's own state: where each watched folder was
-- left and what a pass must read after EXAMINE, and the batch that hands
-- fetched messages to relance_inbound (inbound.sql). Which replica
-- watches which mailbox is leases.sql's.
--
-- Times: "since" dates are about the IMAP server's internal dates, which
-- are real dates; p_now (the service's clock, which tests move) only
-- stamps what relance_inbound records.
--
-- Today's table (sql/schema.sql holds every constraint and index):
--
-- Per account and folder: the UIDVALIDITY the UIDs belong to, the last
-- UID handed to relance_inbound (or skipped as older than the watch), and
-- what the last STATUS said.
-- TABLE mailbox_state (
--     account_id     bigint      NOT NULL REFERENCES accounts -- PRIMARY KEY (account_id, folder)
--     folder         text        NOT NULL
--     uidvalidity    bigint      NOT NULL
--     last_uid       bigint      NOT NULL DEFAULT 0
--     uidnext        bigint
--     watching_since date        NOT NULL   -- messages received before it are never read
--     checked_at     timestamptz            -- the last STATUS (real clock)
-- )

-- What a pass reads of a folder after its EXAMINE said p_uidvalidity,
-- p_uidnext and p_exists: the UIDs from from_uid on (NULL: nothing new),
-- received on or after since (NULL: any date).
--   first sight, nothing ever sent from the account: nothing can answer
--     us yet; the folder's current end is the starting point.
--   first sight after sending: what arrived since the day before the
--     first send (older mail is never a reply to a sequence).
--   UIDVALIDITY changed, folder empty (UIDNEXT 1: no UID was ever given
--     under this UIDVALIDITY, as Courier does for an empty folder at every
--     session; or EXISTS 0: everything was expunged): nothing to read
--     again; the new value is recorded, read up to UIDNEXT - 1, no event.
--   UIDVALIDITY changed: every UID is new again; a rescan from 1, bounded
--     by watching_since, and relance_inbound's dedupe by Message-ID keeps
--     what was counted from being counted twice.
--   otherwise: the UIDs after last_uid, when UIDNEXT moved past it.
-- p_exists NULL means unknown (then only UIDNEXT 1 counts as empty).
CREATE OR REPLACE FUNCTION relance_watch_status(p_account text, p_folder text, p_uidvalidity bigint, p_uidnext bigint,
                                     p_exists bigint DEFAULT NULL)
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
        IF p_uidnext <= 1 OR p_exists = 0 THEN
            -- no message below UIDNEXT: the folder is read up to it
            UPDATE mailbox_state SET uidvalidity = p_uidvalidity, last_uid = greatest(p_uidnext - 1, 0),
                                     uidnext = p_uidnext, checked_at = clock_timestamp()
             WHERE account_id = v_account AND folder = p_folder;
            RETURN;
        END IF;
        UPDATE mailbox_state SET uidvalidity = p_uidvalidity, last_uid = 0, uidnext = p_uidnext,
                                 checked_at = clock_timestamp()
         WHERE account_id = v_account AND folder = p_folder;
        PERFORM relance_event('mailbox.uidvalidity_changed', clock_timestamp(), NULL, NULL, NULL,
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
CREATE OR REPLACE FUNCTION relance_watch_advance(p_account text, p_folder text, p_uidvalidity bigint, p_uid bigint)
RETURNS void LANGUAGE sql AS $$
    UPDATE mailbox_state ms SET last_uid = greatest(ms.last_uid, p_uid)
      FROM accounts a
     WHERE a.email = lower(btrim(p_account)) AND ms.account_id = a.id AND ms.folder = p_folder
       AND ms.uidvalidity = p_uidvalidity
$$;

-- The watcher records what it fetched a batch at a time. One UID FETCH
-- brings up to 50 messages; one statement records them all and moves the
-- folder's progress past the batch, in one transaction (a crash can
-- neither lose a message nor record it without moving on). One round trip
-- per batch instead of one per message: a backlog of thousands is read in
-- seconds, and the race check before a follow-up waits for all of it.
--
-- The arrays are parallel, one element per fetched message, in UID
-- order. p_refs and p_recipients hold each message's text[] as the text
-- of an array literal ('{"a@b","c@d"}'), since PostgreSQL has no ragged
-- arrays. p_through is the batch's last asked UID: a message expunged
-- between the search and the fetch is moved past too.
CREATE OR REPLACE FUNCTION relance_watch_inbound_batch(p_account text, p_folder text, p_uidvalidity bigint, p_uids bigint[],
                                            p_message_ids text[], p_refs text[], p_froms text[], p_kinds text[],
                                            p_reasons text[], p_is_block boolean[], p_recipients text[],
                                            p_return_dates date[], p_through bigint, p_now timestamptz,
                                            p_refusals text[])
RETURNS TABLE (uid bigint, result jsonb) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_uids, 1), 0) LOOP
        uid := p_uids[i];
        result := relance_inbound(p_account, p_folder, p_uidvalidity, p_uids[i], p_message_ids[i],
                                  p_refs[i]::text[], p_froms[i], p_kinds[i], p_reasons[i], p_is_block[i],
                                  p_recipients[i]::text[], p_return_dates[i], p_now, p_refusals[i]);
        RETURN NEXT;
    END LOOP;
    PERFORM relance_watch_advance(p_account, p_folder, p_uidvalidity, p_through);
END $$;

-- The previous release's form, without the bounces' refusals of the
-- account (p_refusals): its replicas may still watch while this one
-- migrates (rolling upgrade, service/migrate.c); a later migration drops it.
CREATE OR REPLACE FUNCTION relance_watch_inbound_batch(p_account text, p_folder text, p_uidvalidity bigint, p_uids bigint[],
                                            p_message_ids text[], p_refs text[], p_froms text[], p_kinds text[],
                                            p_reasons text[], p_is_block boolean[], p_recipients text[],
                                            p_return_dates date[], p_through bigint, p_now timestamptz)
RETURNS TABLE (uid bigint, result jsonb) LANGUAGE sql AS $$
    SELECT * FROM relance_watch_inbound_batch(p_account, p_folder, p_uidvalidity, p_uids, p_message_ids, p_refs,
                                              p_froms, p_kinds, p_reasons, p_is_block, p_recipients,
                                              p_return_dates, p_through, p_now, NULL::text[])
$$;
