-- 016: an empty folder's new UIDVALIDITY is accepted silently (issue 15).
--
-- Courier hands an empty folder a new UIDVALIDITY at every session, and
-- relance_watch_status (009) answered each one with a rescan from UID 1
-- and a 'mailbox.uidvalidity_changed' event: an event per pass for
-- nothing. A folder with no message (UIDNEXT 1: no UID was ever given
-- under this UIDVALIDITY; or EXISTS 0: everything was expunged) has
-- nothing to read again, so its new UIDVALIDITY is simply recorded, read
-- up to UIDNEXT - 1 (0 for Courier's UIDNEXT 1; below UIDNEXT no message
-- exists, and UIDs only grow), and the pass moves on. A folder with messages behaves as in
-- 009.
--
-- p_exists is what EXAMINE said (EXISTS). It defaults to NULL, meaning
-- unknown (then only UIDNEXT 1 counts as empty), so a replica still on
-- the four-argument call keeps working during a rolling upgrade.
DROP FUNCTION relance_watch_status(text, text, bigint, bigint);

-- What a pass reads of a folder after its EXAMINE said p_uidvalidity,
-- p_uidnext and p_exists: the UIDs from from_uid on (NULL: nothing new),
-- received on or after since (NULL: any date).
--   first sight, nothing ever sent from the account: nothing can answer
--     us yet; the folder's current end is the starting point.
--   first sight after sending: what arrived since the day before the
--     first send (older mail is never a reply to a sequence).
--   UIDVALIDITY changed, folder empty: nothing to read again; the new
--     value is recorded, no event.
--   UIDVALIDITY changed: every UID is new again; a rescan from 1, bounded
--     by watching_since, and relance_inbound's dedupe by Message-ID keeps
--     what was counted from being counted twice.
--   otherwise: the UIDs after last_uid, when UIDNEXT moved past it.
CREATE FUNCTION relance_watch_status(p_account text, p_folder text, p_uidvalidity bigint, p_uidnext bigint,
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
