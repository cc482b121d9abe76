-- claim: taking due steps to send. A claim locks due enrollments with
-- FOR UPDATE SKIP LOCKED, so replicas never take the same one, and writes
-- their message rows in the same statement: the unique (enrollment,
-- position) key makes a second attempt at a step impossible, whatever
-- crashes or replicas do. What happens to a claimed message next is
-- outcomes.sql's.
--
-- Today's table (sql/schema.sql holds every constraint and index):
--
-- One row per step sent (or being sent) to an enrollment.
-- TABLE messages (
--     id            bigserial   PRIMARY KEY
--     enrollment_id bigint      NOT NULL REFERENCES enrollments
--     position      int         NOT NULL          -- UNIQUE (enrollment_id, position)
--     step_id       text        NOT NULL
--     variant       int                           -- A/B variant index, NULL without variants
--     state         text        NOT NULL          -- sending sent deferred bounced unknown failed
--     message_id    text        NOT NULL UNIQUE   -- RFC 5322 Message-ID, without <>
--     account_id    bigint      REFERENCES accounts
--     sender        text
--     recipient     text        NOT NULL
--     subject       text
--     attempts      int         NOT NULL DEFAULT 0
--     reply         text                          -- the server's final reply
--     claimed_by    text                          -- the replica sending it (see leases.sql)
--     body_started  boolean     NOT NULL DEFAULT false -- past the point of no return: a row
--                                                   -- left 'sending' with it may have gone
--     created_at    timestamptz NOT NULL
--     sent_at       timestamptz
--     outcome       text                          -- the last SMTP outcome's name
--     soft_bounces  int         NOT NULL DEFAULT 0
-- )

-- Takes one due step of a locked enrollment: a suppressed contact stops
-- the enrollment; a step whose window is closed at p_now (after a pause,
-- say) is moved to the next opening; otherwise the message row is
-- written as 'sending' (a 'deferred' one is taken again, keeping its
-- Message-ID) and the enrollment leaves the due index (next_send_at NULL)
-- until the outcome is recorded. The unique (enrollment, position) key
-- makes a second attempt at a step that went out impossible. Returns the
-- Message-ID, or NULL when nothing is to be sent now.
CREATE OR REPLACE FUNCTION relance_take_step(p_enrollment bigint, p_now timestamptz, p_id_domain text, p_replica text,
                                  p_account bigint, p_sender text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_zone text;
    v_open timestamptz;
    v_mid text;
    v_step text;
    v_pattern text;
BEGIN
    SELECT e.id, e.position, e.sequence_id, e.version, e.jitter_r, c.email, c.timezone AS ctz,
           v.timezone AS vtz, v.fallback_timezone, v.window_start_min, v.window_end_min, v.days, v.jitter_seconds
      INTO r
      FROM enrollments e
      JOIN contacts c ON c.id = e.contact_id
      JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version
     WHERE e.id = p_enrollment;
    -- `relance suppress add` stops a suppressed contact's enrollments at
    -- once; this is the last guard, for a suppression written another way.
    v_pattern := relance_suppression_of(r.email);
    IF v_pattern IS NOT NULL THEN
        UPDATE enrollments SET state = 'stopped', state_reason = 'suppressed: ' || v_pattern,
                               state_changed_at = p_now, next_send_at = NULL
         WHERE id = r.id;
        RETURN NULL;
    END IF;
    v_zone := relance_zone(r.vtz, r.ctz, r.fallback_timezone);
    v_open := relance_next_window(p_now, v_zone, r.window_start_min, r.window_end_min, r.days);
    IF v_open > p_now THEN
        UPDATE enrollments
           SET next_send_at = relance_window_jitter(v_open, v_zone, r.window_start_min, r.window_end_min,
                                                    r.jitter_seconds, r.jitter_r)
         WHERE id = r.id;
        RETURN NULL;
    END IF;
    SELECT s.step_id INTO v_step FROM sequence_steps s
     WHERE s.sequence_id = r.sequence_id AND s.version = r.version AND s.position = r.position;
    IF NOT FOUND THEN
        UPDATE enrollments SET state = 'completed', state_reason = 'all steps sent', state_changed_at = p_now,
                               next_send_at = NULL
         WHERE id = r.id;
        RETURN NULL;
    END IF;
    v_mid := replace(gen_random_uuid()::text, '-', '') || '@' || p_id_domain;
    INSERT INTO messages AS m (enrollment_id, position, step_id, state, message_id, recipient, attempts,
                               created_at, claimed_by, account_id, sender)
    VALUES (r.id, r.position, v_step, 'sending', v_mid, r.email, 1, p_now, p_replica, p_account, p_sender)
    ON CONFLICT (enrollment_id, position) DO UPDATE
       SET state = 'sending', attempts = m.attempts + 1, claimed_by = p_replica
     WHERE m.state = 'deferred'
    RETURNING m.message_id INTO v_mid;
    IF NOT FOUND THEN
        -- This step went out (or may have) before: never again.
        UPDATE enrollments SET state = 'failed', state_reason = 'step ' || v_step || ' already attempted',
                               state_changed_at = p_now, next_send_at = NULL
         WHERE id = r.id;
        RETURN NULL;
    END IF;
    UPDATE enrollments SET next_send_at = NULL, account_id = coalesce(account_id, p_account) WHERE id = r.id;
    RETURN v_mid;
END $$;

-- What the dispatcher needs to compose a claimed message. thread_ids:
-- the Message-IDs already sent to this enrollment, oldest first,
-- space-separated; first_subject: the subject the first step had.
CREATE OR REPLACE FUNCTION relance_claimed(p_message_id text)
RETURNS TABLE (message_id text, enrollment_id bigint, step_position int, step_id text, sequence_id bigint,
               version int, email text, fields text, thread_ids text, first_subject text)
LANGUAGE sql STABLE AS $$
    SELECT m.message_id, e.id, m.position, m.step_id, e.sequence_id, e.version, c.email,
           relance_contact_fields(c.id),
           (SELECT coalesce(string_agg(p.message_id, ' ' ORDER BY p.position), '') FROM messages p
             WHERE p.enrollment_id = e.id AND p.position < m.position AND p.state IN ('sent', 'unknown')),
           (SELECT p.subject FROM messages p WHERE p.enrollment_id = e.id AND p.position = 0)
      FROM messages m
      JOIN enrollments e ON e.id = m.enrollment_id
      JOIN contacts c ON c.id = e.contact_id
     WHERE m.message_id = p_message_id
$$;

-- Claims up to p_limit due steps, without sender accounts (the capture
-- transport): due, active enrollments, oldest first, locked with SKIP
-- LOCKED so replicas never take the same one; the message rows commit
-- with the claim, in this one statement.
CREATE OR REPLACE FUNCTION relance_claim_due(p_now timestamptz, p_limit int, p_id_domain text, p_replica text)
RETURNS TABLE (message_id text, enrollment_id bigint, step_position int, step_id text, sequence_id bigint,
               version int, email text, fields text, thread_ids text, first_subject text)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_mid text;
BEGIN
    FOR v_id IN
        SELECT e.id FROM enrollments e
         WHERE e.state = 'active' AND e.next_send_at <= p_now
         ORDER BY e.next_send_at
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    LOOP
        v_mid := relance_take_step(v_id, p_now, p_id_domain, p_replica, NULL, NULL);
        IF v_mid IS NOT NULL THEN
            -- Without an account (capture) the message is written right
            -- after the claim: the claim is its point of no return.
            UPDATE messages m SET body_started = true WHERE m.message_id = v_mid;
            RETURN QUERY SELECT * FROM relance_claimed(v_mid);
        END IF;
    END LOOP;
END $$;

-- One candidate step of an account's claim: NULL (it waits) when its
-- recipient's domain is at the pool's hourly limit, else
-- relance_take_step's answer.
CREATE OR REPLACE FUNCTION relance_claim_candidate(p_enrollment bigint, p_rcpt text, p_now timestamptz, p_account bigint,
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

-- The earliest due time of any active enrollment, for the dispatcher's timer.
CREATE OR REPLACE FUNCTION relance_next_due() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT next_send_at FROM enrollments WHERE state = 'active' AND next_send_at IS NOT NULL
     ORDER BY next_send_at LIMIT 1
$$;

-- relance_claim_account for the capture transport: the same claim (the
-- account's caps, spacing and the pool's rotation, so a dry run shows
-- which account writes to whom, and when), with each message past its
-- point of no return at once, as relance_claim_due marks it: the file is
-- written right after the claim, with no SMTP body to hold.
CREATE OR REPLACE FUNCTION relance_claim_account_captured(p_now timestamptz, p_account bigint, p_limit int,
                                                          p_replica text)
RETURNS TABLE (message_id text, enrollment_id bigint, step_position int, step_id text, sequence_id bigint,
               version int, email text, fields text, thread_ids text, first_subject text)
LANGUAGE sql AS $$
    WITH c AS (SELECT * FROM relance_claim_account(p_now, p_account, p_limit, p_replica)),
         u AS (UPDATE messages m SET body_started = true FROM c WHERE m.message_id = c.message_id)
    SELECT * FROM c
$$;
