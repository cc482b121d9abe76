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
--     created_at    timestamptz NOT NULL          -- the first claim
--     sent_at       timestamptz
--     outcome       text                          -- the last SMTP outcome's name
--     soft_bounces  int         NOT NULL DEFAULT 0
--     pruned_at     timestamptz                   -- retention stripped its addresses (retention.sql)
--     claimed_at    timestamptz                   -- the last claim, when taken again after a
--                                                 -- deferral (NULL: created_at); its day is
--                                                 -- the one the cap counted
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
       SET state = 'sending', attempts = m.attempts + 1, claimed_by = p_replica, claimed_at = p_now,
           -- another account when the one refused as unauthenticated let
           -- the enrollment go before its first step (outcomes.sql)
           account_id = coalesce(p_account, m.account_id), sender = coalesce(p_sender, m.sender)
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

-- An account's room today for the rotation: relance_account_remaining,
-- read only when the account has a cap (daily_limit or warm-up); without
-- one it has all the room there is (2147483647), with no read of its day
-- counters, which cost more than the rest of a claim when done for every
-- peer.
CREATE OR REPLACE FUNCTION relance_account_room(p_account bigint, p_daily_limit int, p_warmup_start int,
                                                p_timezone text, p_now timestamptz)
RETURNS int
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_daily_limit = 0 AND p_warmup_start = 0 THEN 2147483647
                ELSE coalesce(relance_account_remaining(p_account, relance_local_day(p_now, p_timezone)), 2147483647)
           END
$$;

-- The rotation's order between two accounts: whether a peer with room
-- p_room, last claimed at p_last, comes before an account with room
-- a_room, last claimed at a_last (more room first, then the least
-- recently used).
CREATE OR REPLACE FUNCTION relance_room_beats(p_room int, p_last timestamptz, a_room int, a_last timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_room > a_room
           OR (p_room = a_room AND coalesce(p_last, '-infinity') < coalesce(a_last, '-infinity'))
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
--
-- p_new_max: how many new enrollments the account may take (its share,
-- decided by relance_claim_accounts for a whole cycle), or NULL to decide
-- here, against every peer of the pool (relance_claim_account).
CREATE OR REPLACE FUNCTION relance_claim_account_share(p_now timestamptz, p_account bigint, p_limit int,
                                                       p_replica text, p_new_max int)
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
    IF p_new_max IS NOT NULL THEN
        v_take_new := p_new_max > 0;
        v_new_max := p_new_max;
    ELSE
        -- New enrollments due in the pool: counted first, because only then
        -- does the rotation below matter, and it reads every account of the
        -- pool. An account with nothing new to share claims in O(1).
        SELECT count(*) INTO v_new_due FROM (
            SELECT 1 FROM enrollments e
              JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version
             WHERE e.state = 'active' AND e.next_send_at <= p_now AND e.account_id IS NULL AND v.sender_pool = a.pool
             LIMIT p_limit) x;
        -- Rotation: this account takes new enrollments only if no other
        -- available account of the pool comes before it (relance_room_beats);
        -- a peer with a message in flight (messages_in_flight) is not
        -- available: its replica claims for it once its messages are back.
        v_take_new := v_new_due > 0 AND NOT EXISTS (
            SELECT 1 FROM accounts o
             WHERE o.pool = a.pool AND o.id <> a.id AND o.state = 'active' AND o.configured
               AND (o.next_send_after IS NULL OR o.next_send_after <= p_now)
               AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.account_id = o.id AND m.state = 'sending')
               AND relance_room_beats(relance_account_room(o.id, o.daily_limit, o.warmup_start, o.timezone, p_now),
                                      o.last_claim_at, coalesce(v_remaining, 2147483647), a.last_claim_at));
        -- Share the new enrollments due now among the available accounts
        -- that have not claimed at this instant yet (a cycle claims for
        -- all at one p_now), so one claim does not take them all.
        IF v_take_new THEN
            SELECT count(*) INTO v_peers FROM accounts o
             WHERE o.pool = a.pool AND o.id <> a.id AND o.state = 'active' AND o.configured
               AND (o.next_send_after IS NULL OR o.next_send_after <= p_now)
               AND o.last_claim_at IS DISTINCT FROM p_now
               AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.account_id = o.id AND m.state = 'sending')
               AND relance_account_room(o.id, o.daily_limit, o.warmup_start, o.timezone, p_now) > 0;
            v_new_max := ceil(v_new_due::numeric / (v_peers + 1));
        END IF;
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

-- One account's claim, the rotation decided against every peer of its
-- pool: the previous release's entry point (relance serve now claims a
-- cycle's accounts at once, relance_claim_accounts).
CREATE OR REPLACE FUNCTION relance_claim_account(p_now timestamptz, p_account bigint, p_limit int, p_replica text)
RETURNS TABLE (message_id text, enrollment_id bigint, step_position int, step_id text, sequence_id bigint,
               version int, email text, fields text, thread_ids text, first_subject text)
LANGUAGE sql AS $$
    SELECT * FROM relance_claim_account_share(p_now, p_account, p_limit, p_replica, NULL)
$$;

-- A claim cycle's claims, one statement for all the accounts a replica
-- claims for at p_now (p_accounts: those it holds the leases of, with
-- work, and few enough messages in flight by its own count: it claims
-- for an account again while the end of its last claim still goes out),
-- each as relance_claim_account_share
-- claims it. The rotation is decided once per pool, not once per account
-- against every peer (which cost O(accounts^2) per cycle): the accounts
-- are served most room first, then the least recently used; each takes
-- an equal share of the pool's new enrollments due now, shared among them
-- and the pool's other available accounts free to send (another replica's,
-- say), unless one of those others comes before it in the same order (it
-- takes them when its own replica claims). p_captured: the capture
-- transport, whose messages are past their point of no return at once
-- (the file is written right after the claim, with no SMTP body to hold).
CREATE OR REPLACE FUNCTION relance_claim_accounts(p_now timestamptz, p_accounts bigint[], p_limit int,
                                                  p_replica text, p_captured boolean)
RETURNS TABLE (account_id bigint, message_id text, enrollment_id bigint, step_position int, step_id text,
               sequence_id bigint, version int, email text, fields text, thread_ids text, first_subject text)
LANGUAGE plpgsql AS $$
DECLARE
    v_pool text;
    v_ids bigint[];
    v_rooms int[];
    v_lasts timestamptz[];
    v_free boolean[];
    v_cands int;
    v_others int;
    v_best_room int;
    v_best_last timestamptz;
    v_new_due int;
    v_share int;
    v_new_max int;
    v_claimed text[] := '{}';
    x record;
BEGIN
    FOR v_pool IN SELECT DISTINCT a.pool FROM accounts a WHERE a.id = ANY(p_accounts) ORDER BY 1 LOOP
        -- this replica's accounts of the pool in the rotation's order, with
        -- whether each is available (active, not spaced out, room left);
        -- an unavailable one still claims its own
        -- follow-ups where it can, with no share of the new
        SELECT array_agg(r.id ORDER BY r.free DESC, r.room DESC, r.last ASC NULLS FIRST, r.id),
               array_agg(r.room ORDER BY r.free DESC, r.room DESC, r.last ASC NULLS FIRST, r.id),
               array_agg(r.last ORDER BY r.free DESC, r.room DESC, r.last ASC NULLS FIRST, r.id),
               array_agg(r.free ORDER BY r.free DESC, r.room DESC, r.last ASC NULLS FIRST, r.id),
               count(*) FILTER (WHERE r.free)
          INTO v_ids, v_rooms, v_lasts, v_free, v_cands
          FROM (SELECT q.id, q.room, q.last, q.avail AND q.room > 0 AS free
                  FROM (SELECT a.id, a.last_claim_at AS last,
                               a.state = 'active' AND a.configured
                               AND (a.next_send_after IS NULL OR a.next_send_after <= p_now) AS avail,
                               relance_account_room(a.id, a.daily_limit, a.warmup_start, a.timezone, p_now) AS room
                          FROM accounts a WHERE a.id = ANY(p_accounts) AND a.pool = v_pool) q) r;
        -- the pool's other available accounts (another replica's, say):
        -- how many share the new enrollments, and the first of them in
        -- the rotation's order
        SELECT count(*),
               (array_agg(o.room ORDER BY o.room DESC, o.last ASC NULLS FIRST))[1],
               (array_agg(o.last ORDER BY o.room DESC, o.last ASC NULLS FIRST))[1]
          INTO v_others, v_best_room, v_best_last
          FROM (SELECT relance_account_room(a.id, a.daily_limit, a.warmup_start, a.timezone, p_now) AS room,
                       a.last_claim_at AS last
                  FROM accounts a
                 WHERE a.pool = v_pool AND NOT a.id = ANY(p_accounts) AND a.state = 'active' AND a.configured
                   AND (a.next_send_after IS NULL OR a.next_send_after <= p_now)
                   AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.account_id = a.id AND m.state = 'sending')) o
         WHERE o.room > 0;
        SELECT count(*) INTO v_new_due FROM (
            SELECT 1 FROM enrollments e
              JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version
             WHERE e.state = 'active' AND e.next_send_at <= p_now AND e.account_id IS NULL
               AND v.sender_pool = v_pool
             LIMIT greatest(p_limit, v_cands)) n;
        -- A cycle shares out at most p_limit new enrollments (or one per
        -- free account, when there are more): what it claims is composed
        -- and held in memory until it goes, and an account back from
        -- sending claims again at once.
        v_share := ceil(v_new_due::numeric / greatest(v_cands + v_others, 1));
        FOR i IN 1 .. coalesce(array_length(v_ids, 1), 0) LOOP
            v_new_max := CASE WHEN NOT v_free[i] OR v_new_due = 0 THEN 0
                              WHEN v_best_room IS NOT NULL
                                   AND relance_room_beats(v_best_room, v_best_last, v_rooms[i], v_lasts[i]) THEN 0
                              ELSE v_share END;
            FOR x IN SELECT * FROM relance_claim_account_share(p_now, v_ids[i], p_limit, p_replica, v_new_max) LOOP
                account_id := v_ids[i];
                message_id := x.message_id;
                enrollment_id := x.enrollment_id;
                step_position := x.step_position;
                step_id := x.step_id;
                sequence_id := x.sequence_id;
                version := x.version;
                email := x.email;
                fields := x.fields;
                thread_ids := x.thread_ids;
                first_subject := x.first_subject;
                v_claimed := v_claimed || x.message_id;
                RETURN NEXT;
            END LOOP;
        END LOOP;
    END LOOP;
    IF p_captured AND cardinality(v_claimed) > 0 THEN
        UPDATE messages m SET body_started = true WHERE m.message_id = ANY(v_claimed);
    END IF;
END $$;

-- The earliest due time of any active enrollment, for the dispatcher's timer.
CREATE OR REPLACE FUNCTION relance_next_due() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT next_send_at FROM enrollments WHERE state = 'active' AND next_send_at IS NOT NULL
     ORDER BY next_send_at LIMIT 1
$$;

