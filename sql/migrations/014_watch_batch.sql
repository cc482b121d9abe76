-- 014: the watcher records what it fetched a batch at a time (issue 14).
-- One UID FETCH brings up to 50 messages; one statement records them all
-- and moves the folder's progress past the batch, in one transaction, as
-- relance_watch_inbound did for one message (a crash can neither lose a
-- message nor record it without moving on). One round trip per batch
-- instead of one per message: a backlog of thousands is read in seconds,
-- and the race check before a follow-up waits for all of it.
--
-- The arrays are parallel, one element per fetched message, in UID
-- order. p_refs and p_recipients hold each message's text[] as the text
-- of an array literal ('{"a@b","c@d"}'), since PostgreSQL has no ragged
-- arrays. p_through is the batch's last asked UID: a message expunged
-- between the search and the fetch is moved past too.
CREATE FUNCTION relance_watch_inbound_batch(p_account text, p_folder text, p_uidvalidity bigint, p_uids bigint[],
                                            p_message_ids text[], p_refs text[], p_froms text[], p_kinds text[],
                                            p_reasons text[], p_is_block boolean[], p_recipients text[],
                                            p_return_dates date[], p_through bigint, p_now timestamptz)
RETURNS TABLE (uid bigint, result jsonb) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_uids, 1), 0) LOOP
        uid := p_uids[i];
        result := relance_inbound(p_account, p_folder, p_uidvalidity, p_uids[i], p_message_ids[i],
                                  p_refs[i]::text[], p_froms[i], p_kinds[i], p_reasons[i], p_is_block[i],
                                  p_recipients[i]::text[], p_return_dates[i], p_now);
        RETURN NEXT;
    END LOOP;
    PERFORM relance_watch_advance(p_account, p_folder, p_uidvalidity, p_through);
END $$;

-- The one-message form is replaced by the batch.
DROP FUNCTION relance_watch_inbound(text, text, bigint, bigint, text, text[], text, text, text, boolean, text[],
                                    date, timestamptz);
