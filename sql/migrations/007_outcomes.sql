-- 007: what each SMTP outcome does (DESIGN semantic 6) and account health.
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
-- An account also pauses when its hard-bounce rate over its last 100 sends
-- exceeds max_bounce_rate. A pause writes an event; the account's
-- enrollments wait for it (sticky sender), never re-routed.

ALTER TABLE accounts ADD COLUMN max_bounce_rate double precision NOT NULL DEFAULT 0.05
    CHECK (max_bounce_rate >= 0 AND max_bounce_rate <= 1);
ALTER TABLE accounts ADD COLUMN max_policy_blocks int NOT NULL DEFAULT 3 CHECK (max_policy_blocks >= 1);
ALTER TABLE messages ADD COLUMN outcome text;          -- the last SMTP outcome's name
ALTER TABLE messages ADD COLUMN soft_bounces int NOT NULL DEFAULT 0;
CREATE INDEX messages_account_created ON messages (account_id, created_at) WHERE account_id IS NOT NULL;

-- Pauses an account with a reason (once) and says so in the event feed.
CREATE FUNCTION relance_account_pause(p_account bigint, p_now timestamptz, p_reason text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET state = 'paused', state_reason = p_reason, state_changed_at = p_now
     WHERE id = p_account AND state = 'active';
    IF FOUND THEN
        INSERT INTO events (kind, occurred_at, data)
        VALUES ('account.paused', p_now, jsonb_build_object('account_id', p_account, 'reason', p_reason));
    END IF;
END $$;

-- Health checks after a rejection counted against the account.
CREATE FUNCTION relance_account_health(p_account bigint, p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    a accounts%ROWTYPE;
    v_blocks int;
    v_hard int;
    v_sends int;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_account;
    SELECT count(*) INTO v_blocks FROM messages
     WHERE account_id = p_account AND outcome = 'rejected_policy' AND created_at > p_now - interval '24 hours';
    IF v_blocks >= a.max_policy_blocks THEN
        PERFORM relance_account_pause(p_account, p_now,
            format('%s policy blocks within 24 h (max_policy_blocks %s)', v_blocks, a.max_policy_blocks));
        RETURN;
    END IF;
    SELECT count(*), count(*) FILTER (WHERE outcome = 'rejected_hard') INTO v_sends, v_hard
      FROM (SELECT outcome FROM messages
             WHERE account_id = p_account AND state IN ('sent', 'unknown', 'bounced')
             ORDER BY created_at DESC LIMIT 100) last100;
    IF v_sends >= 20 AND v_hard::double precision / v_sends > a.max_bounce_rate THEN
        PERFORM relance_account_pause(p_account, p_now,
            format('hard-bounce rate %s%% over the last %s sends (max_bounce_rate %s%%)',
                   round(100.0 * v_hard / v_sends, 1), v_sends, round(100 * a.max_bounce_rate::numeric, 1)));
    END IF;
END $$;

-- The one entry point for an SMTP outcome (names as smtp.c's): records the
-- message, moves the enrollment and the account as the table above says.
CREATE FUNCTION relance_step_outcome(p_message_id text, p_now timestamptz, p_outcome text, p_reply text,
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
            INSERT INTO events (kind, occurred_at, data)
            VALUES ('message.soft_bounce', p_now, jsonb_build_object('message_id', p_message_id, 'reply', p_reply,
                                                                     'enrollment_id', m.enrollment_id));
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
        INSERT INTO events (kind, occurred_at, data)
        VALUES ('message.bounced', p_now, jsonb_build_object('message_id', p_message_id, 'reply', p_reply,
                                                              'enrollment_id', m.enrollment_id, 'hard', true));
        IF m.account_id IS NOT NULL THEN
            PERFORM relance_account_health(m.account_id, p_now);
        END IF;
        RETURN;
    END IF;
    IF p_outcome = 'rejected_policy' THEN
        -- the recipient is fine; the sender was refused: retry later, count it
        PERFORM relance_step_deferred(p_message_id, p_now, v_retry, p_reply, true);
        INSERT INTO events (kind, occurred_at, data)
        VALUES ('message.blocked', p_now, jsonb_build_object('message_id', p_message_id, 'reply', p_reply,
                                                              'enrollment_id', m.enrollment_id));
        IF m.account_id IS NOT NULL THEN
            PERFORM relance_account_health(m.account_id, p_now);
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

-- Makes pools and accounts match the configuration (a JSON document built
-- by relance from its YAML: {"pools": [{"name", "domain_hourly_limit",
-- "accounts": [{"email", "from_name", "daily_limit", "min_interval_s",
-- "interval_jitter_s", "timezone", "warmup_start", "warmup_increase",
-- "max_bounce_rate", "max_policy_blocks"}]}]}). Accounts gone from the
-- configuration stay (their history does) but are marked configured =
-- false and never claimed. Returns the number of configured accounts.
CREATE FUNCTION relance_sync_accounts(p_config jsonb) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    INSERT INTO pools (name, domain_hourly_limit)
    SELECT p->>'name', coalesce((p->>'domain_hourly_limit')::int, 0)
      FROM jsonb_array_elements(p_config->'pools') p
    ON CONFLICT (name) DO UPDATE SET domain_hourly_limit = EXCLUDED.domain_hourly_limit;
    WITH cfg AS (
        SELECT p->>'name' AS pool, a
          FROM jsonb_array_elements(p_config->'pools') p, jsonb_array_elements(p->'accounts') a
    )
    INSERT INTO accounts (email, pool, from_name, daily_limit, min_interval_s, interval_jitter_s, timezone,
                          warmup_start, warmup_increase, max_bounce_rate, max_policy_blocks, configured)
    SELECT lower(a->>'email'), pool, a->>'from_name', coalesce((a->>'daily_limit')::int, 0),
           coalesce((a->>'min_interval_s')::int, 0), coalesce((a->>'interval_jitter_s')::int, 0),
           coalesce(a->>'timezone', 'UTC'), coalesce((a->>'warmup_start')::int, 0),
           coalesce((a->>'warmup_increase')::int, 0), coalesce((a->>'max_bounce_rate')::float8, 0.05),
           coalesce((a->>'max_policy_blocks')::int, 3), true
      FROM cfg
    ON CONFLICT (email) DO UPDATE
       SET pool = EXCLUDED.pool, from_name = EXCLUDED.from_name, daily_limit = EXCLUDED.daily_limit,
           min_interval_s = EXCLUDED.min_interval_s, interval_jitter_s = EXCLUDED.interval_jitter_s,
           timezone = EXCLUDED.timezone, warmup_start = EXCLUDED.warmup_start,
           warmup_increase = EXCLUDED.warmup_increase, max_bounce_rate = EXCLUDED.max_bounce_rate,
           max_policy_blocks = EXCLUDED.max_policy_blocks, configured = true;
    UPDATE accounts SET configured = false
     WHERE email NOT IN (SELECT lower(a->>'email')
                           FROM jsonb_array_elements(p_config->'pools') p, jsonb_array_elements(p->'accounts') a);
    SELECT count(*) INTO n FROM accounts WHERE configured;
    RETURN n;
END $$;
