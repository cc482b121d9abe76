-- 011: relance_claim_account finds its steps through indexes.
--
-- The claim chose its candidates with one query, "the account's own due
-- follow-ups or the pool's new enrollments, own first, then oldest",
-- whose OR and ORDER BY (account_id IS NULL, next_send_at) no index can
-- serve: every claim read and sorted every due row of every account
-- (50 ms at 20,000 due; 3.3 s at 1,000,000 due, where 8 accounts sent 12
-- messages a second -- tests/bench/run send_throughput, profiled with
-- pg_stat_statements). It now takes them in two passes with the same
-- rules, each an index scan in due order that stops at its limit and
-- skips rows other claims hold: the account's follow-ups
-- (enrollments_account_due), then its share of the pool's new
-- enrollments (enrollments_new_due, below). At 1,000,000 due a claim
-- takes about 95 ms and the same 8 accounts send about 230 a second.
-- Nothing else changes: rotation, shares, caps, spacing, domain throttle.

-- Due new enrollments (no sender account yet), in due order.
CREATE INDEX enrollments_new_due ON enrollments (next_send_at) WHERE state = 'active' AND account_id IS NULL;

-- One candidate step of an account's claim: NULL (it waits) when its
-- recipient's domain is at the pool's hourly limit, else
-- relance_take_step's answer.
CREATE FUNCTION relance_claim_candidate(p_enrollment bigint, p_rcpt text, p_now timestamptz, p_account bigint,
                                        p_sender text, p_pool text, p_domain_limit int, p_replica text)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF p_domain_limit > 0 AND (
           SELECT count(*) FROM messages m JOIN accounts x ON x.id = m.account_id
            WHERE x.pool = p_pool AND m.created_at > p_now - interval '1 hour'
              AND m.state IN ('sending', 'sent', 'unknown', 'bounced')
              AND split_part(lower(m.recipient), '@', 2) = split_part(lower(p_rcpt), '@', 2))
         >= p_domain_limit THEN
        RETURN NULL;
    END IF;
    RETURN relance_take_step(p_enrollment, p_now, split_part(p_sender, '@', 2), p_replica, p_account, p_sender);
END $$;

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
CREATE OR REPLACE FUNCTION relance_claim_account(p_now timestamptz, p_account bigint, p_limit int, p_replica text)
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
    -- The account's own follow-ups, oldest first: enrollments_account_due.
    FOR v_id, v_rcpt IN
        SELECT e.id, c.email
          FROM enrollments e
          JOIN contacts c ON c.id = e.contact_id
         WHERE e.account_id = p_account AND e.state = 'active' AND e.next_send_at <= p_now
         ORDER BY e.next_send_at
         LIMIT v_n * 4
           FOR UPDATE OF e SKIP LOCKED
    LOOP
        EXIT WHEN v_taken >= v_n;
        v_mid := relance_claim_candidate(v_id, v_rcpt, p_now, a.id, a.email, a.pool, v_domain_limit, p_replica);
        CONTINUE WHEN v_mid IS NULL;
        v_taken := v_taken + 1;
        RETURN QUERY SELECT * FROM relance_claimed(v_mid);
    END LOOP;
    -- Then its share of the pool's new enrollments, oldest first:
    -- enrollments_new_due.
    IF v_take_new AND v_taken < v_n THEN
        FOR v_id, v_rcpt IN
            SELECT e.id, c.email
              FROM enrollments e
              JOIN contacts c ON c.id = e.contact_id
              JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version
             WHERE e.account_id IS NULL AND e.state = 'active' AND e.next_send_at <= p_now
               AND v.sender_pool = a.pool
             ORDER BY e.next_send_at
             LIMIT v_n * 4
               FOR UPDATE OF e SKIP LOCKED
        LOOP
            EXIT WHEN v_taken >= v_n OR v_new_taken >= v_new_max;
            v_mid := relance_claim_candidate(v_id, v_rcpt, p_now, a.id, a.email, a.pool, v_domain_limit,
                                             p_replica);
            CONTINUE WHEN v_mid IS NULL;
            v_taken := v_taken + 1;
            v_new_taken := v_new_taken + 1;
            RETURN QUERY SELECT * FROM relance_claimed(v_mid);
        END LOOP;
    END IF;
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
