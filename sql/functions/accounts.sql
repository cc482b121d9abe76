-- accounts: sender accounts and pools, synced from the deployment
-- configuration by `relance serve` and `relance accounts sync`; the
-- per-account day counters behind daily caps and warm-up; account health
-- and pauses. The claim that sends through an account is claim.sql's;
-- its lease is leases.sql's.
--
-- Today's tables (sql/schema.sql holds every constraint and index):
--
-- TABLE pools (
--     name                text PRIMARY KEY
--     domain_hourly_limit int  NOT NULL DEFAULT 0   -- per recipient domain; 0: none
-- )
--
-- TABLE accounts (
--     id                bigserial   PRIMARY KEY
--     email             text        NOT NULL UNIQUE
--     pool              text        NOT NULL REFERENCES pools
--     from_name         text
--     daily_limit       int         NOT NULL DEFAULT 0   -- 0: none
--     min_interval_s    int         NOT NULL DEFAULT 0
--     interval_jitter_s int         NOT NULL DEFAULT 0
--     timezone          text        NOT NULL DEFAULT 'UTC' -- the account's day
--     warmup_start      int         NOT NULL DEFAULT 0   -- 0: no warm-up
--     warmup_increase   int         NOT NULL DEFAULT 0
--     configured        boolean     NOT NULL DEFAULT true -- false once gone from the configuration
--     state             text        NOT NULL DEFAULT 'active' -- active, paused
--     state_reason      text
--     state_changed_at  timestamptz
--     next_send_after   timestamptz                      -- spacing: nothing before this
--     last_claim_at     timestamptz                      -- ties between accounts go to the least recent
--     created_at        timestamptz NOT NULL DEFAULT now()
--     max_bounce_rate   double precision NOT NULL DEFAULT 0.05 -- in [0, 1]
--     max_policy_blocks int         NOT NULL DEFAULT 3   -- >= 1, in 24 h
-- )
--
-- Temporary policy refusals (4.7.x) of the account's messages, by code,
-- kept an hour (relance_account_refused).
-- TABLE account_refusals (
--     account_id bigint      NOT NULL REFERENCES accounts
--     status     text        NOT NULL   -- the enhanced status, "4.7.26"
--     at         timestamptz NOT NULL
-- )
--
-- Messages counted against an account's cap, per day of the account's
-- zone. A message counts once its SMTP transaction got past MAIL FROM;
-- the claim reserves the count and a failure before MAIL FROM gives it
-- back.
-- TABLE account_days (
--     account_id bigint NOT NULL REFERENCES accounts  -- PRIMARY KEY (account_id, day)
--     day        date   NOT NULL
--     sent       int    NOT NULL DEFAULT 0
-- )

-- An account's limit for the day: daily_limit, ramped by the warm-up when
-- configured. Day 0 of the warm-up is the first day the account sent;
-- days it did not send (paused) do not advance it.
CREATE OR REPLACE FUNCTION relance_account_limit(p_account bigint, p_day date) RETURNS int
LANGUAGE sql STABLE AS $$
    SELECT CASE
             WHEN a.warmup_start = 0 THEN nullif(a.daily_limit, 0)
             ELSE least(coalesce(nullif(a.daily_limit, 0), 2147483647),
                        a.warmup_start + a.warmup_increase *
                          (SELECT count(*) FROM account_days d
                            WHERE d.account_id = a.id AND d.day < p_day AND d.sent > 0)::int)
           END
      FROM accounts a WHERE a.id = p_account
$$;

-- How many more messages the account may send on its day p_day (NULL:
-- no limit).
CREATE OR REPLACE FUNCTION relance_account_remaining(p_account bigint, p_day date) RETURNS int
LANGUAGE sql STABLE AS $$
    SELECT relance_account_limit(p_account, p_day)
           - coalesce((SELECT sent FROM account_days WHERE account_id = p_account AND day = p_day), 0)
$$;

-- Pauses an account with a reason (once) and says so in the event feed.
CREATE OR REPLACE FUNCTION relance_account_pause(p_account bigint, p_now timestamptz, p_reason text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET state = 'paused', state_reason = p_reason, state_changed_at = p_now
     WHERE id = p_account AND state = 'active';
    IF FOUND THEN
        PERFORM relance_event('account.paused', p_now, NULL, NULL, NULL,
                              jsonb_build_object('account', (SELECT email FROM accounts WHERE id = p_account),
                                                 'reason', p_reason));
    END IF;
END $$;

-- `relance accounts pause`: pauses an account by its address as relance's
-- own pauses do (same state, reason and event, so `accounts resume` undoes
-- it alike). Returns the state the account was in ('active' when this
-- paused it), or NULL when there is no such account.
CREATE OR REPLACE FUNCTION relance_account_pause_by_email(p_email text, p_now timestamptz, p_reason text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_id    bigint;
    v_state text;
BEGIN
    SELECT id, state INTO v_id, v_state FROM accounts WHERE email = lower(btrim(p_email)) FOR UPDATE;
    IF FOUND AND v_state = 'active' THEN
        PERFORM relance_account_pause(v_id, p_now, p_reason);
    END IF;
    RETURN v_state;
END $$;

-- `relance accounts resume` and POST /v1/accounts/{email}/resume:
-- un-pauses an account, whoever paused it, with a reason and an
-- 'account.resumed' event (as the resume after a missing secret). Returns
-- the state the account was in ('paused' when this resumed it), or NULL
-- when there is no such account.
CREATE OR REPLACE FUNCTION relance_account_resume_by_email(p_email text, p_now timestamptz, p_reason text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_id    bigint;
    v_state text;
BEGIN
    SELECT id, state INTO v_id, v_state FROM accounts WHERE email = lower(btrim(p_email)) FOR UPDATE;
    IF FOUND AND v_state = 'paused' THEN
        UPDATE accounts SET state = 'active', state_reason = p_reason, state_changed_at = p_now WHERE id = v_id;
        PERFORM relance_event('account.resumed', p_now, NULL, NULL, NULL,
                              jsonb_build_object('account', lower(btrim(p_email)), 'reason', p_reason));
    END IF;
    RETURN v_state;
END $$;

-- `relance accounts list` and GET /v1/accounts: every account with its
-- state, and its usage and limit on its own day at p_now (limit NULL: no
-- limit), and when a human reply last came into its mailbox.
CREATE OR REPLACE FUNCTION relance_accounts_list(p_now timestamptz)
RETURNS TABLE (id bigint, email text, pool text, configured boolean, state text, state_reason text,
               state_changed_at timestamptz, timezone text, day date, sent int, day_limit int,
               last_reply_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT a.id, a.email, a.pool, a.configured, a.state, a.state_reason, a.state_changed_at, a.timezone, d.day,
           coalesce((SELECT sent FROM account_days x WHERE x.account_id = a.id AND x.day = d.day), 0),
           relance_account_limit(a.id, d.day),
           (SELECT max(i.detected_at) FROM inbound_messages i WHERE i.account_id = a.id AND i.kind = 'human_reply')
      FROM accounts a CROSS JOIN LATERAL (SELECT relance_local_day(p_now, a.timezone) AS day) d
     ORDER BY a.pool, a.email
$$;

-- Health checks after a rejection counted against the account: it pauses
-- after max_policy_blocks policy blocks within 24 h (refused at SMTP time,
-- or coming back as DSNs: inbound_messages, by the time they were seen),
-- or when more than max_bounce_rate of its last 100 sends (at least 20)
-- bounced hard (at SMTP time or as a DSN: the message is then 'bounced').
CREATE OR REPLACE FUNCTION relance_account_health(p_account bigint, p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    a accounts%ROWTYPE;
    v_blocks int;
    v_hard int;
    v_sends int;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_account;
    SELECT (SELECT count(*) FROM messages
             WHERE account_id = p_account AND outcome = 'rejected_policy' AND created_at > p_now - interval '24 hours')
         + (SELECT count(*) FROM inbound_messages
             WHERE account_id = p_account AND effect = 'blocked' AND detected_at > p_now - interval '24 hours')
      INTO v_blocks;
    IF v_blocks >= a.max_policy_blocks THEN
        PERFORM relance_account_pause(p_account, p_now,
            format('%s policy blocks within 24 h (max_policy_blocks %s)', v_blocks, a.max_policy_blocks));
        RETURN;
    END IF;
    SELECT count(*), count(*) FILTER (WHERE state = 'bounced') INTO v_sends, v_hard
      FROM (SELECT state FROM messages
             WHERE account_id = p_account AND state IN ('sent', 'unknown', 'bounced')
             ORDER BY created_at DESC LIMIT 100) last100;
    IF v_sends >= 20 AND v_hard::double precision / v_sends > a.max_bounce_rate THEN
        PERFORM relance_account_pause(p_account, p_now,
            format('hard-bounce rate %s%% over the last %s sends (max_bounce_rate %s%%)',
                   round(100.0 * v_hard / v_sends, 1), v_sends, round(100 * a.max_bounce_rate::numeric, 1)));
    END IF;
END $$;

-- The reason of a pause for a receiver's refusal of the account: the
-- server's words (code, enhanced status, text), less the addresses they
-- quote in angle brackets (Postfix's "<bob@x.example>: Recipient address
-- rejected: ..."): a prospect's address must not outlive the retention of
-- messages in an account's reason. p_count > 1: how many refusals of the
-- code within the hour made the pause.
CREATE OR REPLACE FUNCTION relance_refusal_reason(p_reply text, p_status text, p_count int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_count > 1 THEN format('sender refused %s times within an hour (%s): ', p_count, p_status)
                ELSE 'sender refused: ' END
           || left(regexp_replace(coalesce(p_reply, ''), '<[^<>[:space:]]*@[^<>[:space:]]*>', '<address>', 'g'), 300)
$$;

-- A temporary policy refusal (4.7.x: outcome deferred_policy, refusal.h)
-- counted against the account: the same code p_status three times within
-- an hour pauses it, the server's last words (p_reply) in the reason.
-- Greylisting never comes here (it is plain 'deferred'): it clears by
-- itself, whatever the account's standing. Throttling and temporary
-- authentication refusals that last an hour do not.
CREATE OR REPLACE FUNCTION relance_account_refused(p_account bigint, p_now timestamptz, p_status text, p_reply text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_n int;
BEGIN
    DELETE FROM account_refusals WHERE account_id = p_account AND at <= p_now - interval '1 hour';
    INSERT INTO account_refusals (account_id, status, at) VALUES (p_account, p_status, p_now);
    SELECT count(*) INTO v_n FROM account_refusals
     WHERE account_id = p_account AND status = p_status AND at > p_now - interval '1 hour';
    IF v_n >= 3 THEN
        PERFORM relance_account_pause(p_account, p_now, relance_refusal_reason(p_reply, p_status, v_n));
    END IF;
END $$;

-- Makes pools and accounts match the configuration (a JSON document built
-- by relance from its YAML: {"pools": [{"name", "domain_hourly_limit",
-- "accounts": [{"email", "from_name", "daily_limit", "min_interval_s",
-- "interval_jitter_s", "timezone", "warmup_start", "warmup_increase",
-- "max_bounce_rate", "max_policy_blocks", "unavailable"}]}]}). Accounts
-- gone from the configuration stay (their history does) but are marked
-- configured = false and never claimed. Returns the number of configured
-- accounts.
--
-- From serve ("secrets_checked": true, with "now"), an account whose
-- secret serve cannot read ("unavailable": why) is paused with the reason
-- 'missing secret: why', and one paused so that serve can now read is
-- resumed: the other accounts go on sending meanwhile. `relance accounts
-- sync` (a shell that may lack the secrets) leaves those pauses alone.
-- Either way, enrollments held for a sender field the account lacked
-- (missing_field:sender.NAME) are let go to be tried again with the
-- configuration as it is now.
CREATE OR REPLACE FUNCTION relance_sync_accounts(p_config jsonb) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
    r record;
    v_now timestamptz := coalesce((p_config->>'now')::timestamptz, now());
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
    IF coalesce((p_config->>'secrets_checked')::boolean, false) THEN
        FOR r IN SELECT x.id, x.email, x.state, x.state_reason, a->>'unavailable' AS why
                   FROM jsonb_array_elements(p_config->'pools') p, jsonb_array_elements(p->'accounts') a
                   JOIN accounts x ON x.email = lower(a->>'email')
                  ORDER BY x.id
                    FOR UPDATE OF x
        LOOP
            IF r.why IS NOT NULL THEN
                PERFORM relance_account_pause(r.id, v_now, 'missing secret: ' || r.why);
            ELSIF r.state = 'paused' AND r.state_reason LIKE 'missing secret: %' THEN
                UPDATE accounts SET state = 'active', state_reason = 'secret available', state_changed_at = v_now
                 WHERE id = r.id;
                PERFORM relance_event('account.resumed', v_now, NULL, NULL, NULL,
                                      jsonb_build_object('account', r.email, 'reason', 'secret available'));
            END IF;
        END LOOP;
    END IF;
    UPDATE enrollments SET state = 'active', state_reason = 'configuration reloaded', state_changed_at = v_now
     WHERE state = 'held' AND state_reason LIKE 'missing\_field:sender.%';
    SELECT count(*) INTO n FROM accounts WHERE configured;
    RETURN n;
END $$;
