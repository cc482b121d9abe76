-- 013: an idle claim no longer reads every account of the pool.
--
-- relance_claim_account (011) decided the rotation of new enrollments
-- before it knew whether any were due: three room computations for every
-- other account of the pool, on every claim. A cycle claims for every
-- account this replica holds, so a cycle cost grew with the square of the
-- pool: at 1,000 accounts one claim took 350-450 ms and one cycle several
-- minutes, during which lease renewals and the mailbox watcher's queries
-- waited behind it on the one database connection (tests/bench/run
-- watch_latency). Now the due new enrollments are counted first (an index
-- probe), the rotation is looked at only when there are some, each peer's
-- room is computed once, and the search stops at the first peer with more
-- room. The rules are 011's: same rotation, shares, caps and spacing.

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
    -- New enrollments due in the pool: counted first, because only then
    -- does the rotation below matter, and it reads every account of the
    -- pool. An account with nothing new to share claims in O(1).
    SELECT count(*) INTO v_new_due FROM (
        SELECT 1 FROM enrollments e
          JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version
         WHERE e.state = 'active' AND e.next_send_at <= p_now AND e.account_id IS NULL AND v.sender_pool = a.pool
         LIMIT p_limit) x;
    -- Rotation: this account takes new enrollments only if no other
    -- available account of the pool has more room today (ties: the least
    -- recently used). Each peer's room is computed once, and the search
    -- stops at the first peer with more.
    v_take_new := v_new_due > 0 AND NOT EXISTS (
        SELECT 1 FROM accounts o
         CROSS JOIN LATERAL (SELECT coalesce(relance_account_remaining(o.id, relance_local_day(p_now, o.timezone)),
                                             2147483647) AS room) r
         WHERE o.pool = a.pool AND o.id <> a.id AND o.state = 'active' AND o.configured
           AND (o.next_send_after IS NULL OR o.next_send_after <= p_now)
           AND (r.room > coalesce(v_remaining, 2147483647)
                OR (r.room = coalesce(v_remaining, 2147483647)
                    AND coalesce(o.last_claim_at, '-infinity') < coalesce(a.last_claim_at, '-infinity'))));
    -- Share the new enrollments due now among the accounts as available
    -- as this one, so one claim does not take them all.
    IF v_take_new THEN
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
