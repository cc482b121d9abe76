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
