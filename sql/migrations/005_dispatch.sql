-- 005: the dispatcher's SQL — enrolling, claiming due steps, recording
-- what happened. Every function takes the time as a parameter (p_now):
-- never a hidden now(), so tests move time and the daemon's test clock
-- reaches every decision.

-- The zone a step is scheduled in: the sequence's fixed zone, else the
-- contact's, else the sequence's fallback.
CREATE FUNCTION relance_zone(seq_zone text, contact_zone text, fallback text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT coalesce(seq_zone, contact_zone, fallback) $$;

-- When step p_position of an enrollment is due, given the time the
-- previous step went out (or, for the first step, the enrollment time):
-- the wait, then the first instant inside the window on an allowed day,
-- then the enrollment's stored jitter, kept inside the window.
CREATE FUNCTION relance_step_due(p_enrollment bigint, p_position int, p_from timestamptz, p_r double precision)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT relance_window_jitter(
               relance_next_send_time(p_from, z.zone, s.wait_seconds, s.wait_days, s.wait_business_days,
                                      v.window_start_min, v.window_end_min, v.days),
               z.zone, v.window_start_min, v.window_end_min, v.jitter_seconds, p_r)
      FROM enrollments e
      JOIN contacts c ON c.id = e.contact_id
      JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version
      JOIN sequence_steps s ON s.sequence_id = e.sequence_id AND s.version = e.version AND s.position = p_position
     CROSS JOIN LATERAL (SELECT relance_zone(v.timezone, c.timezone, v.fallback_timezone) AS zone) z
     WHERE e.id = p_enrollment
$$;

-- A contact's template fields as 'key<US>value<RS>key<US>value...' (US =
-- chr(31), RS = chr(30); both removed from values): the standard fields
-- and the custom ones, easy to split in C without a JSON parser.
CREATE FUNCTION relance_contact_fields(p_contact bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT string_agg(translate(kv.key, chr(30) || chr(31), '  ') || chr(31) || translate(kv.value, chr(30) || chr(31), '  '), chr(30))
      FROM contacts c
     CROSS JOIN LATERAL jsonb_each_text(
               c.fields || jsonb_strip_nulls(jsonb_build_object(
                   'email', c.email, 'first_name', c.first_name, 'last_name', c.last_name, 'title', c.title,
                   'company', c.company, 'company_domain', c.company_domain, 'timezone', c.timezone))) kv
     WHERE c.id = p_contact
$$;

-- Enrolls one contact (by email) into the current version of a sequence.
-- Returns 'enrolled' or the reason it was skipped: 'unknown contact',
-- 'suppressed', 'already active in this sequence', 'active in another
-- sequence: NAME' (unless p_parallel).
CREATE FUNCTION relance_enroll(p_sequence text, p_email text, p_now timestamptz, p_parallel boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_contact contacts%ROWTYPE;
    v_seq sequences%ROWTYPE;
    v_other text;
    v_id bigint;
    v_r double precision := random();
BEGIN
    SELECT * INTO v_seq FROM sequences WHERE name = p_sequence;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no sequence named %', p_sequence USING ERRCODE = 'no_data_found',
              HINT = 'relance apply the sequence file first; relance sequences list shows what exists';
    END IF;
    SELECT * INTO v_contact FROM contacts WHERE email_key = lower(btrim(p_email));
    IF NOT FOUND THEN
        RETURN 'unknown contact';
    END IF;
    IF relance_suppressed(v_contact.email) THEN
        RETURN 'suppressed';
    END IF;
    PERFORM 1 FROM enrollments WHERE contact_id = v_contact.id AND sequence_id = v_seq.id
                                 AND state IN ('active', 'paused', 'held');
    IF FOUND THEN
        RETURN 'already active in this sequence';
    END IF;
    IF NOT p_parallel THEN
        SELECT s.name INTO v_other FROM enrollments e JOIN sequences s ON s.id = e.sequence_id
         WHERE e.contact_id = v_contact.id AND e.state IN ('active', 'paused', 'held') LIMIT 1;
        IF FOUND THEN
            RETURN 'active in another sequence: ' || v_other;
        END IF;
    END IF;
    INSERT INTO enrollments (contact_id, sequence_id, version, state, state_reason, state_changed_at,
                             position, jitter_r, created_at)
    VALUES (v_contact.id, v_seq.id, v_seq.current_version, 'active', 'enrolled', p_now, 0, v_r, p_now)
    ON CONFLICT DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        RETURN 'already active in this sequence';
    END IF;
    UPDATE enrollments SET next_send_at = relance_step_due(v_id, 0, p_now, v_r) WHERE id = v_id;
    RETURN 'enrolled';
END $$;

-- Takes one due step of a locked enrollment: a suppressed contact ends
-- the enrollment; a step whose window is closed at p_now (after a pause,
-- say) is moved to the next opening; otherwise the message row is
-- written as 'sending' (a 'deferred' one is taken again, keeping its
-- Message-ID) and the enrollment leaves the due index (next_send_at NULL)
-- until the outcome is recorded. The unique (enrollment, position) key
-- makes a second attempt at a step that went out impossible. Returns the
-- Message-ID, or NULL when nothing is to be sent now.
CREATE FUNCTION relance_take_step(p_enrollment bigint, p_now timestamptz, p_id_domain text, p_replica text,
                                  p_account bigint, p_sender text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_zone text;
    v_open timestamptz;
    v_mid text;
    v_step text;
BEGIN
    SELECT e.id, e.position, e.sequence_id, e.version, e.jitter_r, c.email, c.timezone AS ctz,
           v.timezone AS vtz, v.fallback_timezone, v.window_start_min, v.window_end_min, v.days, v.jitter_seconds
      INTO r
      FROM enrollments e
      JOIN contacts c ON c.id = e.contact_id
      JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version
     WHERE e.id = p_enrollment;
    IF relance_suppressed(r.email) THEN
        UPDATE enrollments SET state = 'failed', state_reason = 'suppressed', state_changed_at = p_now,
                               next_send_at = NULL
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
CREATE FUNCTION relance_claimed(p_message_id text)
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
CREATE FUNCTION relance_claim_due(p_now timestamptz, p_limit int, p_id_domain text, p_replica text)
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

-- Records that a claimed step went out (p_state 'sent', or 'unknown' when
-- it may have) and schedules the next one, or completes the enrollment.
-- An enrollment that stopped meanwhile (a reply won the race) keeps its
-- state.
CREATE FUNCTION relance_step_done(p_message_id text, p_now timestamptz, p_state text, p_reply text,
                                  p_subject text, p_sender text, p_variant int)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_enrollment bigint;
    v_position int;
    v_r double precision := random();
    v_more boolean;
BEGIN
    UPDATE messages SET state = p_state, sent_at = p_now, reply = p_reply,
                        subject = coalesce(p_subject, subject), sender = coalesce(p_sender, sender),
                        variant = coalesce(p_variant, variant)
     WHERE message_id = p_message_id AND state = 'sending'
    RETURNING enrollment_id, position INTO v_enrollment, v_position;
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
    ELSE
        UPDATE enrollments SET position = v_position + 1, next_send_at = NULL,
                               state = CASE WHEN state = 'active' THEN 'completed' ELSE state END,
                               state_reason = CASE WHEN state = 'active' THEN 'all steps sent' ELSE state_reason END,
                               state_changed_at = CASE WHEN state = 'active' THEN p_now ELSE state_changed_at END
         WHERE id = v_enrollment;
    END IF;
    INSERT INTO events (kind, occurred_at, data)
    VALUES ('message.' || p_state, p_now,
            jsonb_build_object('message_id', p_message_id, 'enrollment_id', v_enrollment, 'position', v_position));
END $$;

-- A claimed step that could not be rendered (a field without value nor
-- fallback): nothing went out, so the message row goes and the
-- enrollment is held with the reason until the contact changes.
CREATE FUNCTION relance_step_hold(p_message_id text, p_now timestamptz, p_reason text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_enrollment bigint;
BEGIN
    DELETE FROM messages WHERE message_id = p_message_id AND state = 'sending'
    RETURNING enrollment_id INTO v_enrollment;
    IF FOUND THEN
        UPDATE enrollments SET state = 'held', state_reason = p_reason, state_changed_at = p_now, next_send_at = p_now
         WHERE id = v_enrollment AND state = 'active';
    END IF;
END $$;

-- Each running `relance serve` holds a lease 'replica:ID', renewed while
-- it lives (leases use the database's real clock: they are about
-- processes, not schedules).
CREATE FUNCTION relance_replica_alive(p_replica text, p_ttl_seconds int)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO leases (name, holder, expires_at)
    VALUES ('replica:' || p_replica, p_replica, clock_timestamp() + make_interval(secs => p_ttl_seconds))
    ON CONFLICT (name) DO UPDATE SET expires_at = EXCLUDED.expires_at
$$;

-- (relance_rescue_sending, which turns rows of dead replicas into
-- 'unknown' or 'deferred', is in 006: it needs relance_step_deferred.)

-- The earliest due time of any active enrollment, for the dispatcher's timer.
CREATE FUNCTION relance_next_due() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT next_send_at FROM enrollments WHERE state = 'active' AND next_send_at IS NOT NULL
     ORDER BY next_send_at LIMIT 1
$$;
