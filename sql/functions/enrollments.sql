-- enrollments: a contact going through a sequence, and when its next step
-- is due. Every function takes the time as a parameter (p_now): never a
-- hidden now(), so tests move time and the daemon's test clock reaches
-- every decision.
--
-- Today's table (sql/schema.sql holds every constraint and index):
--
-- TABLE enrollments (
--     id               bigserial   PRIMARY KEY
--     contact_id       bigint      NOT NULL REFERENCES contacts
--     sequence_id      bigint      NOT NULL REFERENCES sequences
--     version          int         NOT NULL          -- pinned at enrollment (REFERENCES sequence_versions)
--     state            text        NOT NULL DEFAULT 'active' -- active paused held replied bounced
--                                                     -- unsubscribed completed failed stopped
--     state_reason     text        NOT NULL DEFAULT 'enrolled'
--     state_changed_at timestamptz NOT NULL
--     position         int         NOT NULL DEFAULT 0 -- the next step to send
--     next_send_at     timestamptz                   -- when that step is due (jitter included)
--     jitter_r         double precision NOT NULL DEFAULT 0 -- in [0, 1), drawn once per step
--     account_id       bigint      REFERENCES accounts -- the sender, fixed at the first step
--     created_at       timestamptz NOT NULL
--     not_before       timestamptz                   -- an auto-reply's return: no step before
-- )
-- One live enrollment per contact and sequence (enrollments_live); the
-- claim reads enrollments_due, enrollments_account_due and
-- enrollments_new_due.

-- The zone a step is scheduled in: the sequence's fixed zone, else the
-- contact's, else the sequence's fallback.
CREATE OR REPLACE FUNCTION relance_zone(seq_zone text, contact_zone text, fallback text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT coalesce(seq_zone, contact_zone, fallback) $$;

-- When step p_position of an enrollment is due, given the time the
-- previous step went out (or, for the first step, the enrollment time):
-- the wait, then the first instant inside the window on an allowed day,
-- then the enrollment's stored jitter, kept inside the window.
CREATE OR REPLACE FUNCTION relance_step_due(p_enrollment bigint, p_position int, p_from timestamptz, p_r double precision)
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

-- Enrolls contacts (by email, as given) into the current version of a
-- sequence, set-based: one call takes thousands of addresses (`relance
-- enroll` sends them in chunks, in one transaction, under its advisory
-- lock). Returns one row per address, in input order: 'enrolled' or the
-- reason it was skipped, checked in this order: 'unknown contact',
-- 'suppressed', 'already active in this sequence', 'active in another
-- sequence: NAME' (unless p_parallel). An address that an earlier one of
-- the same call (or an earlier call of the transaction) enrolled is
-- 'already active in this sequence', as it would be one by one. Each
-- enrollment draws its own jitter.
--
-- The first step's due time is relance_step_due's (position 0, from
-- p_now), computed as the row is inserted: relance_step_due reads the
-- enrollment row, so calling it would mean writing every row twice, and
-- that second write was most of the time of a large enroll. The window
-- part depends on the zone alone, so it is computed once per zone of the
-- batch; the jitter once per enrollment. test_enrollments.py checks the
-- result against relance_step_due for every row.
CREATE OR REPLACE FUNCTION relance_enroll_many(p_sequence text, p_emails text[], p_now timestamptz,
                                               p_parallel boolean)
RETURNS TABLE (email text, outcome text) LANGUAGE plpgsql
-- The plan's cost estimate is high enough to trigger JIT compilation, which
-- takes longer than it saves on a chunk of 10,000.
SET jit = off AS $$
#variable_conflict use_column
DECLARE
    v_seq sequences%ROWTYPE;
    v_ver sequence_versions%ROWTYPE;
    v_step sequence_steps%ROWTYPE;
BEGIN
    SELECT * INTO v_seq FROM sequences WHERE name = p_sequence;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no sequence named %', p_sequence USING ERRCODE = 'no_data_found',
              HINT = 'relance apply the sequence file first; relance sequences list shows what exists';
    END IF;
    SELECT * INTO v_ver FROM sequence_versions WHERE sequence_id = v_seq.id AND version = v_seq.current_version;
    SELECT * INTO v_step FROM sequence_steps
     WHERE sequence_id = v_seq.id AND version = v_seq.current_version AND position = 0;
    -- Enrollments of any sequence, one enroll at a time: two at once
    -- must not both pass the "already enrolled elsewhere" judgement (the
    -- same lock `relance enroll` takes; held to the end of the transaction).
    PERFORM pg_advisory_xact_lock(7401720651);
    -- what relance_window_jitter checks per call, once
    PERFORM relance_window_check(v_ver.window_start_min, v_ver.window_end_min, 127);
    IF v_ver.jitter_seconds < 0 THEN
        RAISE EXCEPTION 'jitter % s (want jitter >= 0)', v_ver.jitter_seconds USING ERRCODE = '22023';
    END IF;
    -- One statement judges every address, inserts the enrollments and
    -- answers; the same contact twice: only its first address may be
    -- enrolled, the next ones are already active.
    RETURN QUERY
    WITH input AS (
        SELECT a.email, a.ord, c.id AS contact_id, c.email AS contact_email,
               relance_zone(v_ver.timezone, c.timezone, v_ver.fallback_timezone) AS zone
          FROM unnest(p_emails) WITH ORDINALITY AS a (email, ord)
          -- LIMIT 1 (email_key is unique) keeps this an index look-up per
          -- address: joined, the planner hashes the whole contacts table
          -- for every chunk.
          LEFT JOIN LATERAL (SELECT c.id, c.email, c.timezone FROM contacts c
                              WHERE c.email_key = lower(btrim(a.email)) LIMIT 1) c ON true
    ), judged AS MATERIALIZED (
        SELECT i.email, i.ord, i.contact_id, i.zone,
               CASE WHEN i.contact_id IS NULL THEN 'unknown contact'
                    WHEN x.suppressed THEN 'suppressed'
                    WHEN l.here THEN 'already active in this sequence'
                    WHEN NOT p_parallel AND l.other IS NOT NULL THEN 'active in another sequence: ' || l.other
                    WHEN row_number() OVER (PARTITION BY i.contact_id ORDER BY i.ord) > 1
                        THEN 'already active in this sequence'
               END AS outcome
          FROM input i
          -- relance_suppressed's rule as a join: a function call per row
          -- cost as much as the rest of the judging.
          LEFT JOIN LATERAL (SELECT true AS suppressed FROM suppressions s
                              WHERE s.pattern = ANY (relance_suppression_keys(i.contact_email)) LIMIT 1) x ON true
          -- The contact's live enrollments, by index: this sequence among
          -- them, else another's name. (An EXISTS here is planned as one
          -- hash of the sequence's every enrollment per chunk.)
          LEFT JOIN LATERAL (SELECT bool_or(e.sequence_id = v_seq.id) AS here,
                                    min(s.name) FILTER (WHERE e.sequence_id <> v_seq.id) AS other
                               FROM enrollments e JOIN sequences s ON s.id = e.sequence_id
                              WHERE e.contact_id = i.contact_id AND e.state IN ('active', 'paused', 'held')) l
                 ON true
    -- MATERIALIZED: the generic plan plpgsql switches to after five calls
    -- guesses 10 addresses in the array and, with the zones inlined,
    -- computed their send times again for every row (twice the time).
    ), zones AS MATERIALIZED (
        -- each zone's first send time and its window's end, once per
        -- zone; each row then only adds its jitter (relance_window_jitter's
        -- rule, in its two halves)
        SELECT t.zone, t.due, relance_window_close(t.due, t.zone, v_ver.window_end_min) AS close
          FROM (SELECT z.zone, relance_next_send_time(p_now, z.zone, v_step.wait_seconds, v_step.wait_days,
                                                      v_step.wait_business_days, v_ver.window_start_min,
                                                      v_ver.window_end_min, v_ver.days) AS due
                  FROM (SELECT DISTINCT j.zone FROM judged j WHERE j.outcome IS NULL) z) t
    ), ins AS (
        INSERT INTO enrollments (contact_id, sequence_id, version, state, state_reason, state_changed_at,
                                 position, next_send_at, jitter_r, created_at)
        SELECT d.contact_id, v_seq.id, v_seq.current_version, 'active', 'enrolled', p_now, 0,
               relance_jitter_within(d.due, d.close, v_ver.jitter_seconds, d.r),
               d.r, p_now
          FROM (SELECT j.contact_id, j.zone, z.due, z.close, random() AS r
                  FROM judged j LEFT JOIN zones z ON z.zone = j.zone WHERE j.outcome IS NULL) d
        -- No ON CONFLICT: judged saw every live enrollment under the
        -- advisory lock taken above, and only this function inserts
        -- enrollments; a speculative insert per row would cost 8%
        -- of the whole enroll. Should a live duplicate appear anyway, the
        -- unique index stops the statement and the enroll rolls back whole.
        -- So every address judged without an outcome is enrolled (the
        -- insert runs whole, referenced or not).
        RETURNING contact_id, id
    ), numbered AS (
        -- each contact once (judged enrolls it at most once): its counter
        -- bumped here, the event's seq set, in this statement
        UPDATE contacts c SET event_seq = c.event_seq + 1
          FROM ins WHERE c.id = ins.contact_id
        RETURNING c.id, c.crm_id, c.email, c.event_seq, ins.id AS enrollment_id
    ), created AS (
        INSERT INTO events (kind, occurred_at, contact_id, seq, data)
        SELECT 'enrollment.created', p_now, n.id, n.event_seq,
               relance_event_data(n.id, n.crm_id, n.email, n.enrollment_id, v_seq.name, NULL, NULL, NULL)
               || jsonb_build_object('version', v_seq.current_version)
          FROM numbered n
    )
    SELECT j.email, coalesce(j.outcome, 'enrolled') FROM judged j ORDER BY j.ord;
END $$;

-- One contact: relance_enroll_many for one address. Kept for callers of
-- the previous release (its `relance enroll` calls it); drop it in the
-- release after.
CREATE OR REPLACE FUNCTION relance_enroll(p_sequence text, p_email text, p_now timestamptz, p_parallel boolean)
RETURNS text LANGUAGE sql AS $$
    SELECT outcome FROM relance_enroll_many(p_sequence, ARRAY[p_email], p_now, p_parallel)
$$;

-- Wake the dispatcher when work may have become due.
CREATE OR REPLACE FUNCTION relance_notify_work() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('relance_work', '');
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER enrollments_work AFTER INSERT OR UPDATE OF state, next_send_at ON enrollments
    FOR EACH STATEMENT EXECUTE FUNCTION relance_notify_work();

-- An auto-reply's return (not_before): no step of the enrollment goes out
-- before this instant (already inside a window). A trigger, not the
-- callers, holds every later next_send_at to it, so a step being sent
-- when the auto-reply arrives, a deferral or a resume cannot slip under it.
CREATE OR REPLACE FUNCTION relance_hold_not_before() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.next_send_at := NEW.not_before;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER enrollments_not_before BEFORE UPDATE ON enrollments
    FOR EACH ROW WHEN (NEW.not_before IS NOT NULL AND NEW.next_send_at < NEW.not_before)
    EXECUTE FUNCTION relance_hold_not_before();

-- enrollments (sequence_id, version) reference sequence_versions: the
-- foreign key, checked once per statement rather than once per row
-- (migration 020 says why). Inserts: the statement's distinct versions,
-- against sequence_versions, after it (a transition table). Updates
-- that change a row's version: that row, before it. sequence_versions
-- is append-only, so a checked reference stays valid.
CREATE OR REPLACE FUNCTION relance_enrollments_versions_exist() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_ver int;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        SELECT NEW.sequence_id, NEW.version INTO v_seq, v_ver
         WHERE NOT EXISTS (SELECT 1 FROM sequence_versions v
                            WHERE v.sequence_id = NEW.sequence_id AND v.version = NEW.version);
    ELSE
        SELECT n.sequence_id, n.version INTO v_seq, v_ver
          FROM (SELECT DISTINCT e.sequence_id, e.version FROM relance_new_enrollments e) n
         WHERE NOT EXISTS (SELECT 1 FROM sequence_versions v
                            WHERE v.sequence_id = n.sequence_id AND v.version = n.version)
         LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('enrollment references sequence %s version %s, which does not exist', v_seq, v_ver),
            TABLE = 'enrollments', CONSTRAINT = 'enrollments_sequence_version_exists';
    END IF;
    IF TG_LEVEL = 'ROW' THEN
        RETURN NEW;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER enrollments_versions_inserted AFTER INSERT ON enrollments
    REFERENCING NEW TABLE AS relance_new_enrollments
    FOR EACH STATEMENT EXECUTE FUNCTION relance_enrollments_versions_exist();
CREATE OR REPLACE TRIGGER enrollments_version_changed BEFORE UPDATE ON enrollments
    FOR EACH ROW WHEN (NEW.sequence_id IS DISTINCT FROM OLD.sequence_id OR NEW.version IS DISTINCT FROM OLD.version)
    EXECUTE FUNCTION relance_enrollments_versions_exist();

CREATE OR REPLACE FUNCTION relance_sequence_versions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE restrict_violation USING
        MESSAGE = format('sequence %s version %s is history enrollments point at: it is never %s',
                         OLD.sequence_id, OLD.version, CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'changed' END),
        TABLE = 'sequence_versions';
END $$;
CREATE OR REPLACE TRIGGER sequence_versions_append_only BEFORE UPDATE OR DELETE ON sequence_versions
    FOR EACH ROW EXECUTE FUNCTION relance_sequence_versions_append_only();

-- ---- what the command line and the API share -------------------------------

-- Pauses, resumes or stops enrollments: the one state change behind
-- `relance pause|resume|stop` and the API's POST
-- /v1/enrollments/{id}/pause|resume|stop and /v1/contacts/{id}/stop.
-- p_verb 'pause' holds active or held enrollments in place; 'resume' lets
-- paused ones go on (every send gate is checked again at send time);
-- 'stop' ends active, paused and held ones for good ('stopped', not
-- 'completed': completed means the last step went out). The enrollments
-- are one (p_enrollment), a contact's (p_contact) or a sequence's
-- (p_sequence), whichever is not NULL first; the reason is p_reason, else
-- the command line's ('paused by user', ...). Returns the ids changed:
-- one in another state is left as it is.
CREATE OR REPLACE FUNCTION relance_enrollments_change(p_verb text, p_enrollment bigint, p_contact bigint,
                                                      p_sequence bigint, p_reason text, p_now timestamptz)
RETURNS TABLE (id bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_state text;
    v_reason text;
    v_from text[];
    v_ids bigint[];
BEGIN
    CASE p_verb
        WHEN 'pause' THEN v_state := 'paused'; v_reason := 'paused by user'; v_from := '{active,held}';
        WHEN 'resume' THEN v_state := 'active'; v_reason := 'resumed by user'; v_from := '{paused}';
        WHEN 'stop' THEN v_state := 'stopped'; v_reason := 'stopped by user'; v_from := '{active,paused,held}';
        ELSE RAISE EXCEPTION 'no such change: %', p_verb USING ERRCODE = '22023';
    END CASE;
    v_reason := coalesce(p_reason, v_reason);
    -- the target's live enrollments, each target by its own index
    v_ids := CASE
        WHEN p_enrollment IS NOT NULL THEN ARRAY[p_enrollment]
        WHEN p_contact IS NOT NULL THEN ARRAY(SELECT e.id FROM enrollments e
                                               WHERE e.contact_id = p_contact AND e.state = ANY (v_from))
        WHEN p_sequence IS NOT NULL THEN ARRAY(SELECT e.id FROM enrollments e
                                                WHERE e.sequence_id = p_sequence AND e.state = ANY (v_from))
    END;
    WITH up AS (
        UPDATE enrollments e SET state = v_state, state_reason = v_reason, state_changed_at = p_now,
                                 next_send_at = CASE WHEN v_state = 'stopped' THEN NULL ELSE e.next_send_at END
         WHERE e.id = ANY (v_ids) AND e.state = ANY (v_from) RETURNING e.id)
    SELECT array_agg(up.id) INTO v_ids FROM up;
    -- each change's event, in the same transaction (the feed's outbox),
    -- shaped as relance_suppress_add's enrollment.stopped
    INSERT INTO events (kind, occurred_at, contact_id, data)
    SELECT CASE p_verb WHEN 'pause' THEN 'enrollment.paused' WHEN 'resume' THEN 'enrollment.resumed'
                       ELSE 'enrollment.stopped' END,
           p_now, c.id,
           relance_event_data(c.id, c.crm_id, c.email, e.id, s.name, NULL, NULL, a.email)
           || jsonb_build_object('state', v_state, 'reason', v_reason)
      FROM enrollments e JOIN contacts c ON c.id = e.contact_id JOIN sequences s ON s.id = e.sequence_id
      LEFT JOIN accounts a ON a.id = e.account_id
     WHERE e.id = ANY (v_ids)
     ORDER BY c.id, e.id;
    RETURN QUERY SELECT x FROM unnest(v_ids) x ORDER BY x;
END $$;

-- The enrollments p_ids as `relance enrollments show` prints them and the
-- API's GET /v1/enrollments/{id} answers: the current step (step_id NULL
-- once the last went out: position = n_steps), the zone its times are
-- local to, the sending account and why the next step is not sooner,
-- computed by the same SQL functions the scheduler uses: the state, then
-- the sending account (paused, missing, at its cap, spacing its messages)
-- for a due step, then for a step not due yet what set its time (an
-- auto-reply's return, the server's deferral, the wait, the window).
-- p_by_account: the sender claims per account (smtp, or capture with
-- accounts): a pool without a configured account, or an account's
-- min_interval, holds steps back; capture without accounts ignores pools.
CREATE OR REPLACE FUNCTION relance_enrollments_show(p_ids bigint[], p_now timestamptz, p_by_account boolean)
RETURNS TABLE (id bigint, contact_id bigint, sequence text, version int, state text, state_reason text,
               state_changed_at timestamptz, "position" int, step_id text, n_steps int, next_send_at timestamptz,
               zone text, account text, created_at timestamptz, why_not_sooner text)
LANGUAGE sql STABLE AS $$
    WITH e AS (
        SELECT e.*, s.name, v.window_start_min, v.window_end_min, v.days, v.sender_pool, st.step_id,
               st.wait_seconds, st.wait_days, st.wait_business_days, z.zone, w.last_sent,
               (SELECT count(*) FROM sequence_steps x WHERE x.sequence_id = e.sequence_id AND x.version = e.version)
                   AS n_steps,
               -- the step waits after the previous one (NULL for the first)
               CASE WHEN e.position > 0 THEN relance_add_wait(w.last_sent, z.zone, st.wait_seconds, st.wait_days,
                                                               st.wait_business_days) END AS waited,
               -- the current step's message when the server deferred it:
               -- retried at next_send_at (outcomes.sql, relance_step_deferred)
               d.id AS deferred_id, d.reply AS deferred_reply,
               -- the return date of the auto-reply that set not_before (inbound.sql)
               (SELECT i.return_date FROM inbound_messages i WHERE i.enrollment_id = e.id AND i.effect = 'auto_reply'
                   AND i.return_date IS NOT NULL ORDER BY i.detected_at DESC, i.id DESC LIMIT 1) AS return_date,
               a.email AS account, a.next_send_after AS account_after
          FROM enrollments e
          JOIN contacts c ON c.id = e.contact_id
          JOIN sequences s ON s.id = e.sequence_id
          JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version
          CROSS JOIN LATERAL (SELECT relance_zone(v.timezone, c.timezone, v.fallback_timezone) AS zone) z
          CROSS JOIN LATERAL (SELECT max(m.sent_at) AS last_sent FROM messages m WHERE m.enrollment_id = e.id) w
          LEFT JOIN sequence_steps st ON st.sequence_id = e.sequence_id AND st.version = e.version
                                     AND st.position = e.position
          LEFT JOIN messages d ON d.enrollment_id = e.id AND d.position = e.position AND d.state = 'deferred'
          LEFT JOIN accounts a ON a.id = e.account_id
         WHERE e.id = ANY (p_ids))
    SELECT e.id, e.contact_id, e.name, e.version, e.state, e.state_reason, e.state_changed_at, e.position,
           CASE WHEN e.position < e.n_steps THEN e.step_id END, e.n_steps::int, e.next_send_at, e.zone, e.account,
           e.created_at,
           CASE
            WHEN e.state = 'held' THEN 'held: ' || e.state_reason
            WHEN e.state <> 'active' THEN e.state
            WHEN e.next_send_at IS NULL THEN 'being sent now'
            WHEN e.account_id IS NOT NULL AND (SELECT a.state = 'paused' FROM accounts a WHERE a.id = e.account_id)
             THEN 'account paused: ' || (SELECT coalesce(a.state_reason, '') FROM accounts a WHERE a.id = e.account_id)
            -- a pool no configured account belongs to: nothing would ever
            -- send; said only once serve has synced some accounts, else
            -- nothing is known
            WHEN p_by_account AND e.account_id IS NULL AND EXISTS (SELECT 1 FROM accounts a WHERE a.configured)
                 AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.pool = e.sender_pool AND a.configured)
             THEN 'no such pool ''' || e.sender_pool || ''''
            WHEN e.next_send_at <= p_now AND e.account_id IS NOT NULL
                 AND (SELECT relance_account_remaining(a.id, relance_local_day(p_now, a.timezone)) <= 0
                        FROM accounts a WHERE a.id = e.account_id)
             THEN 'account capacity: the account reached its limit for today'
            WHEN e.next_send_at <= p_now AND e.account_id IS NULL
                 AND EXISTS (SELECT 1 FROM accounts a WHERE a.pool = e.sender_pool)
                 AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.pool = e.sender_pool AND a.state = 'active'
                                    AND a.configured
                                    AND coalesce(relance_account_remaining(a.id, relance_local_day(p_now, a.timezone)),
                                                 1) > 0)
             THEN 'account capacity: every account of pool ' || e.sender_pool || ' is at its limit today or paused'
            -- min_interval: an account's claim takes nothing before its
            -- next_send_after (claim.sql), so a due step waits for it;
            -- after an account's resume its due steps go out one interval apart
            WHEN p_by_account AND e.next_send_at <= p_now AND e.account_after > p_now
             THEN 'account pacing: ' || e.account || ' sends its next message at '
                  || relance_show_time(e.account_after) || ' (min_interval)'
            WHEN p_by_account AND e.next_send_at <= p_now AND e.account_id IS NULL
                 AND EXISTS (SELECT 1 FROM accounts a WHERE a.pool = e.sender_pool AND a.state = 'active'
                                AND a.configured)
                 AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.pool = e.sender_pool AND a.state = 'active'
                                    AND a.configured AND (a.next_send_after IS NULL OR a.next_send_after <= p_now))
             THEN 'account pacing: every account of pool ' || e.sender_pool || ' waits for its min_interval, the first until '
                  || (SELECT relance_show_time(min(a.next_send_after)) FROM accounts a
                       WHERE a.pool = e.sender_pool AND a.state = 'active' AND a.configured)
            WHEN e.next_send_at <= p_now THEN 'due now'
            -- an auto-reply's return holds the step until the first window
            -- on or after that day (the not_before trigger sets next_send_at)
            WHEN e.not_before IS NOT NULL AND e.next_send_at <= e.not_before
             THEN 'auto-reply: away until ' || coalesce(e.return_date::text, 'a return date') || ', no step before '
                  || relance_show_time(e.not_before)
            WHEN e.deferred_id IS NOT NULL
             THEN 'deferred: the server answered ''' || coalesce(left(split_part(e.deferred_reply, E'\n', 1), 200), '')
                  || ''', retried at ' || relance_show_time(e.next_send_at)
            WHEN e.waited > p_now THEN 'wait: the step waits after the previous one'
            -- enrolled with a later start (the API's start_at): the first
            -- step is due after the time enrolling gave it, and nothing
            -- (a pause, a hold) has touched the enrollment since
            WHEN e.position = 0 AND e.state_reason = 'enrolled'
                 AND e.next_send_at > relance_step_due(e.id, 0, e.created_at, e.jitter_r)
             THEN 'start: the first step waits for the start asked at enrollment, then for the window in ' || e.zone
            WHEN relance_next_window(coalesce(e.waited, e.created_at), e.zone, e.window_start_min, e.window_end_min,
                                     e.days) > coalesce(e.waited, e.created_at)
             THEN CASE WHEN (e.days >> (extract(isodow FROM coalesce(e.waited, e.created_at) AT TIME ZONE e.zone)::int
                                        - 1)) & 1 = 0
                       THEN 'weekday: not a sending day in ' || e.zone
                       ELSE 'window: outside the sending window in ' || e.zone END
            ELSE 'jitter: a random delay inside the window'
           END
      FROM e ORDER BY e.id
$$;

-- An instant as `relance enrollments show` writes it: UTC, to the second.
CREATE OR REPLACE FUNCTION relance_show_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;
