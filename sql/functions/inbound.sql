-- inbound: what an inbound message does (DESIGN semantics 2 and 6).
--
-- The mailbox watcher fetches and classifies each new message of a sender
-- account's mailbox and hands it to relance_inbound (through
-- relance_watch_inbound_batch, watch.sql); everything it then does to
-- enrollments, contacts, suppressions and the account is decided here, in
-- one transaction:
--
--   human_reply          the enrollment is 'replied' (if stop_on has reply);
--                        with company_reply, the contact's colleagues stop too
--   unsubscribe_request  the address is suppressed and every enrollment of the
--                        contact is 'unsubscribed'
--   auto_reply           not a reply; a return date holds the next step until
--                        that day's window opens in the step's zone
--   hard_bounce          the address is suppressed, the contact 'bounced', the
--                        message 'bounced' (as an SMTP-time 5.1.1 does: outcomes.sql)
--   soft_bounce          counted per contact; the third makes it hard
--   soft_bounce + block  counted against the account (never the address), which
--                        pauses after max_policy_blocks in 24 h, as a 5.7.x does
--   a bounce refusing the account itself (p_refusal: 5.7.26, 5.7.515...,
--                        refusal.h)  a block that pauses the account at once,
--                        with the server's words, as at SMTP time; the
--                        address is never suppressed and the enrollment goes
--                        on once the account is resumed
--   other                recorded, nothing else
--
-- Every message is recorded once in inbound_messages (a second call with
-- the same message changes nothing and says 'duplicate'), and every
-- detection writes an event: the feed `relance stats` and the CRM read.
--
-- Today's table (sql/schema.sql holds every constraint and index):
--
-- TABLE inbound_messages (
--     id              bigserial   PRIMARY KEY
--     account_id      bigint      NOT NULL REFERENCES accounts
--     folder          text        NOT NULL
--     uidvalidity     bigint      NOT NULL
--     uid             bigint      NOT NULL
--     message_id      text                          -- its own Message-ID without <>; NULL when none
--     sender          text        NOT NULL          -- From, lower-case
--     kind            text        NOT NULL          -- human_reply auto_reply hard_bounce soft_bounce
--                                                   -- unsubscribe_request other
--     reason          text        NOT NULL DEFAULT 'none' -- the bounce reason (classify_reason_names)
--     is_block        boolean     NOT NULL DEFAULT false
--     return_date     date
--     effect          text        NOT NULL DEFAULT 'pending' -- pending replied unsubscribed bounced
--                                                   -- soft_bounce blocked auto_reply ignored unmatched
--     effect_reason   text
--     matched_by      text                          -- message-id, sender, recipient
--     enrollment_id   bigint      REFERENCES enrollments
--     matched_message bigint      REFERENCES messages -- the message of ours it answers or returns
--     detected_at     timestamptz NOT NULL
--     pruned_at       timestamptz                   -- retention stripped its sender (retention.sql)
-- )
-- Deduped by (account_id, message_id) when it has one, else by its place
-- (account_id, folder, uidvalidity, uid).

-- One event about an inbound message: what the CRM needs to act on it
-- without another query (enrollment, contact, account, sequence, the
-- step and A/B variant of the message it answers, when it was seen),
-- plus p_extra.
CREATE OR REPLACE FUNCTION relance_inbound_event(p_kind text, p_inbound bigint, p_enrollment bigint, p_message bigint,
                                      p_extra jsonb) RETURNS void
LANGUAGE sql AS $$
    SELECT relance_event(p_kind, i.detected_at, NULL, p_enrollment, p_message,
                         jsonb_strip_nulls(jsonb_build_object('message_id', m.message_id, 'account', a.email,
                                                              'position', m.position, 'detected_at', i.detected_at,
                                                              'inbound_id', i.id, 'inbound_kind', i.kind))
                         || coalesce(p_extra, '{}'::jsonb))
      FROM inbound_messages i
      JOIN accounts a ON a.id = i.account_id
      LEFT JOIN messages m ON m.id = p_message
     WHERE i.id = p_inbound
$$;

-- Stops the live enrollments among p_ids (locked in id order, so two
-- detections stopping the same company cannot deadlock) and writes an
-- 'enrollment.stopped' event for each. Returns how many stopped.
CREATE OR REPLACE FUNCTION relance_inbound_stop(p_ids bigint[], p_state text, p_reason text, p_now timestamptz,
                                     p_inbound bigint, p_cause bigint) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    n int := 0;
BEGIN
    FOR v_id IN SELECT id FROM enrollments WHERE id = ANY (p_ids) AND state IN ('active', 'paused', 'held')
                 ORDER BY id FOR UPDATE
    LOOP
        UPDATE enrollments SET state = p_state, state_reason = p_reason, state_changed_at = p_now, next_send_at = NULL
         WHERE id = v_id;
        PERFORM relance_inbound_event('enrollment.stopped', p_inbound, v_id, NULL,
                                      jsonb_build_object('state', p_state, 'reason', p_reason,
                                                         'because_of_enrollment_id', p_cause));
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- Suppresses a contact's address for good (p_why: the suppression's
-- reason) and stops all its live enrollments but p_except. Returns how
-- many stopped.
CREATE OR REPLACE FUNCTION relance_inbound_suppress(p_contact bigint, p_except bigint, p_state text, p_why text,
                                         p_now timestamptz, p_inbound bigint) RETURNS int
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO suppressions (pattern, reason, created_at)
    SELECT c.email_key, p_why, p_now FROM contacts c WHERE c.id = p_contact
    ON CONFLICT (pattern) DO NOTHING;
    RETURN relance_inbound_stop(ARRAY(SELECT id FROM enrollments WHERE contact_id = p_contact AND id <> p_except),
                                p_state, 'address suppressed: ' || p_why, p_now, p_inbound, p_except);
END $$;

-- A message without a refusal of the account: the form of the previous
-- release (and of tests that record a message by hand).
CREATE OR REPLACE FUNCTION relance_inbound(p_account text, p_folder text, p_uidvalidity bigint, p_uid bigint,
                                p_message_id text, p_refs text[], p_from text, p_kind text, p_reason text,
                                p_is_block boolean, p_recipients text[], p_return_date date, p_now timestamptz)
RETURNS jsonb LANGUAGE sql AS $$
    SELECT relance_inbound(p_account, p_folder, p_uidvalidity, p_uid, p_message_id, p_refs, p_from, p_kind, p_reason,
                           p_is_block, p_recipients, p_return_date, p_now, NULL::text)
$$;

-- What an inbound message does; the watcher calls it once per message
-- it fetched and classified (p_kind, p_reason, p_is_block, p_recipients,
-- p_return_date and p_refusal as service/lib/classify.h says; p_refusal
-- NULL or '' when the bounce does not refuse the account itself). p_refs:
-- the Message-IDs (without <>) it answers or returns, most telling first. Returns
-- {"effect", "enrollment", "message", "reason", "matched_by"}: effect is
-- replied, unsubscribed, bounced, soft_bounce, blocked, auto_reply,
-- ignored, unmatched or duplicate. Raises 22023 for an unknown kind and
-- no_data_found for an unknown account.
CREATE OR REPLACE FUNCTION relance_inbound(p_account text, p_folder text, p_uidvalidity bigint, p_uid bigint,
                                p_message_id text, p_refs text[], p_from text, p_kind text, p_reason text,
                                p_is_block boolean, p_recipients text[], p_return_date date, p_now timestamptz,
                                p_refusal text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_account accounts%ROWTYPE;
    v_in bigint;
    v_from text := lower(btrim(coalesce(p_from, '')));
    v_effect text;
    v_why text;
    v_by text;
    m messages%ROWTYPE;
    r record;
    v_at timestamptz;
    v_n int;
    v_prev inbound_messages%ROWTYPE;
    v_reason text := coalesce(nullif(btrim(p_reason), ''), 'none');
    v_refusal text := nullif(btrim(p_refusal), '');
BEGIN
    IF p_kind IS NULL OR p_kind NOT IN ('human_reply', 'auto_reply', 'hard_bounce', 'soft_bounce',
                                        'unsubscribe_request', 'other') THEN
        RAISE EXCEPTION 'unknown inbound message kind "%"', p_kind USING ERRCODE = '22023',
              HINT = 'human_reply, auto_reply, hard_bounce, soft_bounce, unsubscribe_request or other';
    END IF;
    SELECT * INTO v_account FROM accounts WHERE email = lower(btrim(p_account));
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no sender account %', p_account USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO inbound_messages (account_id, folder, uidvalidity, uid, message_id, sender, kind, reason, is_block,
                                  return_date, detected_at)
    VALUES (v_account.id, p_folder, p_uidvalidity, p_uid, nullif(btrim(p_message_id), ''), v_from, p_kind,
            v_reason, coalesce(p_is_block, false), p_return_date, p_now)
    ON CONFLICT DO NOTHING
    RETURNING id INTO v_in;
    IF v_in IS NULL THEN
        SELECT * INTO v_prev FROM inbound_messages
         WHERE account_id = v_account.id
           AND (message_id = nullif(btrim(p_message_id), '')
                OR (folder = p_folder AND uidvalidity = p_uidvalidity AND uid = p_uid))
         ORDER BY id LIMIT 1;
        RETURN jsonb_build_object('effect', 'duplicate', 'enrollment', v_prev.enrollment_id,
                                  'message', v_prev.matched_message, 'matched_by', v_prev.matched_by,
                                  'reason', format('already recorded (%s, uid %s): %s', v_prev.folder, v_prev.uid,
                                                   v_prev.effect));
    END IF;

    -- Only inbound mail counts.
    IF EXISTS (SELECT 1 FROM accounts WHERE email = v_from) THEN
        v_effect := 'ignored';
        v_why := 'from one of our sender accounts';
    ELSIF btrim(p_message_id) <> '' AND EXISTS (SELECT 1 FROM messages WHERE message_id = btrim(p_message_id)) THEN
        v_effect := 'ignored';
        v_why := 'one of our own messages';
    ELSIF p_kind = 'other' THEN
        v_effect := 'ignored';
        v_why := 'neither a reply nor a bounce';
    END IF;

    IF v_effect IS NULL THEN
        -- The message it answers or returns, sent from this account.
        SELECT ms.* INTO m
          FROM unnest(coalesce(p_refs, '{}')) WITH ORDINALITY ref (mid, n)
          JOIN messages ms ON ms.message_id = btrim(ref.mid) AND ms.account_id = v_account.id
         ORDER BY ref.n LIMIT 1;
        IF FOUND THEN
            v_by := 'message-id';
        ELSIF p_kind IN ('human_reply', 'auto_reply', 'unsubscribe_request') THEN
            -- Its sender's live enrollment from this account, the newest;
            -- the message answered is its last one out.
            SELECT ms.* INTO m
              FROM contacts c
              JOIN enrollments en ON en.contact_id = c.id
              JOIN messages ms ON ms.enrollment_id = en.id
             WHERE c.email_key = v_from AND en.account_id = v_account.id AND en.state IN ('active', 'paused', 'held')
             ORDER BY en.created_at DESC, en.id DESC, ms.state IN ('sent', 'unknown', 'bounced') DESC,
                      ms.position DESC
             LIMIT 1;
            v_by := CASE WHEN FOUND THEN 'sender' END;
        ELSE
            -- A bounce: a failed recipient this account mailed, last mailed.
            SELECT ms.* INTO m
              FROM contacts c
              JOIN enrollments en ON en.contact_id = c.id
              JOIN messages ms ON ms.enrollment_id = en.id
             WHERE c.email_key = ANY (SELECT lower(btrim(x)) FROM unnest(coalesce(p_recipients, '{}')) x)
               AND ms.account_id = v_account.id
             ORDER BY ms.created_at DESC, ms.id DESC
             LIMIT 1;
            v_by := CASE WHEN FOUND THEN 'recipient' END;
        END IF;
    END IF;

    IF v_effect IS NOT NULL THEN
        NULL;
    ELSIF p_kind IN ('soft_bounce', 'hard_bounce') AND v_refusal IS NOT NULL THEN
        -- The receiver refused the sender, whatever the words made of the
        -- recipient: the address is not at fault and stays unsuppressed.
        v_effect := 'blocked';
        v_why := relance_refusal_reason(v_refusal, NULL, 1) || ': the account pauses';
    ELSIF p_kind = 'soft_bounce' AND coalesce(p_is_block, false) THEN
        -- A block says nothing about the address: it counts against the
        -- account, matched or not.
        v_effect := 'blocked';
        v_why := 'blocked (' || v_reason || '): counted against the account';
    ELSIF v_by IS NULL THEN
        v_effect := 'unmatched';
        v_why := 'answers or returns no message of this account, and its '
                 || CASE WHEN p_kind LIKE '%bounce' THEN 'failed recipients are' ELSE 'sender is' END
                 || ' not a contact this account mails';
    END IF;

    IF v_by IS NOT NULL AND v_effect IS NULL THEN
        SELECT e.id, e.state, e.contact_id, e.jitter_r, c.email_key, c.company_domain, v.stop_on,
               relance_zone(v.timezone, c.timezone, v.fallback_timezone) AS zone,
               v.window_start_min, v.window_end_min, v.days, v.jitter_seconds
          INTO r
          FROM enrollments e
          JOIN contacts c ON c.id = e.contact_id
          JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version
         WHERE e.id = m.enrollment_id
           FOR UPDATE OF e;
        IF p_kind = 'human_reply' THEN
            v_effect := 'replied';
            IF NOT 'reply' = ANY (r.stop_on) THEN
                v_why := 'a reply; stop_on has no reply, so the sequence goes on';
            ELSIF r.state IN ('active', 'paused', 'held') THEN
                UPDATE enrollments SET state = 'replied', state_reason = 'reply', state_changed_at = p_now,
                                       next_send_at = NULL
                 WHERE id = r.id;
                v_why := 'a reply: the enrollment stops';
            ELSE
                v_why := 'a reply; the enrollment had already ended (' || r.state || ')';
            END IF;
            PERFORM relance_inbound_event('reply.received', v_in, r.id, m.id, '{}');
            -- company_reply in a colleague's sequence stops the colleague
            -- (no company domain: free mail, only the contact's own).
            v_n := relance_inbound_stop(ARRAY(
                       SELECT en.id FROM enrollments en
                         JOIN contacts cc ON cc.id = en.contact_id
                         JOIN sequence_versions vv ON vv.sequence_id = en.sequence_id AND vv.version = en.version
                        WHERE en.id <> r.id AND 'company_reply' = ANY (vv.stop_on)
                          AND (cc.id = r.contact_id OR cc.company_domain = r.company_domain)),
                   'replied', 'company reply', p_now, v_in, r.id);
            IF v_n > 0 THEN
                v_why := v_why || format('; %s enrollment(s) at %s stop (company_reply)', v_n,
                                         coalesce(r.company_domain, r.email_key));
            END IF;
        ELSIF p_kind = 'unsubscribe_request' THEN
            v_effect := 'unsubscribed';
            UPDATE enrollments SET state = 'unsubscribed', state_reason = 'unsubscribe request',
                                   state_changed_at = p_now, next_send_at = NULL
             WHERE id = r.id AND state IN ('active', 'paused', 'held');
            PERFORM relance_inbound_event('contact.unsubscribed', v_in, r.id, m.id, '{"source": "reply"}');
            v_n := relance_inbound_suppress(r.contact_id, r.id, 'unsubscribed', 'unsubscribe request', p_now, v_in);
            v_why := format('unsubscribe request: %s suppressed, %s other enrollment(s) stop', r.email_key, v_n);
        ELSIF p_kind = 'auto_reply' THEN
            v_effect := 'auto_reply';
            IF p_return_date IS NULL THEN
                v_why := 'an auto-reply without a return date: nothing changes';
            ELSIF r.state NOT IN ('active', 'paused', 'held') THEN
                v_why := 'an auto-reply; the enrollment had already ended (' || r.state || ')';
            ELSE
                -- The opening of the first sending window on or after the
                -- return day, with the enrollment's own jitter.
                v_at := relance_window_jitter(
                            relance_next_window(p_return_date::timestamp AT TIME ZONE r.zone, r.zone,
                                                r.window_start_min, r.window_end_min, r.days),
                            r.zone, r.window_start_min, r.window_end_min, r.jitter_seconds, r.jitter_r);
                UPDATE enrollments SET not_before = v_at WHERE id = r.id;
                v_why := format('away until %s: no step before %s', p_return_date,
                                to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
            END IF;
            PERFORM relance_inbound_event('auto_reply.received', v_in, r.id, m.id,
                                          jsonb_build_object('return_date', p_return_date, 'not_before', v_at));
        ELSE
            -- Bounces. Soft ones count per contact, over every message it
            -- was sent (SMTP-time retries included); the third is hard.
            IF p_kind = 'soft_bounce' THEN
                UPDATE messages SET soft_bounces = soft_bounces + 1 WHERE id = m.id;
                SELECT sum(ms.soft_bounces) INTO v_n
                  FROM enrollments en JOIN messages ms ON ms.enrollment_id = en.id
                 WHERE en.contact_id = r.contact_id;
                IF v_n < 3 THEN
                    v_effect := 'soft_bounce';
                    v_why := format('soft bounce %s of 3 (%s)', v_n, v_reason);
                    PERFORM relance_inbound_event('message.bounced', v_in, r.id, m.id,
                                                  jsonb_build_object('bounce', '{"kind": "soft"}'::jsonb, 'reason', v_reason,
                                                                     'soft_bounces', v_n));
                END IF;
            END IF;
            IF v_effect IS NULL THEN
                v_effect := 'bounced';
                v_why := CASE WHEN p_kind = 'soft_bounce' THEN 'third soft bounce (' || v_reason || ')'
                              ELSE 'hard bounce (' || v_reason || ')' END;
                -- As an SMTP-time 5.1.1 (007): the message and the
                -- enrollment are bounced, the address suppressed and every
                -- other enrollment of it stops.
                UPDATE messages SET state = 'bounced' WHERE id = m.id AND state IN ('sent', 'unknown');
                UPDATE enrollments SET state = 'bounced', state_reason = v_why, state_changed_at = p_now,
                                       next_send_at = NULL
                 WHERE id = r.id AND state IN ('active', 'paused', 'held');
                PERFORM relance_inbound_event('message.bounced', v_in, r.id, m.id,
                                              jsonb_build_object('bounce', '{"kind": "hard"}'::jsonb, 'reason', v_reason));
                v_n := relance_inbound_suppress(r.contact_id, r.id, 'bounced', v_why, p_now, v_in);
                v_why := format('%s: %s suppressed, %s other enrollment(s) stop', v_why, r.email_key, v_n);
                PERFORM relance_account_health(v_account.id, p_now);
            END IF;
        END IF;
    END IF;

    UPDATE inbound_messages SET effect = v_effect, effect_reason = v_why, matched_by = v_by,
                                enrollment_id = m.enrollment_id, matched_message = m.id
     WHERE id = v_in;
    IF v_effect = 'blocked' THEN
        PERFORM relance_inbound_event('message.bounced', v_in, m.enrollment_id, m.id,
                                      jsonb_build_object('bounce', '{"kind": "block"}'::jsonb, 'reason', v_reason));
        IF v_refusal IS NOT NULL THEN
            PERFORM relance_account_pause(v_account.id, p_now, relance_refusal_reason(v_refusal, NULL, 1));
        ELSE
            PERFORM relance_account_health(v_account.id, p_now);
        END IF;
    END IF;
    RETURN jsonb_build_object('effect', v_effect, 'enrollment', m.enrollment_id, 'message', m.id,
                              'matched_by', v_by, 'reason', v_why);
END $$;
