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

-- Enrolls one contact (by email) into the current version of a sequence.
-- Returns 'enrolled' or the reason it was skipped: 'unknown contact',
-- 'suppressed', 'already active in this sequence', 'active in another
-- sequence: NAME' (unless p_parallel).
CREATE OR REPLACE FUNCTION relance_enroll(p_sequence text, p_email text, p_now timestamptz, p_parallel boolean)
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
