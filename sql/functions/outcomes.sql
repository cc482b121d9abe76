-- outcomes: what happened to a claimed message, and what it does to the
-- enrollment, the address and the account (DESIGN semantic 6).
--
--   sent / unknown     the step counts as sent (unknown: maybe; never re-sent)
--   deferred           4xx, or a connection/TLS failure before the body:
--                      retried from the same account with capped
--                      exponential backoff, the window re-checked each try
--   rejected_hard      the address or its domain does not exist: the contact
--                      is bounced and the address suppressed everywhere, at once
--   rejected_other     a recipient-side 5xx (mailbox full, too large): a soft
--                      bounce, retried; the third soft bounce makes it hard
--   rejected_policy    a block (5.7.x, spam, reputation): a soft bounce that
--                      never suppresses the address; it counts against the
--                      account, which pauses after max_policy_blocks in 24 h
--   auth_failed        the account pauses at once, with the reason
--   rejected_unauthenticated
--                      the receiver refuses the account itself (5.7.25,
--                      5.7.26, 5.7.27, 5.7.30, 5.7.515: SPF, DKIM, DMARC,
--                      PTR; refusal.h): the account pauses at once with the
--                      server's words; the address is never suppressed; the
--                      step waits for the resume, or goes from another
--                      account of the pool if none of the enrollment's
--                      steps went out yet (nothing to thread)
--   deferred_policy    a 4.7.x deferral (not greylisting): deferred, and
--                      counted; the same code 3 times within an hour pauses
--                      the account (relance_account_refused, accounts.sql)
-- An account also pauses when its hard-bounce rate over its last 100 sends
-- exceeds max_bounce_rate (relance_account_health, accounts.sql). A pause
-- writes an event; the account's enrollments wait for it (sticky sender),
-- never re-routed.
--
-- The messages table is described in claim.sql, where its rows are born.

-- Records that a claimed step went out (p_state 'sent', or 'unknown' when
-- it may have) and schedules the next one, or completes the enrollment.
-- An enrollment that stopped meanwhile (a reply won the race) keeps its
-- state.
CREATE OR REPLACE FUNCTION relance_step_done(p_message_id text, p_now timestamptz, p_state text, p_reply text,
                                  p_subject text, p_sender text, p_variant int)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_enrollment bigint;
    v_position int;
    v_r double precision := random();
    v_more boolean;
BEGIN
    UPDATE messages SET state = p_state, sent_at = p_now, reply = p_reply,
                        subject = coalesce(p_subject, subject), sender = coalesce(p_sender, sender),
                        variant = coalesce(p_variant, variant)
     WHERE message_id = p_message_id AND state = 'sending'
    RETURNING id, enrollment_id, position INTO v_id, v_enrollment, v_position;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT EXISTS (SELECT 1 FROM enrollments e JOIN sequence_steps s
                     ON s.sequence_id = e.sequence_id AND s.version = e.version AND s.position = v_position + 1
                    WHERE e.id = v_enrollment) INTO v_more;
    IF v_more THEN
        UPDATE enrollments
           SET position = v_position + 1, jitter_r = v_r,
               next_send_at = relance_step_due(v_enrollment, v_position + 1, p_now, v_r)
         WHERE id = v_enrollment AND state = 'active';
        UPDATE enrollments SET position = v_position + 1
         WHERE id = v_enrollment AND state <> 'active' AND position = v_position;
    END IF;
    -- (the sender's batches write these events together, after their
    -- loop: relance_step_outcomes, which says so through the setting)
    IF current_setting('relance.step_events_batched', true) IS DISTINCT FROM 'on' THEN
        PERFORM relance_event('message.' || p_state, p_now, NULL, NULL, v_id,
                              jsonb_build_object('message_id', p_message_id, 'position', v_position));
    END IF;
    IF NOT v_more THEN
        UPDATE enrollments SET position = v_position + 1, next_send_at = NULL,
                               state = CASE WHEN state = 'active' THEN 'completed' ELSE state END,
                               state_reason = CASE WHEN state = 'active' THEN 'all steps sent' ELSE state_reason END,
                               state_changed_at = CASE WHEN state = 'active' THEN p_now ELSE state_changed_at END
         WHERE id = v_enrollment
        RETURNING state = 'completed' AND state_changed_at = p_now INTO v_more;
        IF v_more AND current_setting('relance.step_events_batched', true) IS DISTINCT FROM 'on' THEN
            PERFORM relance_event('enrollment.completed', p_now, NULL, v_enrollment, NULL,
                                  jsonb_build_object('state', 'completed', 'reason', 'all steps sent'));
        END IF;
    END IF;
END $$;

-- A claimed step that could not be rendered (a field without value nor
-- fallback): nothing went out, so the message row goes and the
-- enrollment is held with the reason until the contact changes.
CREATE OR REPLACE FUNCTION relance_step_hold(p_message_id text, p_now timestamptz, p_reason text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_enrollment bigint;
BEGIN
    DELETE FROM messages WHERE message_id = p_message_id AND state = 'sending'
    RETURNING enrollment_id INTO v_enrollment;
    IF FOUND THEN
        UPDATE enrollments SET state = 'held', state_reason = p_reason, state_changed_at = p_now, next_send_at = p_now
         WHERE id = v_enrollment AND state = 'active';
        IF FOUND THEN
            PERFORM relance_event('enrollment.held', p_now, NULL, v_enrollment, NULL,
                                  jsonb_build_object('state', 'held', 'reason', p_reason));
        END IF;
    END IF;
END $$;

-- A claimed message did not leave (a failure before the point of no
-- return): it becomes 'deferred' and the step is retried from the same
-- account after p_retry_at (the window is checked again then). When the
-- transaction never got past MAIL FROM the cap's count is given back.
CREATE OR REPLACE FUNCTION relance_step_deferred(p_message_id text, p_now timestamptz, p_retry_at timestamptz, p_reply text,
                                      p_counted boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    m messages%ROWTYPE;
BEGIN
    UPDATE messages SET state = 'deferred', reply = p_reply
     WHERE message_id = p_message_id AND state = 'sending'
    RETURNING * INTO m;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE enrollments SET next_send_at = p_retry_at WHERE id = m.enrollment_id AND state = 'active';
    IF NOT p_counted AND m.account_id IS NOT NULL THEN
        UPDATE account_days d SET sent = greatest(d.sent - 1, 0)
          FROM accounts a
         WHERE a.id = m.account_id AND d.account_id = a.id
           -- the day this claim counted on: a message taken again after a
           -- deferral was counted on that later day, not its first one's
           AND d.day = relance_local_day(coalesce(m.claimed_at, m.created_at), a.timezone);
    END IF;
    PERFORM relance_event('message.deferred', p_now, NULL, NULL, m.id,
                          jsonb_build_object('message_id', p_message_id, 'reply', p_reply, 'retry_at', p_retry_at));
END $$;

-- The one entry point for an SMTP outcome (names as smtp.c's): records the
-- message, moves the enrollment and the account as the table above says.
CREATE OR REPLACE FUNCTION relance_step_outcome(p_message_id text, p_now timestamptz, p_outcome text, p_reply text,
                                     p_mail_accepted boolean, p_subject text, p_sender text, p_variant int)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    m messages%ROWTYPE;
    v_retry timestamptz;
    v_hard boolean;
BEGIN
    UPDATE messages SET outcome = p_outcome WHERE message_id = p_message_id AND state = 'sending'
    RETURNING * INTO m;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_outcome IN ('sent', 'unknown') THEN
        PERFORM relance_step_done(p_message_id, p_now, p_outcome, p_reply, p_subject, p_sender, p_variant);
        RETURN;
    END IF;
    -- Backoff: 10 min, 20, 40 ... capped at 6 h.
    v_retry := p_now + least(interval '10 minutes' * power(2, greatest(m.attempts - 1, 0)), interval '6 hours');
    IF p_outcome = 'rejected_other' THEN
        UPDATE messages SET soft_bounces = soft_bounces + 1 WHERE message_id = p_message_id
        RETURNING soft_bounces >= 3 INTO v_hard;
        IF NOT v_hard THEN
            -- a bounce, so it counted against the cap, and is retried
            PERFORM relance_step_deferred(p_message_id, p_now, v_retry, p_reply, true);
            PERFORM relance_event('message.bounced', p_now, NULL, NULL, m.id,
                              jsonb_build_object('message_id', p_message_id, 'reply', p_reply,
                                                 'bounce', '{"kind": "soft"}'::jsonb));
            RETURN;
        END IF;
        p_outcome := 'rejected_hard';  -- the third soft bounce is hard
    END IF;
    IF p_outcome = 'rejected_hard' THEN
        UPDATE messages SET state = 'bounced', reply = p_reply, sent_at = p_now, outcome = 'rejected_hard'
         WHERE message_id = p_message_id;
        UPDATE enrollments SET state = 'bounced', state_reason = 'hard bounce: ' || left(p_reply, 200),
                               state_changed_at = p_now, next_send_at = NULL
         WHERE id = m.enrollment_id AND state IN ('active', 'paused', 'held');
        INSERT INTO suppressions (pattern, reason) VALUES (lower(m.recipient), 'hard bounce: ' || left(p_reply, 200))
        ON CONFLICT (pattern) DO NOTHING;
        -- every live enrollment of the address stops, not only this one
        UPDATE enrollments e SET state = 'bounced', state_reason = 'address suppressed after a hard bounce',
                                 state_changed_at = p_now, next_send_at = NULL
          FROM contacts c
         WHERE c.id = e.contact_id AND c.email_key = lower(m.recipient) AND e.state IN ('active', 'paused', 'held');
        PERFORM relance_event('message.bounced', p_now, NULL, NULL, m.id,
                          jsonb_build_object('message_id', p_message_id, 'reply', p_reply,
                                             'bounce', '{"kind": "hard"}'::jsonb));
        IF m.account_id IS NOT NULL THEN
            PERFORM relance_account_health(m.account_id, p_now);
        END IF;
        RETURN;
    END IF;
    IF p_outcome = 'rejected_policy' THEN
        -- the recipient is fine; the sender was refused: retry later, count it
        PERFORM relance_step_deferred(p_message_id, p_now, v_retry, p_reply, true);
        PERFORM relance_event('message.bounced', p_now, NULL, NULL, m.id,
                          jsonb_build_object('message_id', p_message_id, 'reply', p_reply,
                                             'bounce', '{"kind": "block"}'::jsonb));
        IF m.account_id IS NOT NULL THEN
            PERFORM relance_account_health(m.account_id, p_now);
        END IF;
        RETURN;
    END IF;
    IF p_outcome = 'rejected_unauthenticated' THEN
        -- Not the recipient's fault, and nothing was delivered: the step is
        -- due again at once, for whichever account may send it.
        PERFORM relance_step_deferred(p_message_id, p_now, p_now, p_reply, coalesce(p_mail_accepted, false));
        PERFORM relance_event('message.bounced', p_now, NULL, NULL, m.id,
                          jsonb_build_object('message_id', p_message_id, 'reply', p_reply,
                                             'bounce', '{"kind": "block"}'::jsonb));
        IF m.account_id IS NOT NULL THEN
            PERFORM relance_account_pause(m.account_id, p_now, relance_refusal_reason(p_reply, NULL, 1));
            -- Sticky only once a step went out (the next ones thread on
            -- it); before that, another account of the pool may take it.
            UPDATE enrollments e SET account_id = NULL
             WHERE e.id = m.enrollment_id AND e.account_id = m.account_id
               AND NOT EXISTS (SELECT 1 FROM messages x
                                WHERE x.enrollment_id = e.id AND x.state IN ('sent', 'unknown'));
        END IF;
        RETURN;
    END IF;
    IF p_outcome = 'deferred_policy' THEN
        PERFORM relance_step_deferred(p_message_id, p_now, v_retry, p_reply, coalesce(p_mail_accepted, false));
        IF m.account_id IS NOT NULL THEN
            -- the status as smtp_reply_format writes it: after the reply code
            PERFORM relance_account_refused(m.account_id, p_now,
                coalesce(substring(p_reply FROM '^[0-9]{3}[ -]([45][.][0-9]{1,3}[.][0-9]{1,3})'), 'none'), p_reply);
        END IF;
        RETURN;
    END IF;
    IF p_outcome = 'auth_failed' THEN
        PERFORM relance_step_deferred(p_message_id, p_now, p_now, p_reply, false);
        IF m.account_id IS NOT NULL THEN
            PERFORM relance_account_pause(m.account_id, p_now, 'authentication failed: ' || left(p_reply, 200));
        END IF;
        RETURN;
    END IF;
    -- deferred, and anything unforeseen
    PERFORM relance_step_deferred(p_message_id, p_now, v_retry, p_reply, coalesce(p_mail_accepted, false));
END $$;

-- The outcomes of many sends written in one statement: one round trip for
-- a batch instead of one per message (relance gathers the outcomes that
-- come in while the previous batch is being written). Each outcome runs in
-- its own subtransaction, so one that fails cannot undo the others: it is
-- returned with its error for relance to log, and its row stays 'sending'
-- to be rescued as when a single outcome write failed. A message refused
-- at SMTP time keeps its A/B variant too (relance_step_outcome records it
-- only with 'sent' and 'unknown'), so stats count its bounce under it.
CREATE OR REPLACE FUNCTION relance_step_outcomes(p_message_ids text[], p_nows timestamptz[], p_outcomes text[],
                                      p_replies text[], p_accepted boolean[], p_subjects text[],
                                      p_senders text[], p_variants int[])
RETURNS TABLE (failed_message_id text, error text) LANGUAGE plpgsql AS $$
BEGIN
    -- The events of the steps sent (message.sent or .unknown, then
    -- enrollment.completed after the last step) are written after the
    -- loop in one statement, not one each inside relance_step_done: an
    -- event per message and statement took the sender from 1,361 to 806
    -- messages a second.
    PERFORM set_config('relance.step_events_batched', 'on', true);
    FOR i IN 1 .. coalesce(array_length(p_message_ids, 1), 0) LOOP
        BEGIN
            PERFORM relance_step_outcome(p_message_ids[i], p_nows[i], p_outcomes[i], p_replies[i], p_accepted[i],
                                         p_subjects[i], p_senders[i], p_variants[i]);
            IF p_variants[i] IS NOT NULL AND p_outcomes[i] NOT IN ('sent', 'unknown') THEN
                UPDATE messages SET variant = p_variants[i]
                 WHERE message_id = p_message_ids[i] AND variant IS NULL;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            failed_message_id := p_message_ids[i];
            error := SQLERRM;
            RETURN NEXT;
        END;
    END LOOP;
    PERFORM set_config('relance.step_events_batched', 'off', true);
    -- what this call recorded: a step now in the state its outcome says,
    -- at its outcome's instant (an outcome for a step already recorded
    -- changed nothing, and finds another sent_at); in the batch's order,
    -- each step's message event before its enrollment's completion
    INSERT INTO events (kind, occurred_at, contact_id, data)
    SELECT x.kind, x.at, x.contact_id, x.data
      FROM (SELECT 'message.' || u.outcome AS kind, u.at, c.id AS contact_id,
                   relance_event_data(c.id, c.crm_id, c.email, e.id, s.name, m.step_id, m.variant, a.email)
                   || jsonb_build_object('message_id', m.message_id, 'position', m.position) AS data,
                   u.i, 1 AS k
              FROM unnest(p_message_ids, p_nows, p_outcomes) WITH ORDINALITY u(message_id, at, outcome, i)
              JOIN messages m ON m.message_id = u.message_id AND m.state = u.outcome AND m.sent_at = u.at
              JOIN enrollments e ON e.id = m.enrollment_id
              JOIN contacts c ON c.id = e.contact_id
              JOIN sequences s ON s.id = e.sequence_id
              LEFT JOIN accounts a ON a.id = coalesce(m.account_id, e.account_id)
             WHERE u.outcome IN ('sent', 'unknown')
            UNION ALL
            SELECT 'enrollment.completed', u.at, c.id,
                   relance_event_data(c.id, c.crm_id, c.email, e.id, s.name, NULL, NULL, a.email)
                   || jsonb_build_object('state', 'completed', 'reason', 'all steps sent'),
                   u.i, 2
              FROM unnest(p_message_ids, p_nows, p_outcomes) WITH ORDINALITY u(message_id, at, outcome, i)
              JOIN messages m ON m.message_id = u.message_id AND m.state = u.outcome AND m.sent_at = u.at
              JOIN enrollments e ON e.id = m.enrollment_id AND e.state = 'completed' AND e.state_changed_at = u.at
                                AND e.position = m.position + 1
              JOIN contacts c ON c.id = e.contact_id
              JOIN sequences s ON s.id = e.sequence_id
              LEFT JOIN accounts a ON a.id = e.account_id
             WHERE u.outcome IN ('sent', 'unknown')) x
     ORDER BY x.i, x.k;
END $$;

-- Rows left 'sending' by a replica that is gone: if the body had started
-- to go out the step may have been delivered, so it becomes 'unknown'
-- (counts as sent, never re-sent); if not, nothing left and it is
-- deferred, to be retried. Never this replica's own rows: it may still
-- have them in flight.
CREATE OR REPLACE FUNCTION relance_rescue_sending(p_now timestamptz, p_replica text)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    m record;
    n int := 0;
BEGIN
    FOR m IN SELECT ms.message_id, ms.body_started FROM messages ms
              WHERE ms.state = 'sending'
                AND ms.claimed_by IS DISTINCT FROM p_replica
                AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.name = 'replica:' || ms.claimed_by
                                                         AND l.expires_at > clock_timestamp())
                FOR UPDATE SKIP LOCKED
    LOOP
        IF m.body_started THEN
            PERFORM relance_step_done(m.message_id, p_now, 'unknown', 'process stopped while sending', NULL, NULL,
                                      NULL);
        ELSE
            PERFORM relance_step_deferred(m.message_id, p_now, p_now, 'process stopped before sending', false);
        END IF;
        n := n + 1;
    END LOOP;
    DELETE FROM leases WHERE name LIKE 'replica:%' AND expires_at < clock_timestamp() - interval '1 hour';
    RETURN n;
END $$;

-- A replica's own rows still 'sending', but those named in p_keep: a
-- row whose body had started is 'unknown' (never re-sent), else
-- 'deferred', due at once; p_why is the reply recorded. For
-- relance_rescue_own and relance_rescue_stopping below.
CREATE OR REPLACE FUNCTION relance_rescue_mine(p_now timestamptz, p_replica text, p_keep text[], p_why text)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    m record;
    n int := 0;
BEGIN
    FOR m IN SELECT ms.message_id, ms.body_started FROM messages ms
              WHERE ms.state = 'sending' AND ms.claimed_by = p_replica
                AND NOT (ms.message_id = ANY (coalesce(p_keep, '{}')))
                FOR UPDATE SKIP LOCKED
    LOOP
        IF m.body_started THEN
            PERFORM relance_step_done(m.message_id, p_now, 'unknown', p_why, NULL, NULL, NULL);
        ELSE
            PERFORM relance_step_deferred(m.message_id, p_now, p_now, p_why, false);
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- A replica's own rows whose claim answer was lost with the database
-- connection: claimed (state 'sending', claimed_by this replica) but never
-- seen by the process, so nothing will ever finish them. The replica
-- rescues them itself as soon as the connection is back, naming the rows
-- it does have in flight (p_keep), instead of leaving them 'sending' until
-- its next start. Same rule as relance_rescue_sending: a row whose body
-- had started is 'unknown' (never re-sent), else 'deferred'.
CREATE OR REPLACE FUNCTION relance_rescue_own(p_now timestamptz, p_replica text, p_keep text[])
RETURNS int LANGUAGE sql AS $$
    SELECT relance_rescue_mine(p_now, p_replica, p_keep, 'claim answer lost with the connection')
$$;

-- The same for every row of a replica that is stopping (SIGTERM), once
-- its sender has closed and its last outcomes are written: what it had
-- claimed and not sent (queued, cut before the body, never composed) is
-- due again at once for another replica, rather than left 'sending' until
-- this replica's lease lapses and a rescue's next pass; a row whose body
-- started and whose outcome was not written is 'unknown', as always.
CREATE OR REPLACE FUNCTION relance_rescue_stopping(p_now timestamptz, p_replica text)
RETURNS int LANGUAGE sql AS $$
    SELECT relance_rescue_mine(p_now, p_replica, '{}', 'relance stopped before sending')
$$;

