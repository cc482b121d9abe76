-- 006: sender accounts and pools, synced from the deployment
-- configuration by `relance serve` and `relance accounts sync`; the
-- per-account day counters behind daily caps and warm-up; the claim that
-- sends through accounts.

CREATE TABLE pools (
    name                text PRIMARY KEY,
    domain_hourly_limit int  NOT NULL DEFAULT 0 CHECK (domain_hourly_limit >= 0)  -- 0: none
);

CREATE TABLE accounts (
    id                bigserial   PRIMARY KEY,
    email             text        NOT NULL UNIQUE,
    pool              text        NOT NULL REFERENCES pools (name),
    from_name         text,
    daily_limit       int         NOT NULL DEFAULT 0 CHECK (daily_limit >= 0),      -- 0: none
    min_interval_s    int         NOT NULL DEFAULT 0 CHECK (min_interval_s >= 0),
    interval_jitter_s int         NOT NULL DEFAULT 0 CHECK (interval_jitter_s >= 0),
    timezone          text        NOT NULL DEFAULT 'UTC',                           -- the account's day
    warmup_start      int         NOT NULL DEFAULT 0 CHECK (warmup_start >= 0),     -- 0: no warm-up
    warmup_increase   int         NOT NULL DEFAULT 0 CHECK (warmup_increase >= 0),
    configured        boolean     NOT NULL DEFAULT true,   -- false once gone from the configuration
    state             text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused')),
    state_reason      text,
    state_changed_at  timestamptz,
    next_send_after   timestamptz,                         -- spacing: nothing before this
    last_claim_at     timestamptz,                         -- ties between accounts go to the least recent
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- Messages counted against an account's cap, per day of the account's
-- zone. A message counts once its SMTP transaction got past MAIL FROM;
-- the claim reserves the count and a failure before MAIL FROM gives it
-- back.
CREATE TABLE account_days (
    account_id bigint NOT NULL REFERENCES accounts (id),
    day        date   NOT NULL,
    sent       int    NOT NULL DEFAULT 0 CHECK (sent >= 0),
    PRIMARY KEY (account_id, day)
);

ALTER TABLE enrollments ADD FOREIGN KEY (account_id) REFERENCES accounts (id);
ALTER TABLE messages ADD FOREIGN KEY (account_id) REFERENCES accounts (id);
CREATE INDEX enrollments_account_due ON enrollments (account_id, next_send_at)
    WHERE state = 'active' AND account_id IS NOT NULL;

-- An account's limit for the day: daily_limit, ramped by the warm-up when
-- configured. Day 0 of the warm-up is the first day the account sent;
-- days it did not send (paused) do not advance it.
CREATE FUNCTION relance_account_limit(p_account bigint, p_day date) RETURNS int
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
CREATE FUNCTION relance_account_remaining(p_account bigint, p_day date) RETURNS int
LANGUAGE sql STABLE AS $$
    SELECT relance_account_limit(p_account, p_day)
           - coalesce((SELECT sent FROM account_days WHERE account_id = p_account AND day = p_day), 0)
$$;

-- Claims the steps one account may send now. Run by the replica holding
-- the account's lease ('account:ID'), under a lock on the account row, so
-- its caps hold exactly with several replicas. Follow-ups of the
-- account's own enrollments go first, then the oldest due; first steps
-- of the pool's sequences are taken only by the available account with
-- the most remaining capacity today (ties: the least recently used), so
-- new enrollments rotate across the pool. With min_interval an account
-- takes one step per claim and the next no sooner than min_interval plus
-- a random extra up to interval_jitter. A recipient domain over the
-- pool's domain_hourly_limit waits.
CREATE FUNCTION relance_claim_account(p_now timestamptz, p_account bigint, p_limit int, p_replica text)
RETURNS TABLE (message_id text, enrollment_id bigint, step_position int, step_id text, sequence_id bigint,
               version int, email text, fields text, thread_ids text, first_subject text)
LANGUAGE plpgsql AS $$
DECLARE
    a accounts%ROWTYPE;
    v_day date;
    v_remaining int;
    v_best int;
    v_take_new boolean;
    v_n int;
    v_domain_limit int;
    v_id bigint;
    v_rcpt text;
    v_mid text;
    v_taken int := 0;
    v_new_due int;
    v_peers int;
    v_new_max int := 0;
    v_new_taken int := 0;
    v_is_new boolean;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_account FOR UPDATE;
    IF NOT FOUND OR a.state <> 'active' OR NOT a.configured
       OR (a.next_send_after IS NOT NULL AND a.next_send_after > p_now) THEN
        RETURN;
    END IF;
    PERFORM 1 FROM leases WHERE name = 'account:' || p_account AND holder = p_replica
                            AND expires_at > clock_timestamp();
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_day := relance_local_day(p_now, a.timezone);
    v_remaining := relance_account_remaining(p_account, v_day);
    IF v_remaining IS NOT NULL AND v_remaining <= 0 THEN
        RETURN;
    END IF;
    v_n := CASE WHEN a.min_interval_s > 0 THEN 1 ELSE least(p_limit, coalesce(v_remaining, p_limit)) END;
    -- Rotation: this account takes new enrollments only if no other
    -- available account of the pool has more room today.
    SELECT max(coalesce(relance_account_remaining(o.id, relance_local_day(p_now, o.timezone)), 2147483647))
      INTO v_best
      FROM accounts o
     WHERE o.pool = a.pool AND o.id <> a.id AND o.state = 'active' AND o.configured
       AND (o.next_send_after IS NULL OR o.next_send_after <= p_now)
       AND (coalesce(relance_account_remaining(o.id, relance_local_day(p_now, o.timezone)), 2147483647)
              > coalesce(v_remaining, 2147483647)
            OR (coalesce(relance_account_remaining(o.id, relance_local_day(p_now, o.timezone)), 2147483647)
                  = coalesce(v_remaining, 2147483647)
                AND coalesce(o.last_claim_at, '-infinity') < coalesce(a.last_claim_at, '-infinity')));
    v_take_new := v_best IS NULL;
    -- Share the new enrollments due now among the accounts as available
    -- as this one, so one claim does not take them all.
    IF v_take_new THEN
        SELECT count(*) INTO v_new_due FROM (
            SELECT 1 FROM enrollments e
              JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version
             WHERE e.state = 'active' AND e.next_send_at <= p_now AND e.account_id IS NULL AND v.sender_pool = a.pool
             LIMIT p_limit) x;
        -- peers: the available accounts that have not claimed at this
        -- instant yet (a dispatcher cycle claims for all at one p_now)
        SELECT count(*) INTO v_peers FROM accounts o
         WHERE o.pool = a.pool AND o.id <> a.id AND o.state = 'active' AND o.configured
           AND (o.next_send_after IS NULL OR o.next_send_after <= p_now)
           AND o.last_claim_at IS DISTINCT FROM p_now
           AND coalesce(relance_account_remaining(o.id, relance_local_day(p_now, o.timezone)), 2147483647) > 0;
        v_new_max := ceil(v_new_due::numeric / (v_peers + 1));
    END IF;
    SELECT domain_hourly_limit INTO v_domain_limit FROM pools WHERE name = a.pool;
    FOR v_id, v_rcpt, v_is_new IN
        SELECT e.id, c.email, e.account_id IS NULL
          FROM enrollments e
          JOIN contacts c ON c.id = e.contact_id
          JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version
         WHERE e.state = 'active' AND e.next_send_at <= p_now
           AND (e.account_id = p_account OR (v_take_new AND e.account_id IS NULL AND v.sender_pool = a.pool))
         ORDER BY e.account_id IS NULL, e.next_send_at
         LIMIT v_n * 4
           FOR UPDATE OF e SKIP LOCKED
    LOOP
        EXIT WHEN v_taken >= v_n;
        IF v_is_new AND v_new_taken >= v_new_max THEN
            CONTINUE;
        END IF;
        IF v_domain_limit > 0 AND (
               SELECT count(*) FROM messages m JOIN accounts x ON x.id = m.account_id
                WHERE x.pool = a.pool AND m.created_at > p_now - interval '1 hour'
                  AND m.state IN ('sending', 'sent', 'unknown', 'bounced')
                  AND split_part(lower(m.recipient), '@', 2) = split_part(lower(v_rcpt), '@', 2))
             >= v_domain_limit THEN
            CONTINUE;
        END IF;
        v_mid := relance_take_step(v_id, p_now, split_part(a.email, '@', 2), p_replica, p_account, a.email);
        IF v_mid IS NULL THEN
            CONTINUE;
        END IF;
        v_taken := v_taken + 1;
        IF v_is_new THEN
            v_new_taken := v_new_taken + 1;
        END IF;
        RETURN QUERY SELECT * FROM relance_claimed(v_mid);
    END LOOP;
    IF v_taken > 0 THEN
        INSERT INTO account_days (account_id, day, sent) VALUES (p_account, v_day, v_taken)
        ON CONFLICT (account_id, day) DO UPDATE SET sent = account_days.sent + EXCLUDED.sent;
        UPDATE accounts
           SET last_claim_at = p_now,
               next_send_after = CASE WHEN a.min_interval_s > 0
                                      THEN p_now + make_interval(secs => a.min_interval_s
                                                   + floor(random() * (a.interval_jitter_s + 1)))
                                      END
         WHERE id = p_account;
    END IF;
END $$;

-- A claimed message did not leave (a failure before the point of no
-- return): it becomes 'deferred' and the step is retried from the same
-- account after p_retry_at (the window is checked again then). When the
-- transaction never got past MAIL FROM the cap's count is given back.
CREATE FUNCTION relance_step_deferred(p_message_id text, p_now timestamptz, p_retry_at timestamptz, p_reply text,
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
         WHERE a.id = m.account_id AND d.account_id = a.id AND d.day = relance_local_day(m.created_at, a.timezone);
    END IF;
    INSERT INTO events (kind, occurred_at, data)
    VALUES ('message.deferred', p_now, jsonb_build_object('message_id', p_message_id, 'reply', p_reply,
                                                           'enrollment_id', m.enrollment_id));
END $$;

-- Leases on accounts for a replica: renews those it holds and takes
-- those free or expired. Returns the account ids it holds.
CREATE FUNCTION relance_account_leases(p_replica text, p_ttl_seconds int)
RETURNS SETOF bigint LANGUAGE sql AS $$
    INSERT INTO leases (name, holder, expires_at)
    SELECT 'account:' || a.id, p_replica, clock_timestamp() + make_interval(secs => p_ttl_seconds)
      FROM accounts a WHERE a.configured
    ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
     WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < clock_timestamp()
    RETURNING substr(name, 9)::bigint
$$;

-- Rows left 'sending' by a replica that is gone: if the body had started
-- to go out the step may have been delivered, so it becomes 'unknown'
-- (counts as sent, never re-sent); if not, nothing left and it is
-- deferred, to be retried. Never this replica's own rows: it may still
-- have them in flight.
CREATE FUNCTION relance_rescue_sending(p_now timestamptz, p_replica text)
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

-- relance_sync_accounts, which makes pools and accounts match the
-- configuration, is in 007 with the health thresholds it also syncs.
