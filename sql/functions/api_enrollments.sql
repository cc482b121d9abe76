-- The HTTP API's enrollments (service/api_enrollments.c): JSON in, JSON
-- out, through the command line's own SQL — relance_enroll_many (`relance
-- enroll`), relance_enrollments_change (`relance pause|resume|stop`),
-- relance_enrollments_show (`relance enrollments show`), all in
-- enrollments.sql — so the two faces can never disagree. C checks the
-- requests' shape; these functions decide and write, one statement a
-- request. Answers are (status, body); problems come without request_id,
-- which C puts first.

-- An instant in a zone, RFC 3339 with that zone's offset then
-- (2026-03-05T09:14:00+01:00): what the contact's clock shows.
CREATE OR REPLACE FUNCTION relance_api_local_time(t timestamptz, zone text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE zone, 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN o.s < 0 THEN '-' ELSE '+' END
           || lpad((abs(o.s) / 3600)::text, 2, '0') || ':' || lpad((abs(o.s) % 3600 / 60)::text, 2, '0')
      FROM (SELECT extract(epoch FROM (t AT TIME ZONE zone) - (t AT TIME ZONE 'UTC'))::int AS s) o
     WHERE t IS NOT NULL
$$;

-- An enrollment as the API shows it (api/openapi.json, Enrollment).
-- position counts the steps already sent (the next step's index from 0);
-- next_step is that step's id, NULL once the last one went out.
CREATE OR REPLACE FUNCTION relance_api_enrollment_json(e enrollments) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', e.id::text, 'contact_id', e.contact_id::text, 'sequence', s.name,
                              'version', e.version, 'state', e.state, 'state_reason', e.state_reason,
                              'state_changed_at', relance_api_time(e.state_changed_at), 'position', e.position,
                              'next_step', st.step_id, 'next_send_at', relance_api_time(e.next_send_at),
                              'next_send_local', relance_api_local_time(e.next_send_at, z.zone), 'timezone', z.zone,
                              'account', a.email, 'created_at', relance_api_time(e.created_at))
      FROM sequences s
      JOIN sequence_versions v ON v.sequence_id = s.id AND v.version = e.version
      JOIN contacts c ON c.id = e.contact_id
      CROSS JOIN LATERAL (SELECT relance_zone(v.timezone, c.timezone, v.fallback_timezone) AS zone) z
      LEFT JOIN sequence_steps st ON st.sequence_id = s.id AND st.version = e.version AND st.position = e.position
      LEFT JOIN accounts a ON a.id = e.account_id
     WHERE s.id = e.sequence_id
$$;

-- POST /v1/enrollments and /v1/enrollments/bulk. p_items, checked by C:
-- [{index, sequence, start_at (NULL: now), and ref (a contact's id,
-- 'email:ADDRESS' normalised, or 'ext:EXTERNAL_ID') or contact (an inline
-- contact as relance_api_contacts_upsert takes it)}]. Inline contacts are
-- upserted first, by the contacts' own SQL; then each sequence's items go
-- to relance_enroll_many in one call, in input order (the same contact
-- twice: the second is already active). An enrollment whose start_at is
-- later than p_now has its first step due as if enrolled then
-- (relance_step_due, the scheduler's rule). One row an item, by index:
-- status 'created' (id; enrollment when p_single), 'skipped' (reason: what
-- `relance enroll` prints), 'invalid' (reason, and field: the member it is
-- about) or 'conflict' (the inline contact's external_id and email belong
-- to two contacts: conflict_ids).
CREATE OR REPLACE FUNCTION relance_api_enrollments_create(p_items jsonb, p_now timestamptz, p_single boolean)
RETURNS TABLE (idx int, status text, id text, reason text, field text, conflict_ids text[], enrollment jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_inline jsonb;
    v_seq text;
BEGIN
    CREATE TEMP TABLE api_enroll (
        idx           int PRIMARY KEY,
        ref           text,
        sequence      text NOT NULL,
        start_at      timestamptz,
        contact_id    bigint,
        status        text,          -- NULL until decided
        reason        text,
        field         text,
        conflict_ids  text[],
        enrollment_id bigint
    ) ON COMMIT DROP;
    INSERT INTO api_enroll (idx, ref, sequence, start_at)
    SELECT (x->>'index')::int, x->>'ref', x->>'sequence', (x->>'start_at')::timestamptz
      FROM jsonb_array_elements(p_items) x;
    SELECT jsonb_agg((x->'contact') || jsonb_build_object('index', (x->>'index')::int)) INTO v_inline
      FROM jsonb_array_elements(p_items) x WHERE x ? 'contact';
    IF v_inline IS NOT NULL THEN
        UPDATE api_enroll a
           SET contact_id = u.id::bigint,
               status = CASE WHEN u.status IN ('created', 'updated') THEN NULL
                             WHEN u.status = 'conflict' THEN 'conflict' ELSE 'invalid' END,
               reason = CASE WHEN u.status NOT IN ('created', 'updated') THEN u.detail END,
               field = CASE WHEN u.status NOT IN ('created', 'updated') THEN 'contact' END,
               conflict_ids = u.conflict_ids
          FROM relance_api_contacts_upsert(v_inline, false) u
         WHERE u.idx = a.idx;
    END IF;
    -- an unknown reference stays NULL: relance_enroll_many says 'unknown contact'
    UPDATE api_enroll a SET contact_id = relance_api_contact_id(a.ref) WHERE a.ref IS NOT NULL;
    UPDATE api_enroll a SET status = 'invalid', field = 'sequence', reason = 'no sequence named ' || a.sequence
     WHERE a.status IS NULL AND NOT EXISTS (SELECT 1 FROM sequences s WHERE s.name = a.sequence);
    FOR v_seq IN SELECT a.sequence FROM api_enroll a WHERE a.status IS NULL GROUP BY a.sequence ORDER BY min(a.idx)
    LOOP
        WITH batch AS MATERIALIZED (
            SELECT a.idx, c.email, row_number() OVER (ORDER BY a.idx) AS ord
              FROM api_enroll a LEFT JOIN contacts c ON c.id = a.contact_id
             WHERE a.sequence = v_seq AND a.status IS NULL),
        res AS MATERIALIZED (
            SELECT r.outcome, r.ord
              FROM relance_enroll_many(v_seq, ARRAY(SELECT b.email FROM batch b ORDER BY b.ord), p_now, false)
                   WITH ORDINALITY AS r (email, outcome, ord))
        UPDATE api_enroll a
           SET status = CASE WHEN r.outcome = 'enrolled' THEN 'created' ELSE 'skipped' END,
               reason = nullif(r.outcome, 'enrolled')
          FROM batch b JOIN res r ON r.ord = b.ord
         WHERE a.idx = b.idx;
    END LOOP;
    UPDATE api_enroll a SET enrollment_id = e.id
      FROM enrollments e JOIN sequences s ON s.id = e.sequence_id
     WHERE a.status = 'created' AND e.contact_id = a.contact_id AND s.name = a.sequence
       AND e.state IN ('active', 'paused', 'held');
    UPDATE enrollments e SET next_send_at = relance_step_due(e.id, 0, a.start_at, e.jitter_r)
      FROM api_enroll a
     WHERE a.enrollment_id = e.id AND a.start_at > p_now;
    RETURN QUERY
    SELECT a.idx, a.status, a.enrollment_id::text, a.reason, a.field, a.conflict_ids,
           CASE WHEN p_single AND e.id IS NOT NULL THEN relance_api_enrollment_json(e) END
      FROM api_enroll a LEFT JOIN enrollments e ON e.id = a.enrollment_id
     ORDER BY a.idx;
END $$;

-- GET /v1/enrollments: one page in id order after the cursor p_after, with
-- the filters that are not NULL (p_contact a reference as
-- relance_api_contact_id reads it; p_state checked by C). An unknown
-- contact or sequence is a 400, not an empty page: a typo must not read as
-- "none". (status, body).
CREATE OR REPLACE FUNCTION relance_api_enrollments_list(p_limit int, p_after text, p_contact text, p_sequence text,
                                                        p_state text)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_contact bigint;
    v_seq bigint;
BEGIN
    IF p_contact IS NOT NULL THEN
        v_contact := relance_api_contact_id(p_contact);
        IF v_contact IS NULL THEN
            RETURN QUERY SELECT 400, relance_api_problem(400, 'bad-request', 'Bad request', 'no contact ' || p_contact);
            RETURN;
        END IF;
    END IF;
    IF p_sequence IS NOT NULL THEN
        SELECT s.id INTO v_seq FROM sequences s WHERE s.name = p_sequence;
        IF v_seq IS NULL THEN
            RETURN QUERY SELECT 400, relance_api_problem(400, 'bad-request', 'Bad request',
                                                         'no sequence named ' || p_sequence);
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
    SELECT relance_api_page_status('enrollments', p_after),
           relance_api_page('enrollments', p_after, p_limit, array_agg(q.id::text ORDER BY q.id),
                            array_agg(q.doc ORDER BY q.id))
      FROM (SELECT e.id, relance_api_enrollment_json(e)::json AS doc FROM enrollments e
             WHERE e.id > coalesce(relance_api_cursor_id('enrollments', p_after), 0)
               AND (v_contact IS NULL OR e.contact_id = v_contact)
               AND (v_seq IS NULL OR e.sequence_id = v_seq)
               AND (p_state IS NULL OR e.state = p_state)
             ORDER BY e.id LIMIT p_limit + 1) q;
END $$;

-- The enrollment a path's {id} names, or NULL.
CREATE OR REPLACE FUNCTION relance_api_enrollment_id(p_ref text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT e.id FROM enrollments e WHERE p_ref ~ '^[0-9]{1,18}$' AND e.id = p_ref::bigint
$$;

-- GET /v1/enrollments/{id}: the enrollment and why its next step is not
-- sooner, as `relance enrollments show` says it (p_by_account: as there).
-- PL/pgSQL, not SQL: its statement's plan is kept per connection, where an
-- SQL function is inlined and planned again at each call (1 ms of the
-- request's 1.5, measured).
CREATE OR REPLACE FUNCTION relance_api_enrollment_get(p_ref text, p_now timestamptz, p_by_account boolean)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT coalesce(max(200), 404),
           coalesce(max((relance_api_enrollment_json(e) || jsonb_build_object('why_not_sooner', w.why_not_sooner))::text),
                    relance_api_problem(404, 'not-found', 'Not found', 'no enrollment ' || p_ref))
      FROM enrollments e
      CROSS JOIN LATERAL relance_enrollments_show(ARRAY[e.id], p_now, p_by_account) w
     WHERE e.id = relance_api_enrollment_id(p_ref);
END $$;

-- POST /v1/enrollments/{id}/pause|resume|stop (p_verb), by
-- relance_enrollments_change. An enrollment already in the state asked for
-- is answered as it is (a retry is harmless); one that cannot go there
-- (resuming a held one, pausing a completed one) is a 409.
CREATE OR REPLACE FUNCTION relance_api_enrollment_change(p_verb text, p_ref text, p_reason text, p_now timestamptz)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    e enrollments;
    v_target text := CASE p_verb WHEN 'pause' THEN 'paused' WHEN 'resume' THEN 'active' ELSE 'stopped' END;
BEGIN
    SELECT * INTO e FROM enrollments x WHERE x.id = relance_api_enrollment_id(p_ref) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, relance_api_problem(404, 'not-found', 'Not found', 'no enrollment ' || p_ref);
        RETURN;
    END IF;
    PERFORM FROM relance_enrollments_change(p_verb, e.id, NULL, NULL, p_reason, p_now);
    IF NOT FOUND AND e.state <> v_target THEN
        RETURN QUERY SELECT 409, relance_api_problem(409, 'state-conflict', 'Conflict',
            format('enrollment %s is %s (%s): it cannot be %s', e.id, e.state, e.state_reason,
                   CASE p_verb WHEN 'pause' THEN 'paused' WHEN 'resume' THEN 'resumed' ELSE 'stopped' END),
            jsonb_build_object('state', e.state));
        RETURN;
    END IF;
    RETURN QUERY SELECT 200, relance_api_enrollment_json(x)::text FROM enrollments x WHERE x.id = e.id;
END $$;

-- POST /v1/contacts/{id}/stop: ends every live enrollment of the contact
-- (active, paused, held), as `relance stop --contact` does, with the
-- CRM's reason. (status, body): the contact and the enrollments stopped.
CREATE OR REPLACE FUNCTION relance_api_contact_stop(p_ref text, p_reason text, p_now timestamptz)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_contact bigint := relance_api_contact_id(p_ref);
    v_ids bigint[];
BEGIN
    IF v_contact IS NULL THEN
        RETURN QUERY SELECT 404, relance_api_problem(404, 'not-found', 'Not found', 'no contact ' || p_ref);
        RETURN;
    END IF;
    SELECT coalesce(array_agg(c.id), '{}') INTO v_ids
      FROM relance_enrollments_change('stop', NULL, v_contact, NULL, p_reason, p_now) c;
    RETURN QUERY
    SELECT 200, jsonb_build_object('contact_id', v_contact::text,
                                   'stopped', coalesce(jsonb_agg(relance_api_enrollment_json(e) ORDER BY e.id), '[]'))::text
      FROM enrollments e WHERE e.id = ANY (v_ids);
END $$;
